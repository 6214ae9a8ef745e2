"""Two spawns of one session cut off in a row (working memory in Redis: mcp_memory.services.staged_spawn): the first
stages its initial state under its token and dies; once its lease is over, a second takes the durable row over under a
token of its own and dies, or fails, before it stages (which would have replaced the first's staging). Nothing of
either may stay for good: the session's row names only the second token, so the first's staged keys, which have no
expiry, would stay once no row named them, and the spawn sweep, which drops the staging of the row's token only, never
finds them. So the takeover drops the lapsed spawn's staged state before it takes the row over.

On Redis + SQLite and Redis + Postgres; a spawn "dies" held at a fault point (mcp_memory.faults) as a server that
stopped there, and fails by a hook raising there. Time moves on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.spawn_sweep import SWEEP_MARGIN_SECONDS
from tests.conftest import FakeClock, new_scope
from tests.cut_off_spawns import cut_off_spawn, ids, marker, redis_keys, rows
from tests.races import held_at
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio

FIRST = {f"k{i}": {"n": i} for i in range(20)}
SECOND = {"second": 2}
RETRY = {f"r{i}": i for i in range(5)}


@pytest.fixture(params=["redis+sqlite", "redis+postgres"])
async def redis_settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    async with settings_for(request.param, tmp_path) as settings:
        yield settings


async def test_a_takeover_cut_off_before_staging_leaves_nothing_once_swept(
    redis_settings: Settings, clock: FakeClock
) -> None:
    """The second spawn stops once it holds the row (its server died there) and the sweep runs on another server once
    its lease too is long over: the session's row and every Redis key of it are gone."""
    async with MemoryRuntime(redis_settings, clock=clock) as rt, MemoryRuntime(redis_settings, clock=clock) as other:
        scope = new_scope("twice")
        first = await cut_off_spawn(rt, scope, FIRST)
        assert marker(rt, scope) == f"p:{first}"
        clock.advance(rt.settings.spawn_lease_seconds + 1)

        async def second_spawn() -> None:
            # Woken up after the sweep, past its lease: it gives up, leaving nothing (no row of its own is left).
            with pytest.raises(Conflict, match="longer than its lease"):
                await rt.lifecycle.spawn(*ids(scope), initial_state=SECOND)

        async def sweep_while_it_is_stopped() -> None:
            assert await rows(rt) == 1
            clock.advance(rt.settings.spawn_lease_seconds + SWEEP_MARGIN_SECONDS + 1)
            assert other.spawn_sweep is not None
            assert await other.spawn_sweep.run_once() == 1
            assert redis_keys(rt, scope) == {}
            assert await rows(rt) == 0

        await held_at("spawn.begun", second_spawn, sweep_while_it_is_stopped)

        assert redis_keys(rt, scope) == {} and await rows(rt) == 0
        assert (await other.lifecycle.spawn(*ids(scope), initial_state=RETRY)).success
        assert await rt.working.state(scope) == RETRY


async def test_a_takeover_failing_before_staging_leaves_nothing_at_once(
    redis_settings: Settings, clock: FakeClock
) -> None:
    """The second spawn fails once it holds the row (its undo removes its own row and staging): nothing of the first
    is left either, with no sweep, and a retry succeeds at once with exactly its own state."""
    async with MemoryRuntime(redis_settings, clock=clock) as rt:
        scope = new_scope("twice")
        await cut_off_spawn(rt, scope, FIRST)
        clock.advance(rt.settings.spawn_lease_seconds + 1)

        async def fail(point: str) -> None:
            if point == "spawn.begun":
                raise RuntimeError("the second spawn failed here")

        with faults.on_fault(fail), pytest.raises(RuntimeError, match="failed here"):
            await rt.lifecycle.spawn(*ids(scope), initial_state=SECOND)

        assert redis_keys(rt, scope) == {}
        assert await rows(rt) == 0
        assert (await rt.lifecycle.spawn(*ids(scope), initial_state=RETRY)).success
        assert await rt.working.state(scope) == RETRY
