"""Hooks that tests load by name from settings (``tests.hooks_for_tests:record``)."""

from __future__ import annotations

import sys

from mcp_memory.models import LifecycleEvent

RECORDED: list[LifecycleEvent] = []

NOT_CALLABLE = 42


async def record(event: LifecycleEvent) -> None:
    """Remember every event it is called with."""
    RECORDED.append(event)


async def explode(event: LifecycleEvent) -> None:
    """Always fails."""
    raise RuntimeError(f"hook exploded on {event.event_type}")


def synchronous(event: LifecycleEvent) -> None:
    """Not async: it would run on the event loop, beyond the hook timeout."""


class AsyncCallable:
    """An object whose ``__call__`` is async: a hook too."""

    async def __call__(self, event: LifecycleEvent) -> None:
        RECORDED.append(event)


ASYNC_CALLABLE = AsyncCallable()


async def exit_process(event: LifecycleEvent) -> None:
    """Calls ``sys.exit``, as a careless script would."""
    sys.exit(f"hook exits on {event.event_type}")


async def interrupt(event: LifecycleEvent) -> None:
    """Raises ``KeyboardInterrupt`` of its own."""
    raise KeyboardInterrupt
