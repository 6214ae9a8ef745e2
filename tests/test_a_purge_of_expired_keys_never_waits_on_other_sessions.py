"""The Postgres purge of expired working-memory rows (every ``purge_every`` writes, inside that ``memory_set``'s
transaction) skips rows that other transactions hold, so a ``memory_set`` never waits on another session's writer.

Before, it deleted every expired row and so waited on each one held: two ``memory_set`` calls purging at once, each
having overwritten an expired key of its own session, deadlocked (one failed with ``conflict``), and a
``memory_set`` that purged while an operator's erase of another project was under way held its own session's row
and its caller until that erase committed (past the call's deadline: ``unavailable``).
"""

from __future__ import annotations

import time
import uuid

import anyio
import pytest

from mcp_memory.models import Item, Scope
from mcp_memory.stores.postgres.statements import LOCK_WRITABLE, SET_ITEM, scope_params
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.records import EventRecord, Limits
from mcp_memory.stores.sql.clauses import text
from tests.pg_servers import open_postgres_store
from tests.races import held_at

pytestmark = pytest.mark.anyio

LIMITS = Limits(max_keys=100)


async def session_with_expired_key(store: PostgresStore, now: float, project: uuid.UUID | None = None) -> Scope:
    """A new session whose key ``k`` expired just before ``now``."""
    scope = Scope(project or uuid.uuid4(), uuid.uuid4(), "s1")
    await store.create_session(scope, None, {}, now - 10, EventRecord("spawn", now - 10, 0.0, "ok", {}))
    await store.set(scope, "k", Item('"old"', now - 1), now - 10, LIMITS)
    return scope


async def test_two_purging_memory_sets_do_not_deadlock() -> None:
    async with open_postgres_store() as store:
        store.purge_every = 1
        now = time.time()
        a, b, bystander = [await session_with_expired_key(store, now) for _ in range(3)]
        engine = store._require_engine()
        # Two memory_set transactions (of two servers) as the store runs them, each overwriting its session's
        # expired key, then purging together: each purge meets the row the other has just written.
        async with engine.begin() as one, engine.begin() as two:
            for conn, scope in ((one, a), (two, b)):
                pk = (await conn.execute(text(LOCK_WRITABLE), scope_params(scope))).one().id
                params = {"pk": pk, "k": "k", "v": '"new"', "e": None, "now": now, "max": 100}
                assert (await conn.execute(text(SET_ITEM), params)).first() is not None
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(store._maybe_purge, one, now)
                    tg.start_soon(store._maybe_purge, two, now)
        for scope in (a, b):
            assert await store.get(scope, "k", now) == Item('"new"', None)
        assert await store.list_keys(bystander, "", now - 5) == []  # the purge deleted the expired row


async def test_a_memory_set_that_purges_does_not_wait_for_an_erase_of_another_project() -> None:
    async with open_postgres_store() as store:
        store.purge_every = 1
        now = time.time()
        erased = uuid.uuid4()
        await session_with_expired_key(store, now, erased)
        writer = Scope(uuid.uuid4(), uuid.uuid4(), "s1")
        await store.create_session(writer, None, {}, now, EventRecord("spawn", now, 0.0, "ok", {}))
        answered: list[float] = []

        async def erase() -> None:
            await store.erase(erased, None, None, now, dry_run=False)

        async def memory_set() -> None:
            started = time.monotonic()
            with anyio.fail_after(3):
                await store.set(writer, "x", Item("1"), now, LIMITS)
            answered.append(time.monotonic() - started)

        # The erase holds its deleted rows (the expired one included) at the fault point while the set runs whole.
        await held_at("erase.rows_deleted", erase, memory_set)
        assert answered and answered[0] < 1.0, answered
        assert await store.list_keys(writer, "", now) == ["x"]
