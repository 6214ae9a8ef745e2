"""Deletion tools: delete_session and delete_checkpoint (the operator's erase is ``mcp-memory forget``)."""

from __future__ import annotations

from typing import Annotated

from mcp_types import CallToolResult
from pydantic import Field

from mcp_memory.server.app import MemoryServer
from mcp_memory.server.effects import note_removed_episodes
from mcp_memory.server.tools.shared import AgentId, ProjectId, SessionId, ToolScope, hints, reply

DELETE_SESSION = "Delete a session: working memory, checkpoints, events."
DELETE_CHECKPOINT = "Delete one checkpoint, kept or newest included."


def register(server: MemoryServer) -> None:
    """Register the deletion tools on ``server``."""
    tools = ToolScope(server)
    control = server.runtime.control

    @server.tool(description=DELETE_SESSION, **hints("Delete session", destructive=True))
    async def delete_session(
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        keep_episodes: Annotated[bool, Field(strict=True, description="Or delete them too.")] = True,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        deleted = await control.delete_session(project, agent, session_id, keep_episodes)
        note_removed_episodes(deleted.removed.episode_ids)  # their subscribers are told
        return reply(deleted.as_result())

    @server.tool(description=DELETE_CHECKPOINT, **hints("Delete checkpoint", destructive=True))
    async def delete_checkpoint(
        session_id: SessionId,
        checkpoint_id: Annotated[str, Field(description="From list_checkpoints.")],
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
    ) -> CallToolResult:
        project, agent = tools.project(project_id), tools.agent(agent_instance_id)
        return reply(await control.delete_checkpoint(project, agent, session_id, checkpoint_id))


__all__ = ["DELETE_CHECKPOINT", "DELETE_SESSION", "register"]
