"""A pass that runs periodically in a background task of the event loop, until stopped: the embedding backfill's
retry, the retention sweep and the spawn sweep. A pass that fails is logged and the next one comes at its time; a
stop cancels a pass in progress."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import anyio


class Periodic:
    """Runs ``run`` every ``interval`` seconds (:meth:`start`) in a task named ``name``; a pass that raises is logged
    on ``logger`` at WARNING as ``failure`` and does not stop the next ones."""

    def __init__(self, name: str, run: Callable[[], Awaitable[None]], logger: logging.Logger, failure: str) -> None:
        self._name = name
        self._run = run
        self._logger = logger
        self._failure = failure
        self._task: asyncio.Task[None] | None = None

    def start(self, interval: float, first: float | None = None) -> None:
        """Run a pass ``first`` seconds from now (default: ``interval``), then every ``interval`` seconds, until
        :meth:`stop`; nothing if already started."""
        if self._task is None:
            delay = interval if first is None else first
            self._task = asyncio.get_running_loop().create_task(self._loop(interval, delay), name=self._name)

    async def _loop(self, interval: float, first: float) -> None:
        await anyio.sleep(first)
        while True:
            try:
                await self._run()
            except Exception:
                self._logger.warning(self._failure, exc_info=True)
            await anyio.sleep(interval)

    @property
    def running(self) -> bool:
        """Whether the passes are running."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop the passes (one in progress is cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = ["Periodic"]
