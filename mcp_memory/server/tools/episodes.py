"""Episodic-memory tools: record_episode, search_episodes."""

from __future__ import annotations

from typing import Annotated

from mcp_types import CallToolResult
from pydantic import Field

from mcp_memory.models import ScoredEpisode, iso
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.tools.shared import (
    READ_ONLY,
    AgentId,
    Importance,
    Lessons,
    Metadata,
    Outcome,
    ProjectId,
    ToolScope,
    hints,
    reply,
)
from mcp_memory.services.validation import MAX_SEARCH_LIMIT

RECORD_EPISODE = "Record a task, how it went and its lessons, for search_episodes."
SEARCH_EPISODES = (
    "Past episodes relevant to a task, best first, with lessons. A period named in the query "
    '("last March") ranks its episodes first; "now" or "current" favours newer ones.'
)


def hit(h: ScoredEpisode) -> dict[str, object]:
    """One search result as the tool returns it."""
    return {
        "episode_id": str(h.episode_id),
        "score": h.score,
        "task_type": h.task_type,
        "task_description": h.task_description,
        "outcome": h.outcome.value,
        "outcome_details": h.outcome_details,
        "lessons_learned": h.lessons_learned,
        "importance_score": h.importance_score,
        "agent_instance_id": str(h.agent_instance_id),
        "session_id": h.session_id,
        "created_at": iso(h.created_at),
        "context_summary": h.context_summary,
    }


def register(server: MemoryServer) -> None:
    """Register the episodic-memory tools on ``server``."""
    tools = ToolScope(server)
    episodic = server.runtime.episodic

    @server.tool(description=RECORD_EPISODE, **hints("Record episode"))
    async def record_episode(
        task_type: Annotated[str, Field(description="Category, e.g. bug_fix.")],
        task_description: Annotated[str, Field(description="The task.")],
        outcome: Annotated[Outcome, Field(description="How it went.")],
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        session_id: Annotated[str | None, Field(description="Its session.")] = None,
        outcome_details: Annotated[str | None, Field(description="What happened.")] = None,
        lessons_learned: Lessons = None,
        importance_score: Importance = None,
        metadata: Metadata = None,
    ) -> CallToolResult:
        recorded = await server.runtime.episode_control.record(
            project_id=tools.project(project_id),
            agent_instance_id=tools.agent(agent_instance_id),
            task_type=task_type,
            task_description=task_description,
            outcome=outcome,
            session_id=session_id,
            outcome_details=outcome_details,
            lessons_learned=lessons_learned,
            importance_score=importance_score,
            metadata=metadata,
        )
        return reply(recorded.as_result())

    @server.tool(description=SEARCH_EPISODES, **hints("Search episodes", **READ_ONLY))
    async def search_episodes(
        query: Annotated[str, Field(description="In plain words.")],
        project_id: ProjectId = None,
        limit: Annotated[int, Field(ge=1, le=MAX_SEARCH_LIMIT, strict=True, description="How many.")] = 5,
        outcome: Annotated[Outcome | None, Field(description="Filter.")] = None,
        task_type: Annotated[str | None, Field(description="Filter.")] = None,
        agent_instance_id: Annotated[str | None, Field(description="Filter.")] = None,
        since: Annotated[
            str | None, Field(description="Filter: newer.", json_schema_extra={"format": "date-time"})
        ] = None,
    ) -> CallToolResult:
        project = tools.project(project_id)
        hits = await episodic.search(project, query, limit, outcome, task_type, agent_instance_id, since)
        return reply({"episodes": [hit(h) for h in hits]})


__all__ = ["RECORD_EPISODE", "SEARCH_EPISODES", "hit", "register"]
