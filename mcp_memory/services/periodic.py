"""A pass that runs periodically in a background task of the event loop, until stopped: the embedding backfill's
retry, the retention, spawn and terminate sweeps. A pass that fails is logged and the next one comes at its time; a
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


class PassFailures:
    """The items one pass of a sweep failed on: each logged at DEBUG as ``each`` (% the item), and once at the end
    of the pass at WARNING as ``summary`` (% how many, the first) with the first's traceback, so that a pass meeting
    the same broken items again and again logs one warning each time."""

    def __init__(self, logger: logging.Logger, each: str, summary: str) -> None:
        self._logger = logger
        self._each = each
        self._summary = summary
        self._count = 0
        self._first: tuple[object, Exception] | None = None

    def add(self, item: object, exc: Exception) -> None:
        self._logger.debug(self._each, item, exc_info=exc)
        self._count += 1
        if self._first is None:
            self._first = (item, exc)

    def log(self, summary: str | None = None) -> None:
        """The pass's warning, if any item failed: ``summary`` (% how many, the first) in place of the one given at
        the start, if set (a pass that ended early says so)."""
        if self._first is not None:
            item, exc = self._first
            self._logger.warning(summary or self._summary, self._count, item, exc_info=exc)


__all__ = ["PassFailures", "Periodic"]
