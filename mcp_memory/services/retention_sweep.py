"""The periodic age sweep: ``checkpoint_retention_seconds`` and ``event_retention_seconds`` applied across every
session, so that a session no pause or resume writes any more (terminated, or abandoned) loses its old checkpoints
and events too, as an operator who sets an age expects.

The runtime starts it only when an age is configured and the durable store can sweep (both SQL stores; with Redis
as the working store the durable store is still SQL). A pass deletes in batches of :data:`SWEEP_BATCH` rows, each
its own short transaction, until a batch finds fewer; the first pass runs :data:`FIRST_SWEEP_AFTER_SECONDS` after
start, then one every :data:`SWEEP_INTERVAL_SECONDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mcp_memory.config import Settings
from mcp_memory.services.periodic import Periodic
from mcp_memory.stores.ports import AgedRetention

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500
"""Rows one statement deletes at most: a batch holds SQLite's writer or Postgres' row locks only briefly."""
SWEEP_INTERVAL_SECONDS = 600.0
"""Time between two passes."""
FIRST_SWEEP_AFTER_SECONDS = 30.0
"""Time from start to the first pass (not at once: a start is busy enough, and a one-shot command ends before)."""


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one pass deleted."""

    checkpoints: int = 0
    events: int = 0


class RetentionSweep:
    """Applies the configured ages to the whole durable store, on demand (:meth:`run_once`) or periodically."""

    def __init__(self, store: AgedRetention, settings: Settings, clock: Callable[[], float]) -> None:
        self._store = store
        self._checkpoint_age = settings.checkpoint_retention_seconds or None
        self._event_age = settings.event_retention_seconds or None
        self._clock = clock
        self._passes = Periodic("mcp-memory retention sweep", self._background_pass, logger, "retention sweep failed")

    @property
    def configured(self) -> bool:
        """Whether an age is set (0, the default, keeps rows of every age: nothing to sweep)."""
        return self._checkpoint_age is not None or self._event_age is not None

    async def run_once(self, batch: int = SWEEP_BATCH) -> SweepReport:
        """One pass at the clock's time: batches of at most ``batch`` rows until a batch finds fewer."""
        now = self._clock()
        checkpoints = events = 0
        if self._checkpoint_age is not None:
            checkpoints = await _drain(self._store.prune_aged_checkpoints, now - self._checkpoint_age, batch)
        if self._event_age is not None:
            events = await _drain(self._store.prune_aged_events, now - self._event_age, batch)
        return SweepReport(checkpoints, events)

    def start(self, interval: float = SWEEP_INTERVAL_SECONDS, first: float = FIRST_SWEEP_AFTER_SECONDS) -> None:
        """Run a pass ``first`` seconds from now and every ``interval`` seconds after, until :meth:`stop`;
        nothing when no age is set."""
        if self.configured:
            self._passes.start(interval, first)

    async def _background_pass(self) -> None:
        report = await self.run_once()
        if report.checkpoints or report.events:
            logger.info(
                "retention sweep: %d checkpoints and %d events past their age deleted",
                report.checkpoints,
                report.events,
            )

    async def stop(self) -> None:
        """Stop the periodic pass (a batch in progress is cancelled: its transaction rolls back or commits whole)."""
        await self._passes.stop()


async def _drain(prune: Callable[[float, int], Awaitable[int]], before: float, batch: int) -> int:
    """Batches of ``prune`` until one deletes fewer than ``batch`` rows; the total deleted."""
    total = 0
    while True:
        deleted = await prune(before, batch)
        total += deleted
        if deleted < batch:
            return total


__all__ = ["FIRST_SWEEP_AFTER_SECONDS", "SWEEP_BATCH", "SWEEP_INTERVAL_SECONDS", "RetentionSweep", "SweepReport"]
