"""Storage ports and their adapters."""

from mcp_memory.stores.ports import (
    CheckpointStore,
    DurableStore,
    EpisodeFilter,
    EpisodeStore,
    EventRecord,
    Limits,
    SessionStore,
    WorkingStore,
)

__all__ = [
    "CheckpointStore",
    "DurableStore",
    "EpisodeFilter",
    "EpisodeStore",
    "EventRecord",
    "Limits",
    "SessionStore",
    "WorkingStore",
]
