"""A sweep's pass tries every item it lists once and goes on past those that fail, so items that keep failing (their
Redis keys on a node that does not answer, a durable row whose deletion fails) never hold up the ones listed after
them.

Before, the spawn sweep (mcp_memory.services.spawn_sweep) gave up its whole pass at the first spawn whose staged state
Redis failed to drop, or whose row the durable store failed to delete, and the terminate sweep
(mcp_memory.services.terminate_sweep) ended its pass at a batch that finished nothing; both list in the same order
every pass, so a failing spawn, or a batch of failing terminates, starved every later one for ever. The failures here
are Redis's (or the working store's) for chosen sessions only, or the durable store's own on chosen rows: a foreign
key of the test's own that no deletion cascades to, or (Postgres) a lock another transaction holds on the row past
the store's statement timeout. The rest are swept in the same pass, and the failing ones once they stop failing. Time
moves on a fake clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mcp_memory.config import Settings
from mcp_memory.errors import Unavailable
from mcp_memory.models import Item, Scope, SessionInfo
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.spawn_sweep import FAILURES_IN_A_ROW, SWEEP_MARGIN_SECONDS, SpawnSweep
from mcp_memory.stores.ports import Incarnation, LapsedSpawns, Limits, StagedSpawn, UnfinishedTerminates
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.cut_off_spawns import cut_off_spawn, ids, redis_keys
from tests.failing_stores import Pins
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio

INITIAL = {"goal": "ship", "step": 3}


class DropFailsFor:
    """The real Redis working store, whose ``drop_staged`` fails for the sessions ``failing`` (a node that does not
    answer holds their keys) and runs as is for every other."""

    def __init__(self, real: StagedSpawn, failing: set[str]) -> None:
        self._real = real
        self._failing = failing

    async def stage(self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits, token: str) -> int:
        return await self._real.stage(scope, items, now, limits, token)

    async def commit_staged(
        self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits, session: SessionInfo
    ) -> None:
        await self._real.commit_staged(scope, items, now, limits, session)

    async def drop_staged(self, scope: Scope, token: str) -> None:
        if scope.session_id in self._failing:
            raise Unavailable(f"the node holding {scope.session_id}'s keys did not answer")
        await self._real.drop_staged(scope, token)


@pytest.mark.parametrize("stores", ["redis+sqlite", "redis+postgres"])
async def test_a_spawn_sweep_pass_removes_the_spawns_listed_after_ones_redis_fails_to_drop(
    stores: str, tmp_path: Path, clock: FakeClock
) -> None:
    async with settings_for(stores, tmp_path) as settings, MemoryRuntime(settings, clock=clock) as rt:
        assert isinstance(rt.working_store, RedisWorkingStore)
        store = rt.store
        assert isinstance(store, LapsedSpawns)
        # Two failing spawns lapsed first (the listing's order), then three that Redis drops: a batch of failures
        # and a later batch that ends on the last one listed.
        failing = [new_scope(f"bad-{n}") for n in range(2)]
        good = [new_scope(f"good-{n}") for n in range(3)]
        for scope in failing + good:
            await cut_off_spawn(rt, scope, INITIAL)
            clock.advance(1)
        clock.advance(rt.settings.spawn_lease_seconds + SWEEP_MARGIN_SECONDS)
        assert all(redis_keys(rt, scope) for scope in failing + good)

        sweep = SpawnSweep(store, DropFailsFor(rt.working_store, {s.session_id for s in failing}), clock)
        assert await sweep.run_once(batch=2) == len(good)
        for scope in good:
            assert redis_keys(rt, scope) == {}
        # A failing spawn keeps its row (Redis first: its staged keys still have one to name them) for a later pass.
        assert {s.scope.session_id for s in await store.lapsed_spawns(clock(), 100)} == {s.session_id for s in failing}
        assert all(redis_keys(rt, scope) for scope in failing)

        # Once Redis answers again, the next pass removes them too.
        assert await SpawnSweep(store, rt.working_store, clock).run_once(batch=2) == len(failing)
        assert await store.lapsed_spawns(clock(), 100) == []
        assert all(redis_keys(rt, scope) == {} for scope in failing)


def sweep_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The spawn sweep's warnings so far, then forgets them."""
    found = [
        r.getMessage()
        for r in caplog.records
        if r.name == "mcp_memory.services.spawn_sweep" and r.levelno >= logging.WARNING
    ]
    caplog.clear()
    return found


async def lapsed_sessions(store: LapsedSpawns, clock: FakeClock) -> list[str]:
    return [s.scope.session_id for s in await store.lapsed_spawns(clock(), 100)]


async def cut_off_in_order(rt: MemoryRuntime, clock: FakeClock, scopes: Sequence[Scope]) -> None:
    """Spawns of ``scopes`` cut off a second apart (the listing's order), all lapsed past the sweep's margin."""
    for scope in scopes:
        await cut_off_spawn(rt, scope, INITIAL)
        clock.advance(1)
    clock.advance(rt.settings.spawn_lease_seconds + SWEEP_MARGIN_SECONDS)


async def test_a_spawn_sweep_pass_removes_the_spawns_listed_after_one_whose_row_it_fails_to_delete(
    settings_on_every_store: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "mcp_memory.services.spawn_sweep")
    async with (
        MemoryRuntime(settings_on_every_store, clock=clock) as rt,
        Pins(rt.settings.database_url or "") as pins,
    ):
        store, sweep = rt.store, rt.spawn_sweep
        assert isinstance(store, LapsedSpawns) and sweep is not None
        stuck, other = new_scope("stuck"), new_scope("other")
        await cut_off_in_order(rt, clock, [stuck, other])
        await pins.pin([stuck])

        assert await sweep.run_once() == 1
        assert await lapsed_sessions(store, clock) == ["stuck"]
        [warning] = sweep_warnings(caplog)
        assert "deleting the rows of 1 spawns failed" in warning and str(stuck.project_id) in warning
        # Redis went first: the stuck spawn's staging is gone, its row stays to name it to the next pass.
        assert redis_keys(rt, stuck) == {} == redis_keys(rt, other)

        await pins.unpin_all()
        assert await sweep.run_once() == 1
        assert await lapsed_sessions(store, clock) == []
        assert sweep_warnings(caplog) == []


async def test_a_spawn_sweep_pass_goes_past_a_row_locked_past_the_statement_timeout(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "mcp_memory.services.spawn_sweep")
    async with (
        settings_for("postgres", tmp_path, database_timeout_seconds=1.0) as settings,
        MemoryRuntime(settings, clock=clock) as rt,
    ):
        store, sweep = rt.store, rt.spawn_sweep
        assert isinstance(store, LapsedSpawns) and sweep is not None
        locked, other = new_scope("locked"), new_scope("other")
        await cut_off_in_order(rt, clock, [locked, other])
        engine = create_async_engine(settings.database_url or "")
        try:
            # Another transaction holds the first-listed row's lock (one stuck mid-way): the sweep's DELETE waits on
            # it until the store's statement timeout.
            async with engine.connect() as holder:
                await holder.execute(text("SELECT id FROM mcp_memory.sessions WHERE session_id = 'locked' FOR UPDATE"))
                assert await sweep.run_once() == 1
                assert await lapsed_sessions(store, clock) == ["locked"]
                await holder.rollback()
        finally:
            await engine.dispose()
        [warning] = sweep_warnings(caplog)
        assert "deleting the rows of 1 spawns failed" in warning and str(locked.project_id) in warning

        assert await sweep.run_once() == 1
        assert await lapsed_sessions(store, clock) == []


async def test_a_spawn_sweep_pass_stops_at_failed_deletions_in_a_row_and_the_next_goes_on_after_them(
    settings_on_every_store: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that fails every deletion (down for writes) is tried a few times per pass, not once per spawn; the
    rows that failed first in the listing then hold up the ones after them for one pass only."""
    caplog.set_level(logging.WARNING, "mcp_memory.services.spawn_sweep")
    async with (
        MemoryRuntime(settings_on_every_store, clock=clock) as rt,
        Pins(rt.settings.database_url or "") as pins,
    ):
        store, sweep = rt.store, rt.spawn_sweep
        assert isinstance(store, LapsedSpawns) and sweep is not None
        stuck = [new_scope(f"stuck-{n}") for n in range(FAILURES_IN_A_ROW + 1)]
        good = [new_scope(f"good-{n}") for n in range(2)]
        await cut_off_in_order(rt, clock, stuck + good)
        await pins.pin(stuck)

        # The pass stops after the first FAILURES_IN_A_ROW: the last stuck spawn is not tried, nor the good ones.
        assert await sweep.run_once(batch=2) == 0
        [warning] = sweep_warnings(caplog)
        assert f"deleting the rows of {FAILURES_IN_A_ROW} spawns failed" in warning and "stopped" in warning
        assert len(await lapsed_sessions(store, clock)) == len(stuck + good)

        # The next starts after them: the last stuck spawn fails alone, the good ones go.
        assert await sweep.run_once(batch=2) == len(good)
        [warning] = sweep_warnings(caplog)
        assert "deleting the rows of 1 spawns failed" in warning and "stopped" not in warning
        assert await lapsed_sessions(store, clock) == [s.session_id for s in stuck]

        # Having reached the listing's end, the next pass starts from the first again.
        await pins.unpin_all()
        assert await sweep.run_once(batch=2) == len(stuck)
        assert await lapsed_sessions(store, clock) == []
        assert sweep_warnings(caplog) == []


async def test_a_terminate_sweep_pass_finishes_the_terminates_listed_after_a_batch_that_keeps_failing(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    async with MemoryRuntime(settings_on_every_store, clock=clock) as rt:
        store = rt.store
        assert isinstance(store, UnfinishedTerminates)
        failing = [new_scope(f"bad-{n}") for n in range(2)]
        good = [new_scope(f"good-{n}") for n in range(3)]
        real_mark = rt.working_store.mark_terminated
        failing_ids = {s.session_id for s in failing + good}

        async def mark_fails_for(scope: Scope, now: float, clear: bool, recorded: Incarnation | None) -> int:
            # The session's working memory sits where nothing answers (a dead Cluster node): terminate's last step,
            # and every finish of it, fails there; elsewhere it runs as is.
            if scope.session_id in failing_ids:
                raise Unavailable(f"the working store did not answer for {scope.session_id}")
            return await real_mark(scope, now, clear, recorded)

        rt.working_store.mark_terminated = mark_fails_for  # type: ignore[method-assign]
        # Spawned and terminated in this order, so the listing (by row) puts the failing ones first, a whole batch.
        for scope in failing + good:
            await rt.lifecycle.spawn(*ids(scope), initial_state=INITIAL)
            with pytest.raises(Unavailable):
                await rt.lifecycle.terminate(*ids(scope), task_description="ship it")
        failing_ids = {s.session_id for s in failing}

        assert await rt.terminate_sweep.run_once(batch=2) == len(good)
        for scope in good:
            record = await rt.store.get_session(scope)
            assert record is not None and not record.terminate_unfinished
        assert {s.scope for s in await store.unfinished_terminates(clock(), 100)} == set(failing)

        failing_ids = set()
        assert await rt.terminate_sweep.run_once(batch=2) == len(failing)
        assert await store.unfinished_terminates(clock(), 100) == []
