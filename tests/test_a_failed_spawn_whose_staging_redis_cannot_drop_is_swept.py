"""A spawn that fails after staging its initial state in Redis is undone (mcp_memory.services.staged_spawn). If Redis
fails to drop the staging then, the undo used to have deleted the durable row already: the staged keys, which have no
expiry, stayed for good, since the spawn sweep finds staging only through the rows it lists. The undo now goes in the
sweep's order (the row's lease ends at once, Redis drops the staging, then the row goes), so such a failure leaves a
lapsed row that names the keys: the sweep's next pass removes both, without waiting for its margin (the spawn is known
dead), and a retried spawn takes the session over at once.

Redis's failure is a thin wrapper around the real store's ``drop_staged`` that raises once; on Redis + SQLite and
Redis + Postgres.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Unavailable
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.cut_off_spawns import ids, marker, redis_keys, rows
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio

INITIAL = {f"k{i}": {"n": i} for i in range(20)}
RETRY = {f"r{i}": i for i in range(5)}


@pytest.fixture(params=["redis+sqlite", "redis+postgres"])
async def redis_settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    async with settings_for(request.param, tmp_path) as settings:
        yield settings


async def fail_after_staging_while_redis_cannot_drop(
    rt: MemoryRuntime, scope: Scope, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spawn ``scope``, failing right after the staging; the undo's ``drop_staged`` fails once (then Redis works)."""
    working = rt.working_store
    assert isinstance(working, RedisWorkingStore)  # (else this would prove nothing)
    drop = working.drop_staged
    failures = [Unavailable("Redis dropped the connection")]

    async def drop_failing_once(at: Scope, token: str) -> None:
        if failures:
            raise failures.pop()
        await drop(at, token)

    async def fail(point: str) -> None:
        if point == "spawn.staged":
            raise RuntimeError("fault injected after staging")

    monkeypatch.setattr(working, "drop_staged", drop_failing_once)
    with faults.on_fault(fail), pytest.raises(RuntimeError, match="fault injected"):
        await rt.lifecycle.spawn(*ids(scope), initial_state=INITIAL)
    assert failures == []  # the undo did try Redis


async def test_a_failed_spawns_staging_that_redis_cannot_drop_keeps_a_row_the_sweep_removes_with_it(
    redis_settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with MemoryRuntime(redis_settings, clock=clock) as rt:
        scope = new_scope("undo-cut-short")
        await fail_after_staging_while_redis_cannot_drop(rt, scope, monkeypatch)

        # The staging is still there, and a row names it (the sweep lists rows: keys without one would stay for good).
        staging = marker(rt, scope)
        assert staging is not None and staging.startswith("p:")
        assert set(redis_keys(rt, scope).values()) == {-1}
        assert await rows(rt) == 1
        assert await rt.store.get_session(scope) is None  # and still no session for any call

        # The clock has not moved: the undo ended the lease, so the sweep need not wait out its margin.
        assert rt.spawn_sweep is not None
        assert await rt.spawn_sweep.run_once() == 1
        assert redis_keys(rt, scope) == {}
        assert await rows(rt) == 0
        assert (await rt.lifecycle.spawn(*ids(scope), initial_state=RETRY)).success
        assert await rt.working.state(scope) == RETRY


async def test_a_spawn_retried_after_an_undo_redis_cut_short_takes_the_session_over_at_once(
    redis_settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with MemoryRuntime(redis_settings, clock=clock) as rt:
        scope = new_scope("undo-cut-short-retried")
        await fail_after_staging_while_redis_cannot_drop(rt, scope, monkeypatch)

        assert (await rt.lifecycle.spawn(*ids(scope), initial_state=RETRY)).success
        assert await rt.working.state(scope) == RETRY
        assert marker(rt, scope) == "o"
        assert await rows(rt) == 1
        assert rt.spawn_sweep is not None
        assert await rt.spawn_sweep.run_once() == 0
        assert await rt.working.state(scope) == RETRY
