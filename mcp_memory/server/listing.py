"""The resources' URIs, and the recent checkpoints and episodes that resources/list offers.

Apart from :mod:`.resources` (which registers the resource functions on a :class:`~.app.MemoryServer`) so that the
server's own list handler can use it without :mod:`.app` and :mod:`.resources` importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from mcp_types import Resource

from mcp_memory.models import iso
from mcp_memory.services.runtime import MemoryRuntime

JSON = "application/json"
SESSION_URI = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}"
CHECKPOINTS_URI = SESSION_URI + "/checkpoints"
CHECKPOINT_URI = CHECKPOINTS_URI + "/{checkpoint_id}"
EPISODES_URI = "memory://projects/{project_id}/episodes"
EPISODE_URI = EPISODES_URI + "/{episode_id}"


async def recent_resources(rt: MemoryRuntime, projects: Sequence[UUID] | None) -> list[tuple[float, Resource]]:
    """Recent checkpoints and episodes of ``projects`` (None: every project) as concrete resources with their
    times, newest first (by time, then URI), bounded by settings."""
    limit = rt.settings.resources_list_limit
    if projects is not None and not projects:
        return []
    checkpoints = await rt.store.recent_checkpoints(projects, limit)
    episodes = await rt.store.recent_episodes(projects, limit)
    entries: list[tuple[float, Resource]] = []
    for scope, info in checkpoints:
        uri = CHECKPOINT_URI.format(
            project_id=scope.project_id,
            agent_instance_id=scope.agent_instance_id,
            session_id=scope.session_id,
            checkpoint_id=info.checkpoint_id,
        )
        title = f"Checkpoint {info.checkpoint_id} of session {scope.session_id}"
        if info.label:
            title += f" ({info.label})"
        entries.append(
            (
                info.created_at.timestamp(),
                Resource(
                    uri=uri,
                    name=f"checkpoint:{info.checkpoint_id}",
                    title=title,
                    mime_type=JSON,
                    description=f"{info.keys_count} keys, {info.bytes} bytes, {iso(info.created_at)}",
                ),
            )
        )
    for ep in episodes:
        uri = EPISODE_URI.format(project_id=ep.project_id, episode_id=ep.episode_id)
        entries.append(
            (
                ep.created_at.timestamp(),
                Resource(
                    uri=uri,
                    name=f"episode:{ep.episode_id}",
                    title=ep.task_description[:120],
                    mime_type=JSON,
                    description=f"{ep.task_type}, {ep.outcome.value}",
                ),
            )
        )
    entries.sort(key=lambda e: (e[0], e[1].uri), reverse=True)
    return entries[:limit]


__all__ = [
    "CHECKPOINTS_URI",
    "CHECKPOINT_URI",
    "EPISODES_URI",
    "EPISODE_URI",
    "JSON",
    "SESSION_URI",
    "recent_resources",
]
