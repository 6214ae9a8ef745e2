"""mcp-memory: an MCP server that gives LLM agents a memory with a lifecycle.

The Python API works without MCP::

    async with MemoryRuntime(Settings()) as rt:
        await rt.lifecycle.spawn(project_id, agent_id, "s1", initial_state={"goal": "ship"})
        await rt.working.set(scope, "step", 3)
        cp = await rt.lifecycle.pause(project_id, agent_id, "s1")
"""

from mcp_memory.config import Settings
from mcp_memory.errors import (
    ConfigurationError,
    Conflict,
    Forbidden,
    Internal,
    InvalidArgument,
    MemoryServiceError,
    NotFound,
    TooLarge,
    Unavailable,
)
from mcp_memory.models import (
    Episode,
    EpisodeCreate,
    LifecycleEvent,
    LifecycleResult,
    Outcome,
    Scope,
    SessionStatus,
)
from mcp_memory.services.episodic import EpisodicMemory
from mcp_memory.services.hooks import LifecycleHooks
from mcp_memory.services.lifecycle import AgentLifecycleManager
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.working import SessionMemory, WorkingMemory
from mcp_memory.version import __version__

__all__ = [
    "AgentLifecycleManager",
    "ConfigurationError",
    "Conflict",
    "Episode",
    "EpisodeCreate",
    "EpisodicMemory",
    "Forbidden",
    "Internal",
    "InvalidArgument",
    "LifecycleEvent",
    "LifecycleHooks",
    "LifecycleResult",
    "MemoryRuntime",
    "MemoryServiceError",
    "NotFound",
    "Outcome",
    "Scope",
    "SessionMemory",
    "SessionStatus",
    "Settings",
    "TooLarge",
    "Unavailable",
    "WorkingMemory",
    "__version__",
]
