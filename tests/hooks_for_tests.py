"""Hooks that tests load by name from settings (``tests.hooks_for_tests:record``)."""

from __future__ import annotations

from mcp_memory.models import LifecycleEvent

RECORDED: list[LifecycleEvent] = []

NOT_CALLABLE = 42


async def record(event: LifecycleEvent) -> None:
    """Remember every event it is called with."""
    RECORDED.append(event)


async def explode(event: LifecycleEvent) -> None:
    """Always fails."""
    raise RuntimeError(f"hook exploded on {event.event_type}")
