"""Lifecycle tools: spawn, pause, resume, terminate, list_checkpoints."""

from __future__ import annotations

from typing import Annotated, Any

from mcp_types import CallToolResult
from pydantic import Field

from mcp_memory.server.app import MemoryServer
from mcp_memory.server.effects import note_unchanged
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
from mcp_memory.services.terminate_episode import DEFAULT_TERMINATE_TASK_TYPE
from mcp_memory.services.validation import MAX_CHECKPOINT_PAGE

SPAWN = "Start a session of working memory, named by you. A taken name is `conflict`: resume it if paused."
PAUSE = "Checkpoint working memory durably; the session is paused."
RESUME = "Restore working memory from a checkpoint (continue or roll back); the session runs."
TERMINATE = "End the session for good: record it as an episode, clear working memory. Checkpoints stay."
LIST_CHECKPOINTS = "The session's checkpoints, newest first."


def register(server: MemoryServer) -> None:
    """Register the lifecycle tools on ``server``."""
    tools = ToolScope(server)
    lifecycle = server.runtime.lifecycle

    @server.tool(description=SPAWN, **hints("Spawn"))
    async def spawn(
        session_id: NewSessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        agent_type_id: Annotated[str | None, Field(description="Type UUID.")] = None,
        initial_state: Annotated[dict[str, Any] | None, Field(description="Keys to set.")] = None,
        metadata: Metadata = None,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        r = await lifecycle.spawn(project, agent, session_id, agent_type_id, initial_state, metadata)
        return reply(r.data)

    @server.tool(description=PAUSE, **hints("Pause", destructive=True))
    async def pause(
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        checkpoint_id: Annotated[CheckpointId, Field(description="Default: new.")] = None,
        label: Annotated[str | None, Field(description="Short label.")] = None,
        metadata: Metadata = None,
        keep: Annotated[bool, Field(strict=True, description="Never pruned.")] = False,
        keep_last: Annotated[int | None, Field(ge=0, strict=True, description="Keep N newest; 0: all.")] = None,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        r = await lifecycle.pause(project, agent, session_id, checkpoint_id, label, metadata, keep, keep_last)
        return reply(r.data)

    @server.tool(description=RESUME, **hints("Resume", destructive=True, idempotent=True))
    async def resume(
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        checkpoint_id: Annotated[CheckpointId, Field(description="Default: newest.")] = None,
        clear_current: Annotated[bool, Field(strict=True, description="false: merge.")] = True,
        metadata: Metadata = None,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        r = await lifecycle.resume(project, agent, session_id, checkpoint_id, clear_current, metadata)
        return reply(r.data)

    @server.tool(description=TERMINATE, **hints("Terminate", destructive=True, idempotent=True))
    async def terminate(
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        task_description: Annotated[str | None, Field(description="The task.")] = None,
        outcome: Annotated[Outcome, Field(description="How it ended.")] = "success",
        task_type: Annotated[str, Field(description="Episode category.")] = (DEFAULT_TERMINATE_TASK_TYPE),
        lessons_learned: Lessons = None,
        consolidate_to_episodic: Annotated[bool, Field(strict=True, description="Record the episode.")] = True,
        cleanup_working: Annotated[bool, Field(strict=True, description="Clear keys.")] = True,
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
        if r.repeat and not r.unfinished:
            # The first call's answer again, its job done: nobody is told of a change. (One whose job was unfinished
            # is announced again: its server may have died before it told anyone.)
            note_unchanged()
        return reply(r.data)

    @server.tool(description=LIST_CHECKPOINTS, **hints("Checkpoints", read_only=True, idempotent=True))
    async def list_checkpoints(
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        limit: Annotated[int, Field(ge=1, le=MAX_CHECKPOINT_PAGE, strict=True, description="Page size.")] = 50,
        before: Annotated[CheckpointId, Field(description="A next_before.")] = None,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        return reply(await lifecycle.checkpoint_page(project, agent, session_id, limit, before))


__all__ = ["LIST_CHECKPOINTS", "PAUSE", "RESUME", "SPAWN", "TERMINATE", "register"]
