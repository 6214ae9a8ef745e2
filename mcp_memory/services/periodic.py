"""A pass that runs periodically in a background task of the event loop, until stopped: the embedding backfill's
retry, the retention, spawn and terminate sweeps. A pass that fails is logged and the next one comes at its time; a
stop cancels a pass in progress. And what the spawn and terminate sweeps' passes share: their failures gathered into
one warning per pass and step (:class:`PassFailures`), the pass stopped after :data:`FAILURES_IN_A_ROW` failures in a
row, and the next started after where it stopped (:class:`SweepCursor`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


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


FAILURES_IN_A_ROW = 3
"""Failures in a row of one step of a sweep that end its pass: the store that step goes to looks down (the listing
answered), so the items left are not each tried against it, each waiting out its own failure or timeout."""

_LEFT = ", left to the next pass"
_STOPPED = f", the pass stopped after {FAILURES_IN_A_ROW} in a row; left to the next pass, which starts after them"


class PassFailures(Generic[T]):
    """The items one pass of a sweep failed on at one step: each logged at DEBUG as ``each`` (% the item), and once
    at the end of the pass at WARNING as ``summary`` (% how many, the first) with the first's traceback, so that a
    pass meeting the same broken items again and again logs one warning each time. After :data:`FAILURES_IN_A_ROW`
    in a row (none of the step's items going through between) the pass stops at the last one (:attr:`stopped_at`),
    and the warning says so."""

    def __init__(self, logger: logging.Logger, each: str, summary: str) -> None:
        self._logger = logger
        self._each = each
        self._summary = summary
        self._count = 0
        self._in_a_row = 0
        self._first: tuple[T, Exception] | None = None
        self.stopped_at: T | None = None
        """The item whose failure stopped the pass, or None."""

    def add(self, item: T, exc: Exception) -> bool:
        """``item`` failed; whether the pass stops at it (the last of :data:`FAILURES_IN_A_ROW` in a row)."""
        self._logger.debug(self._each, item, exc_info=exc)
        self._count += 1
        if self._first is None:
            self._first = (item, exc)
        self._in_a_row += 1
        if self._in_a_row == FAILURES_IN_A_ROW:
            self.stopped_at = item
            return True
        return False

    def went_through(self) -> None:
        """An item went through this step: the failures before it were not in a row with the ones after."""
        self._in_a_row = 0

    def log(self) -> None:
        """The pass's warning, if any item failed."""
        if self._first is not None:
            item, exc = self._first
            ending = _LEFT if self.stopped_at is None else _STOPPED
            self._logger.warning(self._summary + ending, self._count, item, exc_info=exc)


class SweepCursor(Generic[T]):
    """Where a sweep's next pass starts: after the item its last pass stopped at (the next pass then tries the
    items listed after the ones that kept failing, which hold them up for one pass only), or from the first (None)."""

    def __init__(self) -> None:
        self._after: T | None = None

    @contextlib.contextmanager
    def pass_over(self, *steps: PassFailures[T]) -> Iterator[T | None]:
        """One pass, whose failures at each step ``steps`` gather: gives where it starts. Each step's warning is
        logged as the pass ends, also one that raises (a listing that fails): what the pass met before is not lost,
        and the periodic runner logs the failure itself. A pass that ends by itself sets where the next starts: at
        the first of ``steps`` that stopped (a sweep names them so that this is the earliest in its listing); one
        that raises leaves it as it was."""
        try:
            yield self._after
            self._after = next((step.stopped_at for step in steps if step.stopped_at is not None), None)
        finally:
            for step in steps:
                step.log()


__all__ = ["FAILURES_IN_A_ROW", "PassFailures", "Periodic", "SweepCursor"]
