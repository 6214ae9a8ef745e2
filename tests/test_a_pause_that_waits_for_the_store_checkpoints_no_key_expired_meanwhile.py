"""A pause that waits for the store (one store holds everything: SQLite alone, Postgres alone) behind another server's
memory_set of the same session checkpoints the state it then reads: that server's write, and not a key whose TTL ran
out while the pause waited (SPEC: an expired key is never checkpointed; pause is an atomic snapshot)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.models import LifecycleResult, Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.statements import SET_ITEM
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sqlite.statements import SET_SQL, scope_params
from tests.conftest import FakeClock
from tests.waiting import until

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "postgres")]


async def slow_set(b: MemoryRuntime, scope: Scope, clock: FakeClock, held: anyio.Event, go: anyio.Event) -> None:
    """Server B's memory_set of ``late`` (its own transaction and statements), slow between taking the store's lock
    (SQLite: BEGIN IMMEDIATE; Postgres: the session's row) and writing."""
    store = b.store
    async with store._write() as conn:  # type: ignore[attr-defined]
        if isinstance(store, PostgresStore):
            pk = await store._lock_writable(conn, scope)
            sql, params = SET_ITEM, {"pk": pk, "max": 100}
        else:
            sql, params = SET_SQL, {**scope_params(scope), "max": 100}
        held.set()
        await go.wait()
        await conn.execute(text(sql), {**params, "k": "late", "v": '"written at T+10"', "e": None, "now": clock()})


async def behind_a_slow_set(
    a: MemoryRuntime,
    b: MemoryRuntime,
    scope: Scope,
    clock: FakeClock,
    call: Callable[[], Awaitable[LifecycleResult]],
) -> dict[str, Any]:
    """``call``'s result data, the call made (by server A) while server B's :func:`slow_set` holds the store, and so
    waiting for it while the clock moves on 10 s (from T, which the call has read before it reached A's store, to
    T+10, when B's write lands)."""
    held, go, reached = anyio.Event(), anyio.Event(), anyio.Event()

    def noting_arrival(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def arriving(*args: Any, **kwargs: Any) -> Any:
            reached.set()
            return await method(*args, **kwargs)

        return arriving

    for name in ("pause_session", "resume_session"):  # on this runtime's store only, for its life
        setattr(a.store, name, noting_arrival(getattr(a.store, name)))
    done: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(slow_set, b, scope, clock, held, go)
        await held.wait()

        async def run() -> None:
            done.update((await call()).data)

        tg.start_soon(run)
        with anyio.fail_after(10):
            await reached.wait()  # the call has read the clock (T) and is at A's store, which B holds
        if isinstance(b.store, PostgresStore):
            # Postgres: on to the point where A waits for the session's row (its first statement found the row held
            # and wrote nothing; the second waits for B's lock), so that the time moves on while it waits, whatever
            # the order the two backends run in.
            await until(lambda: _lock_waiters(b.store), what="A's pause or resume to wait for B's row lock")
        clock.advance(10)
        go.set()
    return done


async def _lock_waiters(store: PostgresStore) -> int:
    async with store._read() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))).scalar_one())


async def test_a_key_that_expired_while_the_pause_waited_is_not_checkpointed(
    settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    async with MemoryRuntime(settings, clock=clock) as rt_a, MemoryRuntime(settings, clock=clock) as rt_b:
        await rt_a.lifecycle.spawn(p, a, s, initial_state={"keep": 1})
        await rt_a.working.set(scope, "short", "gone at T+5", ttl_seconds=5)
        done = await behind_a_slow_set(rt_a, rt_b, scope, clock, lambda: rt_a.lifecycle.pause(p, a, s))
        cp = await rt_a.store.get_checkpoint(scope, str(done["checkpoint_id"]))
        assert cp is not None
        assert "late" in cp.items  # B's write, committed at T+10, is in the snapshot...
        # ...so the snapshot was read after T+10, when "short" had expired: it must not be in it.
        assert sorted(cp.items) == ["keep", "late"], (sorted(cp.items), done)


async def test_a_resume_that_waited_for_the_store_counts_no_key_expired_meanwhile(
    settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    async with MemoryRuntime(settings, clock=clock) as rt_a, MemoryRuntime(settings, clock=clock) as rt_b:
        await rt_a.lifecycle.spawn(p, a, s, initial_state={"keep": 1})
        await rt_a.working.set(scope, "short", "gone at T+5", ttl_seconds=5)
        await rt_a.lifecycle.pause(p, a, s)
        done = await behind_a_slow_set(rt_a, rt_b, scope, clock, lambda: rt_a.lifecycle.resume(p, a, s))
        # Restored after B's write at T+10 (which the clearing resume removed): "short" had expired by then.
        assert await rt_a.working.list_keys(scope) == ["keep"]
        assert done["items_restored"] == 1, done
