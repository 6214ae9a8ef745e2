"""Tools an episode's owner uses: forget_episodes and update_episode (services/episode_control.py does the work)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from mcp_memory.server.app import MemoryServer

_UUID = {"format": "uuid"}
FORGET_EPISODES = (
    "Forget episodes for good: by episode_ids, or by a filter that only counts them unless confirm is true."
)
UPDATE_EPISODE = "Edit an episode's lessons, outcome details, importance or metadata."


def reply(data: dict[str, Any]) -> CallToolResult:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def register(server: MemoryServer, project: Callable[[str | None], str]) -> None:
    """Register forget_episodes and update_episode on ``server``; ``project`` resolves a call's project (its
    default, and the request's grant)."""
    control = server.runtime.episode_control

    @server.tool(
        description=FORGET_EPISODES,
        title="Forget episodes",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def forget_episodes(
        project_id: Annotated[str | None, Field(json_schema_extra=_UUID)] = None,
        episode_ids: Annotated[list[str] | None, Field(description="These episodes.")] = None,
        agent_instance_id: Annotated[str | None, Field(description="Filter.", json_schema_extra=_UUID)] = None,
        session_id: Annotated[str | None, Field(description="Filter.")] = None,
        task_type: Annotated[str | None, Field(description="Filter.")] = None,
        outcome: Annotated[Literal["success", "failure", "partial"] | None, Field(description="Filter.")] = None,
        before: Annotated[str | None, Field(description="Filter: recorded before this date-time.")] = None,
        confirm: Annotated[bool, Field(description="Forget what the filter matches.")] = False,
    ) -> CallToolResult:
        result = await control.forget(
            project(project_id),
            confirm,
            episode_ids=episode_ids,
            agent_instance_id=agent_instance_id,
            session_id=session_id,
            task_type=task_type,
            outcome=outcome,
            before=before,
        )
        return reply(result)

    @server.tool(
        description=UPDATE_EPISODE,
        title="Update episode",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def update_episode(
        episode_id: Annotated[str, Field(json_schema_extra=_UUID)],
        project_id: Annotated[str | None, Field(json_schema_extra=_UUID)] = None,
        lessons_learned: Annotated[list[str] | None, Field(description="Replace the lessons.")] = None,
        outcome_details: Annotated[str | None, Field(description="Replace.")] = None,
        importance_score: Annotated[float | None, Field(ge=0, le=1, strict=True, description="Replace.")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Replace.")] = None,
    ) -> CallToolResult:
        result = await control.update(
            project(project_id), episode_id, lessons_learned, outcome_details, importance_score, metadata
        )
        return reply(result)


__all__ = ["FORGET_EPISODES", "UPDATE_EPISODE", "register", "reply"]
