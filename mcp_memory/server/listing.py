"""The resources' URIs, and the recent checkpoints and episodes that resources/list offers.

Apart from :mod:`.resources` (which registers the resource functions on a :class:`~.app.MemoryServer`) so that the
server's own list handler can use it without :mod:`.app` and :mod:`.resources` importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from mcp_types import Resource

from mcp_memory import faults
from mcp_memory.models import iso
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.records import EpisodeFilter
from mcp_memory.summary import counted

JSON = "application/json"
SESSION_URI = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}"
CHECKPOINTS_URI = SESSION_URI + "/checkpoints"
CHECKPOINT_URI = CHECKPOINTS_URI + "/{checkpoint_id}"
EPISODES_URI = "memory://projects/{project_id}/episodes"
EPISODE_URI = EPISODES_URI + "/{episode_id}"


CURSOR_SLACK = 1e-5
"""Seconds added to a cursor's time for the stores' "strictly before" bound: a time read back from a store is
rounded (to the microsecond), so items at the cursor's own time are fetched and then filtered exactly by the caller
(time, then URI)."""


async def recent_resources(
    rt: MemoryRuntime, projects: Sequence[UUID] | None, at_or_before: float | None = None
) -> list[tuple[float, Resource]]:
    """Recent checkpoints and episodes of ``projects`` (None: every project) as concrete resources with their
    times, newest first (by time, then URI), bounded by settings; with ``at_or_before``, those from that time back
    (a listing's next page reads what is older than its cursor, so items added since its first page push none of
    the older ones out of the bound)."""
    limit = rt.settings.resources_list_limit
    if projects is not None and not projects:
        return []
    until = None if at_or_before is None else at_or_before + CURSOR_SLACK
    await faults.reached("listing.read")
    checkpoints = await rt.store.recent_checkpoints(projects, limit, until)
    episodes = await rt.store.recent_episodes(projects, limit, EpisodeFilter(until=until) if until else None)
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
                    description=f"{counted(info.keys_count, 'key')}, {counted(info.bytes, 'byte')}, "
                    f"{iso(info.created_at)}",
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
    "CURSOR_SLACK",
    "EPISODES_URI",
    "EPISODE_URI",
    "JSON",
    "SESSION_URI",
    "recent_resources",
]
