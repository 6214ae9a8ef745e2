"""The server assembled: a :class:`~.app.MemoryServer` with the tools of :mod:`.tools`, the resources of
:mod:`.resources`, the prompts of :mod:`.prompts`, session discovery, completions and subscriptions registered.

Here rather than in :mod:`.app` because those modules import :mod:`.app` (for the server's type): importing them
from it would make a cycle."""

from __future__ import annotations

from collections.abc import Callable

from mcp_memory.config import Settings
from mcp_memory.identity import DefaultScope
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.completions import register_completions
from mcp_memory.server.export_resource import register_export_resource
from mcp_memory.server.prompts import register_prompts
from mcp_memory.server.resources import register_resources
from mcp_memory.server.session_directory import register_sessions
from mcp_memory.server.subscriptions import register_subscriptions
from mcp_memory.server.tools import register_tools
from mcp_memory.services.runtime import MemoryRuntime


def create_server(
    settings: Settings | None = None,
    *,
    runtime: MemoryRuntime | None = None,
    runtime_factory: Callable[[Settings], MemoryRuntime] | None = None,
    defaults: DefaultScope | None = None,
) -> MemoryServer:
    """Build the MCP server with every tool and resource of docs/contract.md registered.

    ``defaults``: the project and agent of calls that name none (default: the configured ones; ``mcp-memory
    serve`` on stdio fills them from the installation's identity, :mod:`mcp_memory.identity`)."""
    if runtime is None:
        resolved = settings or Settings()
        runtime = runtime_factory(resolved) if runtime_factory else MemoryRuntime(resolved)
    server = MemoryServer(runtime, defaults)
    register_tools(server)
    register_resources(server)
    register_export_resource(server)  # issue 13: one session as an export file
    register_prompts(server)  # the resume_briefing prompt and its tool twin, memory_prompt
    register_sessions(server)  # issue 12: session discovery, completions, subscriptions
    register_completions(server)
    register_subscriptions(server)
    return server


__all__ = ["create_server"]
