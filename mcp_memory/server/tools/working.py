"""Working-memory tools: memory_set, memory_get, memory_delete, memory_list."""

from __future__ import annotations

from typing import Annotated, Any

from mcp_types import CallToolResult
from pydantic import Field

from mcp_memory.models import iso
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.tools.shared import JSON_VALUE, READ_ONLY, AgentId, ProjectId, SessionId, ToolScope, hints, reply
from mcp_memory.services.working import MIN_TTL_SECONDS

Key = str
"""A working-memory key; its description states the server's own limit (``max_key_length``, see :func:`register`)."""
KEY_TOOLS = ("memory_set", "memory_get", "memory_delete")

MEMORY_SET = "Store a JSON value under a key in working memory."
MEMORY_GET = "Read a key; `not_found` if absent or expired."
MEMORY_DELETE = "Delete a key; `deleted` says if it existed."
MEMORY_LIST = "The keys of working memory, sorted."


def register(server: MemoryServer) -> None:
    """Register the working-memory tools on ``server``."""
    tools = ToolScope(server)
    working = server.runtime.working

    @server.tool(description=MEMORY_SET, **hints("Set key", destructive=True, idempotent=True))
    async def memory_set(
        session_id: SessionId,
        key: Key,
        value: Annotated[Any, Field(description="Any JSON value.", json_schema_extra=JSON_VALUE)],
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        ttl_seconds: Annotated[float | None, Field(ge=MIN_TTL_SECONDS, strict=True, description="Seconds.")] = None,
    ) -> CallToolResult:
        expires = await working.set(tools.session(project_id, agent_instance_id, session_id), key, value, ttl_seconds)
        return reply({"key": key, "expires_at": iso(expires) if expires else None})

    @server.tool(description=MEMORY_GET, **hints("Get key", **READ_ONLY))
    async def memory_get(
        session_id: SessionId, key: Key, project_id: ProjectId = None, agent_instance_id: AgentId = None
    ) -> CallToolResult:
        value = await working.get(tools.session(project_id, agent_instance_id, session_id), key)
        return reply({"key": key, "value": value})

    @server.tool(description=MEMORY_DELETE, **hints("Delete key", destructive=True, idempotent=True))
    async def memory_delete(
        session_id: SessionId, key: Key, project_id: ProjectId = None, agent_instance_id: AgentId = None
    ) -> CallToolResult:
        deleted = await working.delete(tools.session(project_id, agent_instance_id, session_id), key)
        return reply({"deleted": deleted})

    @server.tool(description=MEMORY_LIST, **hints("Keys", **READ_ONLY))
    async def memory_list(
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_instance_id: AgentId = None,
        prefix: Annotated[str | None, Field(description="Key prefix.")] = None,
    ) -> CallToolResult:
        keys = await working.list_keys(tools.session(project_id, agent_instance_id, session_id), prefix)
        return reply({"keys": keys})

    # The limit is a setting, read when the server is built, while an annotation's description is fixed when the
    # module is imported: so the published schema gets it here (validation is the service's, with the same limit).
    for name in KEY_TOOLS:
        tool = server._tool_manager.get_tool(name)
        if tool is not None:
            tool.parameters["properties"]["key"]["description"] = (
                f"Up to {server.runtime.settings.max_key_length} chars."
            )


__all__ = ["KEY_TOOLS", "MEMORY_DELETE", "MEMORY_GET", "MEMORY_LIST", "MEMORY_SET", "register"]
