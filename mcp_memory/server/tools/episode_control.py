"""Tools an episode's owner uses: forget_episodes, update_episode (services/episode_control.py does the work)."""

from __future__ import annotations

from typing import Annotated

from mcp_types import CallToolResult
from pydantic import Field

from mcp_memory.server.app import MemoryServer
from mcp_memory.server.effects import note_changed_sessions, note_removed_episodes
from mcp_memory.server.tools.shared import Importance, Lessons, Metadata, Outcome, ProjectId, ToolScope, hints, reply

FORGET_EPISODES = "Delete episodes: by id, or by filter (only counted unless confirm)."
UPDATE_EPISODE = "Edit an episode; given fields replace its own."


def register(server: MemoryServer) -> None:
    """Register forget_episodes and update_episode on ``server``."""
    tools = ToolScope(server)
    control = server.runtime.episode_control

    @server.tool(description=FORGET_EPISODES, **hints("Forget episodes", destructive=True, idempotent=True))
    async def forget_episodes(
        project_id: ProjectId = None,
        episode_ids: Annotated[list[str] | None, Field(description="These.")] = None,
        agent_instance_id: Annotated[str | None, Field(description="Filter.")] = None,
        session_id: Annotated[str | None, Field(description="Filter.")] = None,
        task_type: Annotated[str | None, Field(description="Filter.")] = None,
        outcome: Annotated[Outcome | None, Field(description="Filter.")] = None,
        before: Annotated[
            str | None, Field(description="Filter: older.", json_schema_extra={"format": "date-time"})
        ] = None,
        confirm: Annotated[bool, Field(strict=True, description="Do delete.")] = False,
    ) -> CallToolResult:
        forgotten = await control.forget(
            tools.project(project_id),
            confirm,
            episode_ids=episode_ids,
            agent_instance_id=agent_instance_id,
            session_id=session_id,
            task_type=task_type,
            outcome=outcome,
            before=before,
        )
        note_removed_episodes(forgotten.episode_ids)  # their subscribers are told, however many (not the model)
        note_changed_sessions(forgotten.sessions)  # a terminated session's summary names its episode
        return reply(forgotten.as_result())

    @server.tool(description=UPDATE_EPISODE, **hints("Update episode", destructive=True, idempotent=True))
    async def update_episode(
        episode_id: Annotated[str, Field(description="Its id.")],
        project_id: ProjectId = None,
        lessons_learned: Lessons = None,
        outcome_details: Annotated[str | None, Field(description="What happened.")] = None,
        importance_score: Importance = None,
        metadata: Metadata = None,
    ) -> CallToolResult:
        result = await control.update(
            tools.project(project_id), episode_id, lessons_learned, outcome_details, importance_score, metadata
        )
        return reply(result)


__all__ = ["FORGET_EPISODES", "UPDATE_EPISODE", "register"]
