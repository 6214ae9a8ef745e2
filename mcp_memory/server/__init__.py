"""The MCP face of mcp-memory: tools, resources, transports."""

from mcp_memory.server.app import MemoryServer
from mcp_memory.server.assembly import create_server

__all__ = ["MemoryServer", "create_server"]
