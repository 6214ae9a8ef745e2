"""A spawn (working memory in Redis: mcp_memory.services.staged_spawn) that reaches the durable store to complete its
session only once its lease has run out completes nothing. By then a second spawn taking the session over, or the
spawn sweep, may have dropped its staged state (each does so before it removes the row): a completion then would make
a session whose initial state is gone, under the second spawn's feet. So the store completes it only while its own
token holds the row and its lease still runs at the clock read once the store is the spawn's; otherwise the spawn
fails (``conflict``, retry), undoes its own row and staging, and the second spawn's session is exactly its own.

The first spawn is held at ``spawn.completing`` (mcp_memory.faults) as a busy store would hold it: after its last look
at the clock before the call, before the store's write lock or a connection is its. On Redis + SQLite and Redis +
Postgres, two runtimes on the same stores standing for two servers; time moves on a fake clock. An ordinary spawn still
sends the statements and Redis round trips it did."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup
from sqlalchemy import event

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, MemoryServiceError
from mcp_memory.models import LifecycleResult, Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.spawn_sweep import SWEEP_MARGIN_SECONDS
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.cut_off_spawns import ids, marker, redis_keys, rows
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio

FIRST = {f"k{i}": {"n": i} for i in range(20)}
SECOND = {"second": 2}

Outcome = LifecycleResult | MemoryServiceError


@pytest.fixture(params=["redis+sqlite", "redis+postgres"])
async def redis_settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    async with settings_for(request.param, tmp_path) as settings:
        yield settings


class Gates:
    """Holds the first call to reach each of ``points`` there (as a busy store or a stopped server would) until the
    test lets it go, and tells the test when it has arrived."""

    def __init__(self, *points: str) -> None:
        self.arrived = {p: anyio.Event() for p in points}
        self.go = {p: anyio.Event() for p in points}

    async def __call__(self, point: str) -> None:
        arrived = self.arrived.get(point)
        if arrived is not None and not arrived.is_set():
            arrived.set()
            await self.go[point].wait()


class Spawns:
    """Spawns of one session run as tasks, each one's answer or error kept under its name."""

    def __init__(self, tg: TaskGroup, scope: Scope) -> None:
        self._tg = tg
        self._ids = ids(scope)
        self.outcomes: dict[str, Outcome] = {}
        self.done: dict[str, anyio.Event] = {}

    def start(self, name: str, server: MemoryRuntime, state: dict[str, Any]) -> None:
        self.done[name] = anyio.Event()
        self._tg.start_soon(self._run, name, lambda: server.lifecycle.spawn(*self._ids, initial_state=state))

    async def _run(self, name: str, call: Callable[[], Awaitable[LifecycleResult]]) -> None:
        try:
            self.outcomes[name] = await call()
        except MemoryServiceError as exc:
            self.outcomes[name] = exc
        finally:
            self.done[name].set()


def refused_as_lapsed(outcome: Outcome) -> None:
    assert isinstance(outcome, Conflict), outcome
    assert "took longer than its lease" in outcome.message and "retry" in outcome.message, outcome.message


def spawned(outcome: Outcome, state: dict[str, Any]) -> None:
    assert isinstance(outcome, LifecycleResult), outcome
    assert outcome.data["initial_items"] == len(state), outcome.data


async def holds_exactly(servers: tuple[MemoryRuntime, ...], scope: Scope) -> None:
    """The session exists once, running, with exactly the second spawn's state on every server, and works on."""
    first, *_ = servers
    assert await rows(first) == 1
    for server in servers:
        session = await server.store.get_session(scope)
        assert session is not None and session.status == "running"
        assert await server.working.state(scope) == SECOND
    assert marker(first, scope) == "o"
    paused = await first.lifecycle.pause(*ids(scope))
    assert paused.data["items_saved"] == len(SECOND)


@pytest.mark.parametrize("takeover", ["mid_way", "completed"])
async def test_a_spawn_reaching_the_store_after_a_takeover_fails_and_the_session_is_the_second_spawns(
    redis_settings: Settings, clock: FakeClock, takeover: str
) -> None:
    """The first spawn reaches the store past its lease once the second spawn has dropped its staged state and before
    it takes the row over (``mid_way``: the row is still the first's), or once the second has completed
    (``completed``): the first fails, the second succeeds, and the session holds exactly the second's state."""
    async with MemoryRuntime(redis_settings, clock=clock) as a, MemoryRuntime(redis_settings, clock=clock) as b:
        scope = new_scope("late")
        gates = Gates("spawn.completing", "spawn.lapsed_dropped")
        with faults.on_fault(gates), anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                spawns = Spawns(tg, scope)
                spawns.start("first", a, FIRST)
                await gates.arrived["spawn.completing"].wait()
                clock.advance(a.settings.spawn_lease_seconds + 1)
                if takeover == "completed":
                    gates.go["spawn.lapsed_dropped"].set()
                    spawns.start("second", b, SECOND)
                    await spawns.done["second"].wait()
                    gates.go["spawn.completing"].set()
                else:
                    spawns.start("second", b, SECOND)
                    await gates.arrived["spawn.lapsed_dropped"].wait()
                    assert redis_keys(a, scope) == {}  # the first's staged state is gone; its row is still there
                    gates.go["spawn.completing"].set()
                    await spawns.done["first"].wait()
                    gates.go["spawn.lapsed_dropped"].set()
        refused_as_lapsed(spawns.outcomes["first"])
        spawned(spawns.outcomes["second"], SECOND)
        await holds_exactly((a, b), scope)


async def test_a_spawn_reaching_the_store_after_the_sweep_dropped_its_staging_fails_and_leaves_nothing(
    redis_settings: Settings, clock: FakeClock
) -> None:
    """The sweep, once the first spawn's lease is long over, has dropped its staged state and not yet its row when the
    first spawn reaches the store: the first fails and removes its row itself, the sweep finds nothing left to remove,
    and a second spawn succeeds at once with exactly its own state."""
    async with MemoryRuntime(redis_settings, clock=clock) as a, MemoryRuntime(redis_settings, clock=clock) as b:
        assert b.spawn_sweep is not None
        sweep = b.spawn_sweep
        scope = new_scope("late")
        gates = Gates("spawn.completing", "sweep.staged_dropped")
        removed: list[int] = []

        async def sweep_once() -> None:
            removed.append(await sweep.run_once())

        with faults.on_fault(gates), anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                spawns = Spawns(tg, scope)
                spawns.start("first", a, FIRST)
                await gates.arrived["spawn.completing"].wait()
                clock.advance(a.settings.spawn_lease_seconds + SWEEP_MARGIN_SECONDS + 1)
                tg.start_soon(sweep_once)
                await gates.arrived["sweep.staged_dropped"].wait()
                assert redis_keys(a, scope) == {}
                gates.go["spawn.completing"].set()
                await spawns.done["first"].wait()
                gates.go["sweep.staged_dropped"].set()
        refused_as_lapsed(spawns.outcomes["first"])
        assert removed == [0]
        assert await rows(a) == 0 and redis_keys(a, scope) == {}
        spawned(await b.lifecycle.spawn(*ids(scope), initial_state=SECOND), SECOND)
        await holds_exactly((a, b), scope)


async def test_an_ordinary_spawn_sends_the_statements_and_round_trips_it_did(redis_settings: Settings) -> None:
    """The lease is checked within the completion's one UPDATE: a spawn sends ``begin_spawn``'s statements (SQLite:
    its transaction's BEGIN IMMEDIATE and the session's and its event's INSERTs; Postgres: one statement), then the
    completion (SQLite: BEGIN IMMEDIATE and the UPDATE; Postgres: the UPDATE), and Redis the staging and the commit,
    for a few keys or many."""
    sqlite = redis_settings.database_url.startswith("sqlite")
    expected = (
        ["BEGIN IMMEDIATE", "INSERT INTO sessions", "INSERT INTO events", "BEGIN IMMEDIATE", "UPDATE sessions SET"]
        if sqlite
        else ["WITH s AS", "UPDATE sessions SET"]
    )
    async with MemoryRuntime(redis_settings) as rt:
        working = rt.working_store
        assert isinstance(working, RedisWorkingStore)
        engine = rt.store._require_engine().sync_engine  # type: ignore[attr-defined]
        sent: list[str] = []

        def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            sent.append(" ".join(statement.split()[:3]))

        event.listen(engine, "before_cursor_execute", note)
        try:
            for keys in (1, 500):
                scope = new_scope(f"s{keys}")
                sent.clear()
                before = working.round_trips
                state = {f"k{i}": i for i in range(keys)}
                spawned(await rt.lifecycle.spawn(*ids(scope), initial_state=state), state)
                assert sent == expected, sent
                assert working.round_trips - before == 2
        finally:
            event.remove(engine, "before_cursor_execute", note)
