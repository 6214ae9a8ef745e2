"""A sweep's pass stops after ``FAILURES_IN_A_ROW`` (3) failures in a row of one step, with one warning that says so,
and the next pass starts after the last item it tried: a store that is down is not tried once per item, each try
waiting out its own failure, and items that keep failing first in the listing hold up the others for one pass only.

Before, only the spawn sweep's deletion of durable rows stopped so (its test is in
tests/test_a_sweep_pass_goes_past_items_that_keep_failing.py); its drops of staged state in Redis and the terminate
sweep's finishing went on through every item listed, however many failed in a row. The failures are real: a
``redis-server`` of the test's own, stopped (and started again on its port, keeping its keys), and a trigger of the
test's own that fails the durable updates of chosen sessions. Time moves on a fake clock.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.periodic import FAILURES_IN_A_ROW
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.spawn_sweep import SWEEP_MARGIN_SECONDS as SPAWN_MARGIN
from mcp_memory.stores.ports import LapsedSpawns
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.cut_off_spawns import cut_off_spawn
from tests.cut_off_terminates import cut_off_terminates, unfinished
from tests.failing_stores import StuckRows, warnings_of, with_private_redis
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.anyio

INITIAL = {"goal": "ship", "step": 3}
SPAWN_SWEEP = "mcp_memory.services.spawn_sweep"
TERMINATE_SWEEP = "mcp_memory.services.terminate_sweep"


def staged_keys(rt: MemoryRuntime, server: RedisServer, scope: Scope) -> int:
    """How many of the session's keys the private Redis holds."""
    assert isinstance(rt.working_store, RedisWorkingStore)
    client = server.client()
    try:
        return sum(bool(client.exists(k)) for k in rt.working_store.keys(scope))
    finally:
        client.close()


async def lapsed(rt: MemoryRuntime, clock: FakeClock) -> list[str]:
    assert isinstance(rt.store, LapsedSpawns)
    return [s.scope.session_id for s in await rt.store.lapsed_spawns(clock(), 100)]


@pytest.mark.parametrize("records", ["sqlite", "postgres"])
async def test_a_spawn_sweep_pass_stops_after_redis_fails_to_drop_in_a_row_and_the_next_goes_on_after_them(
    records: str, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, SPAWN_SWEEP)
    async with with_private_redis(records, tmp_path) as (settings, server), MemoryRuntime(settings, clock=clock) as rt:
        sweep = rt.spawn_sweep
        assert sweep is not None
        first = [new_scope(f"first-{n}") for n in range(FAILURES_IN_A_ROW)]
        later = [new_scope(f"later-{n}") for n in range(2)]
        for scope in first + later:
            await cut_off_spawn(rt, scope, INITIAL)
            clock.advance(1)
        clock.advance(settings.spawn_lease_seconds + SPAWN_MARGIN)

        server.stop()
        # Redis is down: the pass tries FAILURES_IN_A_ROW spawns (across two batches) and stops, with one warning.
        assert await sweep.run_once(batch=2) == 0
        [warning] = warnings_of(caplog, SPAWN_SWEEP)
        assert f"dropping the staged state of {FAILURES_IN_A_ROW} spawns failed" in warning, warning
        assert "stopped" in warning and "first-0" in warning
        assert await lapsed(rt, clock) == [s.session_id for s in first + later]

        server.start()
        # Back: the next pass starts after the spawns the last one tried; the first ones wait for the pass after.
        assert await sweep.run_once(batch=2) == len(later)
        assert warnings_of(caplog, SPAWN_SWEEP) == []
        assert await lapsed(rt, clock) == [s.session_id for s in first]
        assert all(staged_keys(rt, server, s) for s in first) and not any(staged_keys(rt, server, s) for s in later)

        assert await sweep.run_once(batch=2) == len(first)
        assert await lapsed(rt, clock) == [] and not any(staged_keys(rt, server, s) for s in first)


async def test_a_terminate_sweep_pass_stops_after_finishings_fail_in_a_row_and_the_next_goes_on_after_them(
    settings_on_every_store: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, TERMINATE_SWEEP)
    async with (
        MemoryRuntime(settings_on_every_store, clock=clock) as rt,
        StuckRows(rt.settings.database_url or "") as rows,
    ):
        stuck = [new_scope(f"stuck-{n}") for n in range(FAILURES_IN_A_ROW + 1)]
        good = [new_scope(f"good-{n}") for n in range(2)]
        await cut_off_terminates(rt, clock, stuck + good, INITIAL)
        # The durable store fails to claim the jobs of these (a write of their rows): down for writes, for them.
        await rows.stick(stuck)

        # The pass stops after the first FAILURES_IN_A_ROW: the last stuck one is not tried, nor the good ones.
        assert await rt.terminate_sweep.run_once(batch=2) == 0
        [warning] = warnings_of(caplog, TERMINATE_SWEEP)
        assert f"finishing {FAILURES_IN_A_ROW} terminates failed" in warning and "stopped" in warning, warning
        assert len(await unfinished(rt, clock)) == len(stuck + good)

        # The next starts after them: the last stuck one fails alone, the good ones are finished.
        assert await rt.terminate_sweep.run_once(batch=2) == len(good)
        [warning] = warnings_of(caplog, TERMINATE_SWEEP)
        assert "finishing 1 terminates failed" in warning and "stopped" not in warning, warning
        assert await unfinished(rt, clock) == [s.session_id for s in stuck]

        # Having reached the listing's end, the next pass starts from the first again.
        await rows.unstick_all()
        assert await rt.terminate_sweep.run_once(batch=2) == len(stuck)
        assert await unfinished(rt, clock) == []
        assert warnings_of(caplog, TERMINATE_SWEEP) == []


@pytest.mark.parametrize("records", ["sqlite", "postgres"])
async def test_a_terminate_sweep_pass_stops_while_redis_is_down_and_the_next_goes_on_after_the_ones_it_tried(
    records: str, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, TERMINATE_SWEEP)
    async with with_private_redis(records, tmp_path) as (settings, server), MemoryRuntime(settings, clock=clock) as rt:
        first = [new_scope(f"first-{n}") for n in range(FAILURES_IN_A_ROW)]
        later = [new_scope(f"later-{n}") for n in range(2)]
        await cut_off_terminates(rt, clock, first + later, INITIAL)

        server.stop()
        # Each finishing fails at its clear of working memory (Redis): the pass stops after FAILURES_IN_A_ROW.
        assert await rt.terminate_sweep.run_once(batch=2) == 0
        [warning] = warnings_of(caplog, TERMINATE_SWEEP)
        assert f"finishing {FAILURES_IN_A_ROW} terminates failed" in warning and "stopped" in warning, warning
        assert "first-0" in warning

        server.start()
        assert await rt.terminate_sweep.run_once(batch=2) == len(later)
        assert warnings_of(caplog, TERMINATE_SWEEP) == []
        assert await unfinished(rt, clock) == [s.session_id for s in first]
        # Their failed clears ended their leases: the pass after finishes them, with no wait.
        assert await rt.terminate_sweep.run_once(batch=2) == len(first)
        assert await unfinished(rt, clock) == []
