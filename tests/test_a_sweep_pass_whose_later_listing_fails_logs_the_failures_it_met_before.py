"""A sweep's pass whose listing of a later batch fails logs, once, the warnings it had gathered on the items of the
batches before (which failed, how many, the first), then fails as before (the periodic runner logs ``… sweep
failed``).

Before, a pass gathered its failures to log them once at its end, which a failing listing never reached: the
operator saw that the pass failed, not that items had failed before it (a store down for writes, then for reads).
The failures are real: the ``sessions`` table renamed away by another client between two batches (every statement of
the store on it fails, the listing too), after rows whose deletion or update the database refused on that account,
or staged state that a stopped ``redis-server`` of the test's own could not drop. Time moves on a fake clock.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import MemoryServiceError
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.spawn_sweep import SWEEP_MARGIN_SECONDS as SPAWN_MARGIN
from tests.conftest import FakeClock, new_scope
from tests.cut_off_spawns import cut_off_spawn
from tests.cut_off_terminates import cut_off_terminates
from tests.failing_stores import SessionsTable, warnings_of, with_private_redis

pytestmark = pytest.mark.anyio

INITIAL = {"goal": "ship", "step": 3}
SPAWN_SWEEP = "mcp_memory.services.spawn_sweep"
TERMINATE_SWEEP = "mcp_memory.services.terminate_sweep"


async def cut_off_spawns(rt: MemoryRuntime, clock: FakeClock, names: list[str]) -> None:
    """Spawns of sessions ``names``, cut off a second apart (the listing's order), lapsed past the sweep's margin."""
    for name in names:
        await cut_off_spawn(rt, new_scope(name), INITIAL)
        clock.advance(1)
    clock.advance(rt.settings.spawn_lease_seconds + SPAWN_MARGIN)


async def test_a_spawn_sweep_pass_whose_second_listing_fails_logs_the_deletions_that_failed_before_it(
    settings_on_every_store: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, SPAWN_SWEEP)
    async with (
        MemoryRuntime(settings_on_every_store, clock=clock) as rt,
        SessionsTable(rt.settings.database_url or "") as table,
    ):
        sweep = rt.spawn_sweep
        assert sweep is not None
        await cut_off_spawns(rt, clock, ["first", "second", "third"])
        # After the first batch's staged state is dropped, before its rows go: both deletions fail, then the
        # listing of the next batch.
        async with table.away_from("sweep.staged_dropped"):
            with pytest.raises(MemoryServiceError):
                await sweep.run_once(batch=2)
        [warning] = warnings_of(caplog, SPAWN_SWEEP)
        assert "deleting the rows of 2 spawns failed" in warning and "first" in warning, warning


@pytest.mark.parametrize("records", ["sqlite", "postgres"])
async def test_a_spawn_sweep_pass_whose_second_listing_fails_logs_the_drops_redis_failed_before_it(
    records: str, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, SPAWN_SWEEP)
    async with (
        with_private_redis(records, tmp_path) as (settings, server),
        MemoryRuntime(settings, clock=clock) as rt,
        SessionsTable(settings.database_url or "") as table,
    ):
        sweep = rt.spawn_sweep
        assert sweep is not None
        await cut_off_spawns(rt, clock, ["first", "second", "third"])
        server.stop()
        try:
            async with table.away_from("sweep.staged_dropped"):
                with pytest.raises(MemoryServiceError):
                    await sweep.run_once(batch=2)
        finally:
            server.start()
        [warning] = warnings_of(caplog, SPAWN_SWEEP)
        assert "dropping the staged state of 2 spawns failed" in warning and "first" in warning, warning


async def test_a_terminate_sweep_pass_whose_second_listing_fails_logs_the_finishings_that_failed_before_it(
    settings_on_every_store: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, TERMINATE_SWEEP)
    async with (
        MemoryRuntime(settings_on_every_store, clock=clock) as rt,
        SessionsTable(rt.settings.database_url or "") as table,
    ):
        await cut_off_terminates(rt, clock, [new_scope(name) for name in ("first", "second", "third")], INITIAL)
        # The first one's finishing has closed its working memory and let go of the session: it fails from there,
        # the second fails too, then the listing of the next batch.
        async with table.away_from("terminate.completing"):
            with pytest.raises(MemoryServiceError):
                await rt.terminate_sweep.run_once(batch=2)
        [warning] = warnings_of(caplog, TERMINATE_SWEEP)
        assert "finishing 2 terminates failed" in warning and "first" in warning, warning
