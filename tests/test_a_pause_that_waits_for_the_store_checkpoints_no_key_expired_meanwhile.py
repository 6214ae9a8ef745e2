"""A pause that waits for the store (one store holds everything: SQLite alone, Postgres alone) behind another server's
memory_set of the same session checkpoints the state it then reads: that server's write, and not a key whose TTL ran
out while the pause waited (SPEC: an expired key is never checkpointed; pause is an atomic snapshot)."""

from __future__ import annotations

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.statements import SET_ITEM
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sqlite.statements import SET_SQL, scope_params
from tests.conftest import FakeClock

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


async def test_a_key_that_expired_while_the_pause_waited_is_not_checkpointed(
    settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    async with MemoryRuntime(settings, clock=clock) as rt_a, MemoryRuntime(settings, clock=clock) as rt_b:
        await rt_a.lifecycle.spawn(p, a, s, initial_state={"keep": 1})
        await rt_a.working.set(scope, "short", "gone at T+5", ttl_seconds=5)
        held, go = anyio.Event(), anyio.Event()
        done: dict[str, object] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_set, rt_b, scope, clock, held, go)
            await held.wait()

            async def pause() -> None:
                done.update((await rt_a.lifecycle.pause(p, a, s)).data)

            tg.start_soon(pause)
            await anyio.sleep(0.5)  # A's pause has read the clock (T) and waits for the store
            clock.advance(10)
            go.set()
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
        held, go = anyio.Event(), anyio.Event()
        done: dict[str, object] = {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_set, rt_b, scope, clock, held, go)
            await held.wait()

            async def resume() -> None:
                done.update((await rt_a.lifecycle.resume(p, a, s)).data)

            tg.start_soon(resume)
            await anyio.sleep(0.5)  # A's resume has read the clock (T) and waits for the store
            clock.advance(10)
            go.set()
        # Restored after B's write at T+10 (which the clearing resume removed): "short" had expired by then.
        assert await rt_a.working.list_keys(scope) == ["keep"]
        assert done["items_restored"] == 1, done
