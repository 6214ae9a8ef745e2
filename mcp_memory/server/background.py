"""Work a request starts and does not wait for (delivering notifications to subscribers), run in a task group of
the server's lifespan rather than in the request's own task, so the request answers without it.

The SDK enters the server's lifespan once per serving run: once for the HTTP app (its session manager), once per
SSE stream and stdio run, once per in-process client. Work goes to the oldest lifespan still open: over HTTP the
app's, which outlives every connection; a lifespan that closes cancels what still runs in it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup


class BackgroundTasks:
    """The task groups of the server's open lifespans, oldest first."""

    def __init__(self) -> None:
        self._groups: list[TaskGroup] = []

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Hold a task group for background work while a lifespan is open; what still runs in it when the lifespan
        ends is cancelled (the connections it served are gone)."""
        async with anyio.create_task_group() as group:
            self._groups.append(group)
            try:
                yield
            finally:
                self._groups.remove(group)
                group.cancel_scope.cancel()

    def start_soon(self, work: Callable[[], Coroutine[None, None, None]]) -> bool:
        """Run ``work`` in the background; False (and nothing runs) when no lifespan is open. ``work`` must not
        raise: an exception would cancel the lifespan it runs in."""
        if not self._groups:
            return False
        self._groups[0].start_soon(work)
        return True


__all__ = ["BackgroundTasks"]
