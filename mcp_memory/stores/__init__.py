"""Storage ports and their adapters."""

from mcp_memory.stores.ports import DurableStore, EpisodeFilter, EventRecord, Limits, WorkingStore

__all__ = ["DurableStore", "EpisodeFilter", "EventRecord", "Limits", "WorkingStore"]
