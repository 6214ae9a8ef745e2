"""The periodic sweep of terminates cut off after their record: a server that died (or a call cut off, or a store that
failed) between a terminate's durable record and the record marked finished (:mod:`.terminate_lease`) left the job
undone, its hooks unrun and, in Redis, the session's sealed keys with no expiry. A retried terminate finishes it; this
sweep finishes it for a session no terminate comes back to, so that nothing of it is lost and no key stays for ever.

A record is swept once the lease of the call that held its job has been over for :data:`SWEEP_MARGIN_SECONDS` more
(or at once if that call ended it: its last step failed): a call that is slow but alive (hooks that run long) then
has long finished. Each session is finished as a retried terminate past the lease would finish it
(``AgentLifecycleManager.finish_cut_off_terminate``): claimed first (only one finisher, a retry or another server's
sweep, runs the hooks), its working memory marked terminated and cleared if the terminate asked, the hooks run with
the terminate's metadata, then the record marked finished. No subscriber is told (no connection asked; the dead server's
subscribers went with it). A session whose finishing fails (Redis not answering) is left to the next pass, at once
(its claim's lease is ended), and the pass goes on with the sessions listed after it; one warning per pass names how
many failed. After :data:`FAILURES_IN_A_ROW` failures in a row a store looks down (its listing answered: Redis, or
the durable store for writes), and the pass stops there; the next one starts after the last session it tried, so
that sessions which keep failing first in the listing hold up none after them. A listing goes on after the last
session before by that one's place in its order (its row), not by the session: one deleted since it was listed
(``delete_session`` or ``forget``, by any server) ends neither the pass nor the next. A listing that fails ends the
pass (the periodic runner logs it), after the pass's warning of the sessions that failed before it.

The runtime starts the sweep with every store: the first pass :data:`FIRST_SWEEP_AFTER_SECONDS` after start, then one
every :data:`SWEEP_INTERVAL_SECONDS`, each in batches of :data:`SWEEP_BATCH` sessions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from mcp_memory.models import Scope
from mcp_memory.services.periodic import FAILURES_IN_A_ROW, PassFailures, Periodic, SweepCursor
from mcp_memory.stores.ports import UnfinishedTerminate, UnfinishedTerminates

logger = logging.getLogger(__name__)

SWEEP_BATCH = 100
"""Unfinished terminates listed at once; each is then finished on its own."""
SWEEP_INTERVAL_SECONDS = 600.0
"""Time between two passes."""
FIRST_SWEEP_AFTER_SECONDS = 60.0
"""Time from start to the first pass (not at once: a start is busy enough, and a one-shot command ends before)."""
SWEEP_MARGIN_SECONDS = 300.0
"""How long past its lease's end a terminate's job is left to the call that held it: far above a clear's longest run
(a Redis call's deadline), hooks that run long, and the clock skew of servers that share the stores."""


class TerminateSweep:
    """Finishes terminates cut off after their record, found in the durable store (``store``), by ``finish`` (which
    says whether it did), on demand (:meth:`run_once`) or periodically."""

    def __init__(
        self,
        store: UnfinishedTerminates,
        finish: Callable[[Scope], Awaitable[bool]],
        clock: Callable[[], float],
        margin: float = SWEEP_MARGIN_SECONDS,
    ) -> None:
        self._store = store
        self._finish = finish
        self._clock = clock
        self._margin = margin
        self._cursor = SweepCursor[UnfinishedTerminate]()
        self._passes = Periodic("mcp-memory terminate sweep", self._background_pass, logger, "terminate sweep failed")

    async def run_once(self, batch: int = SWEEP_BATCH) -> int:
        """One pass at the clock's time, in batches of at most ``batch`` sessions, each listed after the last one
        of the batch before (deleted meanwhile or not), until a batch lists fewer: every session is tried once, so
        ones whose finishing fails (logged once per pass) hold up none listed after them, and the pass ends. It ends
        early after :data:`FAILURES_IN_A_ROW` failures in a row, and the next pass starts after the last session it
        tried (deleted since or not). A listing that fails ends it too (it raises, once the pass's warning is
        logged). The number of terminates finished."""
        before = self._clock() - self._margin
        finished = 0
        failed = PassFailures[UnfinishedTerminate](
            logger,
            "terminate sweep: finishing the terminate of %s failed",
            "terminate sweep: finishing %d terminates failed (the first: %s)",
        )
        with self._cursor.pass_over(failed) as after:
            while True:
                listed = await self._store.unfinished_terminates(before, batch, after)
                for item in listed:
                    try:
                        finished += await self._finish(item.scope)
                    except Exception as exc:
                        if failed.add(item, exc):
                            break
                    else:
                        failed.went_through()
                if failed.stopped_at is not None or len(listed) < batch:
                    break
                after = listed[-1]
        return finished

    def start(self, interval: float = SWEEP_INTERVAL_SECONDS, first: float = FIRST_SWEEP_AFTER_SECONDS) -> None:
        """Run a pass ``first`` seconds from now and every ``interval`` seconds after, until :meth:`stop`."""
        self._passes.start(interval, first)

    async def _background_pass(self) -> None:
        finished = await self.run_once()
        if finished:
            logger.info("terminate sweep: %d terminates cut off after their record finished", finished)

    async def stop(self) -> None:
        """Stop the periodic pass (one in progress is cancelled: what it left, a retry or the next pass finds)."""
        await self._passes.stop()


__all__ = [
    "FAILURES_IN_A_ROW",
    "FIRST_SWEEP_AFTER_SECONDS",
    "SWEEP_BATCH",
    "SWEEP_INTERVAL_SECONDS",
    "SWEEP_MARGIN_SECONDS",
    "TerminateSweep",
]
