"""A spawn cut off by a crash before it completed (working memory in Redis: mcp_memory.services.staged_spawn) leaves an
incomplete durable session and, in Redis, its staged initial state with no expiry. Nothing but a later spawn of the same
session id or a forget removed them; the spawn sweep (mcp_memory.services.spawn_sweep) now does, once the spawn's lease
has been over for the sweep's margin, on every store pair, and never at the expense of a spawn that is still alive or
one retried while the sweep runs.

The crash is the first steps of a spawn made at the store level and never completed nor undone (what a server killed
there leaves), or a real ``mcp-memory serve`` exiting at that step (``MCP_MEMORY_FAULT_EXIT_AT``). Time moves on a fake
clock, so no test waits for a lease on the wall clock.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.spawn_sweep import SWEEP_MARGIN_SECONDS, SpawnSweep
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.cut_off_spawns import cut_off_spawn, ids, marker, redis_keys, rows
from tests.races import held_at
from tests.redis_servers import shared_redis_url
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio

INITIAL = {f"k{i}": {"n": i} for i in range(20)}
RETRY = {f"r{i}": i for i in range(5)}


def sweep_of(rt: MemoryRuntime) -> SpawnSweep:
    assert rt.spawn_sweep is not None
    return rt.spawn_sweep


async def test_a_sweep_removes_a_crashed_spawns_row_and_staged_keys_and_spares_live_ones(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    async with MemoryRuntime(settings_on_every_store, clock=clock) as rt:
        redis_too = isinstance(rt.working_store, RedisWorkingStore)
        lease = rt.settings.spawn_lease_seconds
        crashed = new_scope("crashed")
        await cut_off_spawn(rt, crashed, INITIAL)
        # What the crash leaves: a session no call sees, whose spawn is "in progress" (a spawn in one transaction,
        # without Redis, cannot take such a row over at all: "exists already"), a row and (Redis) keys for good.
        assert await rt.store.get_session(crashed) is None
        with pytest.raises(Conflict, match="in progress" if redis_too else "exists already"):
            await rt.lifecycle.spawn(*ids(crashed), initial_state=RETRY)
        assert [e.event_type for e in await rt.store.list_events(crashed, 10)] == ["spawn"]
        if redis_too:
            assert marker(rt, crashed) is not None and set(redis_keys(rt, crashed).values()) == {-1}

        # Its lease is over (with Redis, a spawn of the session would take it over now), but not by the margin yet: a
        # spawn that is slow to stop is left alone.
        clock.advance(lease + 1)
        assert await sweep_of(rt).run_once() == 0
        assert await rows(rt) == 1

        clock.advance(SWEEP_MARGIN_SECONDS)
        live = new_scope("live")  # a spawn under way, its lease running
        live_token = await cut_off_spawn(rt, live, INITIAL)
        done = new_scope("done")
        assert (await rt.lifecycle.spawn(*ids(done), initial_state={"d": 1})).success
        staged_live = redis_keys(rt, live)
        assert await sweep_of(rt).run_once(batch=1) == 1

        assert await rows(rt) == 2  # the live spawn's incomplete row and the completed session
        assert await rt.store.list_events(crashed, 10) == []
        assert redis_keys(rt, crashed) == {}
        assert redis_keys(rt, live) == staged_live
        assert await sweep_of(rt).run_once() == 0
        # The live spawn goes on as if no sweep had run: it completes, with its whole initial state.
        await rt.store.complete_spawn(live, live_token, clock())
        assert await rt.working.state(live) == (INITIAL if redis_too else {})
        assert await rt.working.state(done) == {"d": 1}
        # The swept session id spawns again at once.
        assert (await rt.lifecycle.spawn(*ids(crashed), initial_state=RETRY)).success
        assert await rt.working.state(crashed) == RETRY
        with pytest.raises(Conflict, match="exists already"):
            await rt.lifecycle.spawn(*ids(crashed), initial_state=RETRY)


@pytest.fixture(params=["redis+sqlite", "redis+postgres"])
async def redis_settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    async with settings_for(request.param, tmp_path) as settings:
        yield settings


@pytest.mark.parametrize("point", faults.SWEEP_POINTS)
async def test_a_spawn_retried_while_the_sweep_runs_wins(
    redis_settings: Settings, clock: FakeClock, point: str
) -> None:
    """Another server retries the spawn (taking the lapsed row over, staging, completing, committing) while this
    server's sweep is held between its steps; the sweep then drops nothing of it."""
    async with MemoryRuntime(redis_settings, clock=clock) as sweeping, MemoryRuntime(redis_settings, clock=clock) as rt:
        scope = new_scope("retried")
        crashed_token = await cut_off_spawn(rt, scope, INITIAL)
        clock.advance(rt.settings.spawn_lease_seconds + SWEEP_MARGIN_SECONDS + 1)
        removed: list[int] = []

        async def sweep() -> None:
            removed.append(await sweep_of(sweeping).run_once())

        async def retry() -> None:
            assert (await rt.lifecycle.spawn(*ids(scope), initial_state=RETRY)).success

        await held_at(point, sweep, retry)

        assert removed == [0]
        assert marker(rt, scope) == "o" != f"p:{crashed_token}"
        assert await rt.working.state(scope) == RETRY
        assert await rows(rt) == 1


async def test_a_retry_staged_but_not_completed_while_the_sweep_runs_completes_whole(
    redis_settings: Settings, clock: FakeClock
) -> None:
    """The retry has taken the row over and staged its state when the sweep, which listed the crashed spawn before,
    goes on: it leaves the retry's row and staging alone, and the retry completes with exactly its own state."""
    async with MemoryRuntime(redis_settings, clock=clock) as sweeping, MemoryRuntime(redis_settings, clock=clock) as rt:
        scope = new_scope("half-retried")
        crashed_token = await cut_off_spawn(rt, scope, INITIAL)
        clock.advance(rt.settings.spawn_lease_seconds + SWEEP_MARGIN_SECONDS + 1)
        listed, staged, swept = anyio.Event(), anyio.Event(), anyio.Event()

        async def hold(point: str) -> None:
            if point == "sweep.listed" and not listed.is_set():
                listed.set()
                await staged.wait()
            elif point == "spawn.staged" and not staged.is_set():
                staged.set()
                await swept.wait()

        async def sweep() -> None:
            assert await sweep_of(sweeping).run_once() == 0
            retry_staging = marker(rt, scope)
            assert retry_staging is not None and retry_staging.startswith("p:")
            assert retry_staging != f"p:{crashed_token}"
            assert redis_keys(rt, scope)  # (the retry's staged keys are all still there: checked by its state below)
            swept.set()

        async def retry() -> None:
            await listed.wait()
            assert (await rt.lifecycle.spawn(*ids(scope), initial_state=RETRY)).success

        with faults.on_fault(hold), anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sweep)
                tg.start_soon(retry)

        assert await rt.working.state(scope) == RETRY
        assert await rows(rt) == 1


async def test_a_sweep_stopped_between_its_steps_leaves_the_row_for_the_next_pass(
    redis_settings: Settings, clock: FakeClock
) -> None:
    """Redis's staged keys go first: a pass cut off after them leaves the durable row, which names the spawn to the next
    pass (never keys that no row names any more)."""
    async with MemoryRuntime(redis_settings, clock=clock) as rt:
        scope = new_scope("interrupted")
        await cut_off_spawn(rt, scope, INITIAL)
        clock.advance(rt.settings.spawn_lease_seconds + SWEEP_MARGIN_SECONDS + 1)

        async def fail(point: str) -> None:
            if point == "sweep.staged_dropped":
                raise RuntimeError("the sweep stopped here")

        with faults.on_fault(fail), pytest.raises(RuntimeError, match="stopped here"):
            await sweep_of(rt).run_once()
        assert redis_keys(rt, scope) == {}
        assert await rows(rt) == 1

        assert await sweep_of(rt).run_once() == 1
        assert await rows(rt) == 0
        assert (await rt.lifecycle.spawn(*ids(scope), initial_state=RETRY)).success
        assert await rt.working.state(scope) == RETRY


# -- a real server process exits in the middle of a spawn ------------------------------------------------------------
EXE = Path(sys.executable).parent / "mcp-memory"


@pytest.mark.parametrize("records", ["sqlite", "postgres"])
async def test_a_server_killed_mid_spawn_leaves_nothing_once_the_sweep_has_run(tmp_path: Path, records: str) -> None:
    async with settings_for(f"redis+{records}", tmp_path) as settings:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
        env.update(
            MCP_MEMORY_DATABASE_URL=settings.database_url,
            MCP_MEMORY_CONFIG="",
            MCP_MEMORY_REDIS_URL=shared_redis_url(),
            MCP_MEMORY_REDIS_KEY_PREFIX=settings.redis_key_prefix,
            **{faults.EXIT_ENV: "spawn.staged"},
        )
        spawn = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "desk"}
        async with Client(StdioServerParameters(command=str(EXE), args=["serve"], env=env)) as client:
            with pytest.raises(Exception):  # noqa: B017 (the connection dies with the server)
                await client.call_tool("spawn", {**spawn, "initial_state": INITIAL})
        scope = Scope.parse(spawn["project_id"], spawn["agent_instance_id"], spawn["session_id"])

        # This server's clock is past the dead spawn's lease and the margin (the dead one ran on the wall clock).
        clock = FakeClock(time.time() + settings.spawn_lease_seconds + SWEEP_MARGIN_SECONDS + 60)
        async with MemoryRuntime(settings, clock=clock) as rt:
            assert marker(rt, scope) is not None and await rows(rt) == 1
            assert await sweep_of(rt).run_once() == 1
            assert redis_keys(rt, scope) == {} and await rows(rt) == 0
            assert (await rt.lifecycle.spawn(*ids(scope), initial_state=RETRY)).success
            assert await rt.working.state(scope) == RETRY
