"""A sweep's pass tries every item it lists once and goes on past those that fail, so items that keep failing (their
Redis keys on a node that does not answer) never hold up the ones listed after them.

Before, the spawn sweep (mcp_memory.services.spawn_sweep) gave up its whole pass at the first spawn whose staged state
Redis failed to drop, and the terminate sweep (mcp_memory.services.terminate_sweep) ended its pass at a batch that
finished nothing; both list in the same order every pass, so a failing spawn, or a batch of failing terminates, starved
every later one for ever. The failures here are Redis's (or the working store's) for chosen sessions only, on real
stores; the rest are swept in the same pass, and the failing ones once they stop failing. Time moves on a fake clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Unavailable
from mcp_memory.models import Item, Scope, SessionInfo
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.spawn_sweep import SWEEP_MARGIN_SECONDS, SpawnSweep
from mcp_memory.stores.ports import Incarnation, LapsedSpawns, Limits, StagedSpawn, UnfinishedTerminates
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.cut_off_spawns import cut_off_spawn, ids, redis_keys
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
        assert set(await store.unfinished_terminates(clock(), 100)) == set(failing)

        failing_ids = set()
        assert await rt.terminate_sweep.run_once(batch=2) == len(failing)
        assert await store.unfinished_terminates(clock(), 100) == []
