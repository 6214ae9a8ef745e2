"""The periodic sweep of spawns cut off by a crash: the incomplete durable session a two-step spawn left (working
memory in Redis, :mod:`.staged_spawn`) and its staged keys in Redis, which have no expiry (an expiry could lose the
initial state of a spawn that completed and crashed before its commit). Before this sweep only a later spawn of the
same session id (a takeover) or a forget removed them: a session id never spawned again kept them for ever, invisible
to every call but counted by ``doctor``.

A spawn is swept once its lease (``spawn_lease_seconds``) has been over for :data:`SWEEP_MARGIN_SECONDS` more: a
spawn that is slow but alive stops by itself at its lease's end (``staged_spawn``'s check before each write, and the
durable store's as it completes), so the margin only has to outlast a step already under way then, and the servers'
clocks' disagreement. For each lapsed spawn, by the token of the spawn that holds the row:

1. Redis drops that spawn's staged state, and only that (``drop_staged``: a staging of any other token stays);
2. the durable store deletes the row, in a transaction of its own, only while that same spawn still holds it,
   incomplete and lapsed (``drop_lapsed_spawn``).

Redis goes first so that a failure or a stop between the two leaves the row, which the next pass finds again (the
other way round, staged keys with no row left to name them would stay for ever). A spawn whose staged state Redis
fails to drop, or whose row the durable store fails to delete (a lock or statement timeout on that row, a constraint
error), keeps its row for the next pass, and the pass goes on with the spawns listed after it (one warning per pass
and kind of failure names how many failed). After :data:`FAILURES_IN_A_ROW` failures in a row of one kind, Redis or
the durable store looks down (for writes: its listing answered), and the pass stops there, with the rows of the
spawns whose staged state it dropped before deleted; the next one starts after the last spawn it tried, so that
spawns which keep failing first in the listing hold up none after them. A listing that fails ends the pass (the store
is down; the periodic runner logs it), after the pass's warnings of the spawns that failed before it.

A retried spawn of the session wins at every point: it takes the row over under a new token (so step 2 no longer matches
it) and stages under that token (which step 1 leaves alone), as ``begin_spawn``'s takeover already does when the sweep
has not run. A spawn that completed meanwhile keeps its row too (step 2 skips a complete one). It completed within its
lease (the durable store completes no lapsed spawn), so the margin before the listing, on one clock; should its staged
state have gone all the same (its commit held up past the margin, or clocks that disagree by more), its commit writes
the initial state again (``commit_staged``). A spawn that reaches the store between the two steps is refused, and its
undo removes the row itself.

The runtime starts the sweep with every SQL durable store (it deletes nothing where spawns are one transaction, as
without Redis): the first pass :data:`FIRST_SWEEP_AFTER_SECONDS` after start, then one every
:data:`SWEEP_INTERVAL_SECONDS`, each in batches of :data:`SWEEP_BATCH` sessions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mcp_memory import faults
from mcp_memory.services.periodic import FAILURES_IN_A_ROW, PassFailures, Periodic, SweepCursor
from mcp_memory.stores.ports import LapsedSpawn, LapsedSpawns, StagedSpawn

logger = logging.getLogger(__name__)

SWEEP_BATCH = 100
"""Lapsed spawns listed at once; each is then dropped in a short transaction of its own."""
SWEEP_INTERVAL_SECONDS = 600.0
"""Time between two passes."""
FIRST_SWEEP_AFTER_SECONDS = 60.0
"""Time from start to the first pass (not at once: a start is busy enough, and a one-shot command ends before)."""
SWEEP_MARGIN_SECONDS = 300.0
"""How long past its lease's end a spawn is left alone: far above one step's longest run (a Redis call's deadline,
SQLite's busy timeout) and the clock skew of servers that share the stores."""


class SpawnSweep:
    """Removes spawns cut off by a crash from the durable store (``store``) and from the working store apart
    (``working``: Redis, None without), on demand (:meth:`run_once`) or periodically."""

    def __init__(
        self,
        store: LapsedSpawns,
        working: StagedSpawn | None,
        clock: Callable[[], float],
        margin: float = SWEEP_MARGIN_SECONDS,
    ) -> None:
        self._store = store
        self._working = working
        self._clock = clock
        self._margin = margin
        self._cursor = SweepCursor[LapsedSpawn]()
        self._passes = Periodic("mcp-memory spawn sweep", self._background_pass, logger, "spawn sweep failed")

    async def run_once(self, batch: int = SWEEP_BATCH) -> int:
        """One pass at the clock's time, in batches of at most ``batch`` spawns, each listed after the last one of
        the batch before, until a batch lists fewer: every spawn is tried once, so ones whose staged state Redis
        fails to drop or whose row the durable store fails to delete (each kind logged once per pass, their rows
        kept for the next pass) hold up none listed after them, and the pass ends. It ends early after
        :data:`FAILURES_IN_A_ROW` failures in a row of one kind, and the next pass starts after the last spawn it
        tried. A listing that fails ends it too (it raises, once the pass's warnings are logged). The number of
        sessions removed."""
        before = self._clock() - self._margin
        removed = 0
        unstaging = PassFailures[LapsedSpawn](
            logger,
            "spawn sweep: dropping the staged state of %s failed",
            "spawn sweep: dropping the staged state of %d spawns failed (the first: %s)",
        )
        deleting = PassFailures[LapsedSpawn](
            logger,
            "spawn sweep: deleting the row of %s failed",
            "spawn sweep: deleting the rows of %d spawns failed (the first: %s)",
        )
        # The deletions stop no later in the listing than Redis's drops (they go only as far as those): theirs first.
        with self._cursor.pass_over(deleting, unstaging) as after:
            while True:
                lapsed = await self._store.lapsed_spawns(before, batch, after)
                await faults.reached("sweep.listed")
                unstaged = await self._drop_staged(lapsed, unstaging)
                await faults.reached("sweep.staged_dropped")
                for spawn in unstaged:
                    try:
                        if await self._store.drop_lapsed_spawn(spawn, before):
                            removed += 1
                    except Exception as exc:
                        if deleting.add(spawn, exc):
                            break
                    else:
                        deleting.went_through()
                stopped = unstaging.stopped_at is not None or deleting.stopped_at is not None
                if stopped or len(lapsed) < batch:
                    break
                after = lapsed[-1]
        return removed

    async def _drop_staged(self, lapsed: list[LapsedSpawn], failed: PassFailures[LapsedSpawn]) -> list[LapsedSpawn]:
        """Drop the staged state in Redis of each of ``lapsed``, until ``failed`` stops the pass; those it dropped
        (all without Redis), whose rows may go next. One that fails is added to ``failed``: its row stays, to name
        its staged state to a later pass."""
        if self._working is None:
            return lapsed
        unstaged = []
        for spawn in lapsed:
            try:
                await self._working.drop_staged(spawn.scope, spawn.token)
            except Exception as exc:
                if failed.add(spawn, exc):
                    break
            else:
                failed.went_through()
                unstaged.append(spawn)
        return unstaged

    def start(self, interval: float = SWEEP_INTERVAL_SECONDS, first: float = FIRST_SWEEP_AFTER_SECONDS) -> None:
        """Run a pass ``first`` seconds from now and every ``interval`` seconds after, until :meth:`stop`."""
        self._passes.start(interval, first)

    async def _background_pass(self) -> None:
        removed = await self.run_once()
        if removed:
            logger.info("spawn sweep: %d sessions of spawns cut off before they completed removed", removed)

    async def stop(self) -> None:
        """Stop the periodic pass (one in progress is cancelled between its steps: what it left, the next finds)."""
        await self._passes.stop()


__all__ = [
    "FAILURES_IN_A_ROW",
    "FIRST_SWEEP_AFTER_SECONDS",
    "SWEEP_BATCH",
    "SWEEP_INTERVAL_SECONDS",
    "SWEEP_MARGIN_SECONDS",
    "SpawnSweep",
]
