"""The MCP tools of docs/contract.md, one module per group; :mod:`.shared` holds what they share.

Each tool body resolves its scope and delegates to a service in a few lines; validation and errors live in the
services and in :class:`~mcp_memory.server.app.MemoryServer`.
"""

from __future__ import annotations

from mcp_memory.server.app import MemoryServer
from mcp_memory.server.tools import control, episode_control, episodes, lifecycle, working
from mcp_memory.server.tools.shared import AgentId, ProjectId, SessionId, ToolScope, hints, reply


def register_tools(server: MemoryServer) -> None:
    """Register the tools of docs/contract.md on ``server`` (the briefing tool is :mod:`..prompts`'s); the owner
    tools (deletions, forget, edit) only when the settings' ``owner_tools`` is on."""
    lifecycle.register(server)
    working.register(server)
    episodes.register(server)
    if server.runtime.settings.owner_tools:
        control.register(server)
        episode_control.register(server)


__all__ = ["AgentId", "ProjectId", "SessionId", "ToolScope", "hints", "register_tools", "reply"]
