"""Lifecycle tools: spawn, pause, resume, terminate, list_checkpoints."""

from __future__ import annotations

from typing import Annotated, Any

from mcp_types import CallToolResult
from pydantic import Field

from mcp_memory.server.app import MemoryServer
from mcp_memory.server.tools.shared import (
    AgentId,
    CheckpointId,
    Lessons,
    Metadata,
    NewSessionId,
    Outcome,
    ProjectId,
    SessionId,
    ToolScope,
    hints,
    reply,
)
from mcp_memory.services.lifecycle import DEFAULT_TERMINATE_TASK_TYPE
from mcp_memory.services.validation import MAX_CHECKPOINT_PAGE

SPAWN = (
    "Start a session: your working memory, named by you. An existing name is `conflict`: resume it if paused; "
    "terminated is for good."
)
PAUSE = "Checkpoint working memory durably; the session is paused. Later writes are kept until resume restores it."
RESUME = "Restore working memory from a checkpoint; the session runs again. To continue, or roll back."
TERMINATE = (
    "End the session for good: save it as an episode for search_episodes, then clear working memory. Safe to "
    "repeat; checkpoints stay."
)
LIST_CHECKPOINTS = "The session's checkpoints, newest first."


def register(server: MemoryServer) -> None:
    """Register the lifecycle tools on ``server``."""
    tools = ToolScope(server)
    lifecycle = server.runtime.lifecycle

    @server.tool(description=SPAWN, **hints("Spawn session"))
    async def spawn(
        session_id: NewSessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        agent_type_id: Annotated[str | None, Field(description="Agent type UUID.")] = None,
        initial_state: Annotated[dict[str, Any] | None, Field(description="{key: value}.")] = None,
        metadata: Metadata = None,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        r = await lifecycle.spawn(project, agent, session_id, agent_type_id, initial_state, metadata)
        return reply(r.data)

    @server.tool(description=PAUSE, **hints("Pause session"))
    async def pause(
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        checkpoint_id: Annotated[CheckpointId, Field(description="Default: new.")] = None,
        label: Annotated[str | None, Field(description="Short label.")] = None,
        metadata: Metadata = None,
        keep: Annotated[bool, Field(strict=True, description="Never pruned.")] = False,
        keep_last: Annotated[int | None, Field(ge=0, strict=True, description="Retain N newest; 0: all.")] = None,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        r = await lifecycle.pause(project, agent, session_id, checkpoint_id, label, metadata, keep, keep_last)
        return reply(r.data)

    @server.tool(description=RESUME, **hints("Resume session", destructive=True, idempotent=True))
    async def resume(
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        checkpoint_id: Annotated[CheckpointId, Field(description="Default: newest.")] = None,
        clear_current: Annotated[bool, Field(strict=True, description="false: merge into current.")] = True,
        metadata: Metadata = None,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        r = await lifecycle.resume(project, agent, session_id, checkpoint_id, clear_current, metadata)
        return reply(r.data)

    @server.tool(description=TERMINATE, **hints("Terminate session", destructive=True, idempotent=True))
    async def terminate(
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        task_description: Annotated[str | None, Field(description="The task.")] = None,
        outcome: Annotated[Outcome, Field(description="How it ended.")] = "success",
        task_type: Annotated[str, Field(description="Episode category.")] = (DEFAULT_TERMINATE_TASK_TYPE),
        lessons_learned: Lessons = None,
        consolidate_to_episodic: Annotated[bool, Field(strict=True, description="Record the episode.")] = True,
        cleanup_working: Annotated[bool, Field(strict=True, description="Clear working memory.")] = True,
        metadata: Metadata = None,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        r = await lifecycle.terminate(
            project,
            agent,
            session_id,
            task_description,
            outcome,
            lessons_learned,
            consolidate_to_episodic,
            cleanup_working,
            metadata,
            task_type=task_type,
        )
        return reply(r.data)

    @server.tool(description=LIST_CHECKPOINTS, **hints("List checkpoints", read_only=True, idempotent=True))
    async def list_checkpoints(
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        limit: Annotated[int, Field(ge=1, le=MAX_CHECKPOINT_PAGE, strict=True, description="Page size.")] = 50,
        before: Annotated[CheckpointId, Field(description="Previous next_before.")] = None,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        rows = await lifecycle.list_checkpoints(project, agent, session_id, limit, before)
        next_before = rows[-1]["checkpoint_id"] if len(rows) == limit else None
        return reply({"checkpoints": rows, "next_before": next_before})


__all__ = ["LIST_CHECKPOINTS", "PAUSE", "RESUME", "SPAWN", "TERMINATE", "register"]
