"""The statements sent on the asyncpg connection directly (a pause's and a resume's, their records, a checkpoint's
read) take a connection the store held from its previous such statement, with no checkout from SQLAlchemy's pool
(whose greenlet switch, bookkeeping and check-in cost more Python time than the rest of a small pause), and the
held connections never add to what the pool's size allows, nor outlive the store."""

from __future__ import annotations

import uuid

import anyio
import pytest
from sqlalchemy import event

from mcp_memory import MemoryRuntime, Scope, Settings
from mcp_memory.stores.postgres.connection import HELD_DRIVERS
from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers
from tests.waiting import until

pytestmark = pytest.mark.anyio


async def _server_connections(url: str, database: str) -> int:
    rows = await pg_servers.first_column(
        url, "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()", {"db": database}
    )
    return int(next(iter(rows)))


async def test_pauses_and_resumes_in_a_row_check_out_no_pooled_connection() -> None:
    name = await pg_servers.migrated_database()
    async with MemoryRuntime(Settings(database_url=pg_servers.database_url(name))) as rt:
        project, agent = uuid.uuid4(), uuid.uuid4()
        await rt.lifecycle.spawn(project, agent, "s", initial_state={"a": 1, "b": [1, 2]})
        await rt.lifecycle.pause(project, agent, "s")
        await rt.lifecycle.resume(project, agent, "s")
        store = rt.store
        assert isinstance(store, PostgresStore)
        checkouts: list[object] = []
        pool = store._require_engine().sync_engine.pool
        event.listen(pool, "checkout", lambda *args: checkouts.append(args))
        for _ in range(10):
            await rt.lifecycle.pause(project, agent, "s")
            await rt.lifecycle.resume(project, agent, "s")
        assert checkouts == []
        assert (await rt.lifecycle.resume(project, agent, "s")).data["items_restored"] == 2


async def test_held_connections_count_within_the_pool_size_and_close_with_the_store() -> None:
    name = await pg_servers.migrated_database()
    url = pg_servers.database_url(name)
    store = PostgresStore(url, pool_size=HELD_DRIVERS + 1, max_overflow=4)
    await store.start()
    try:
        all_in = anyio.Event()
        inside = 0
        wanted = HELD_DRIVERS + 5

        async def hold() -> None:
            nonlocal inside
            async with store._driver() as driver:
                inside += 1
                if inside == wanted:
                    all_in.set()
                await all_in.wait()  # the pool's connections and four of its overflow out at once

                assert await driver.fetchval("SELECT 1") == 1

        async with anyio.create_task_group() as tg:
            for _ in range(wanted):
                tg.start_soon(hold)

        # The overflow closed: the pool's size left open in the pool, and HELD_DRIVERS held beside it.
        pool = store._require_engine().sync_engine.pool
        assert pool.checkedout() == len(store._held_drivers) == HELD_DRIVERS
        assert pool.checkedin() == HELD_DRIVERS + 1
        assert await _server_connections(url, name) == 2 * HELD_DRIVERS + 1
        # Each held connection serves a statement; given back to a pool that holds its size idle, they close.
        held = [pooled.driver_connection for pooled in store._held_drivers]
        async with store._driver() as first, store._driver() as second:
            assert {first, second} == set(held)
            assert (await first.fetchval("SELECT 1"), await second.fetchval("SELECT 2")) == (1, 2)
        assert (store._held_drivers, pool.checkedin()) == ([], HELD_DRIVERS + 1)
        assert await _server_connections(url, name) == HELD_DRIVERS + 1
    finally:
        await store.close()
    assert store._held_drivers == []
    assert await _server_connections(url, name) == 0


async def test_a_pool_of_one_connection_serves_every_call_with_none_held() -> None:
    # No spare connection to hold: a pause's connection goes back, and the next call of any kind gets it at once.
    name = await pg_servers.migrated_database()
    settings = Settings(
        database_url=pg_servers.database_url(name),
        database_pool_size=1,
        database_max_overflow=0,
        database_timeout_seconds=2,
    )
    async with MemoryRuntime(settings) as rt:
        project, agent = uuid.uuid4(), uuid.uuid4()
        await rt.lifecycle.spawn(project, agent, "s", initial_state={"a": 1})
        for _ in range(3):
            await rt.lifecycle.pause(project, agent, "s")
            assert isinstance(rt.store, PostgresStore) and rt.store._held_drivers == []
            await rt.lifecycle.resume(project, agent, "s")
        done = await rt.lifecycle.terminate(project, agent, "s")
        assert done.success


async def test_a_step_that_finds_no_idle_connection_takes_a_held_one_back() -> None:
    name = await pg_servers.migrated_database()
    url = pg_servers.database_url(name)
    settings = Settings(database_url=url, database_pool_size=2, database_max_overflow=0)
    async with MemoryRuntime(settings) as rt:
        project, agent = uuid.uuid4(), uuid.uuid4()
        await rt.lifecycle.spawn(project, agent, "s", initial_state={"a": 1})
        store = rt.store
        assert isinstance(store, PostgresStore)
        await rt.lifecycle.pause(project, agent, "s")
        assert len(store._held_drivers) == 1
        connections = await _server_connections(url, name)
        # A read through SQLAlchemy's pool, which has none idle: it gets the held connection, no new one.
        assert await store.get_session(Scope(project, agent, "s")) is not None
        assert store._held_drivers == []
        assert await _server_connections(url, name) == connections


async def test_a_held_connection_the_server_closed_is_not_used_again() -> None:
    name = await pg_servers.migrated_database()
    url = pg_servers.database_url(name)
    async with MemoryRuntime(Settings(database_url=url)) as rt:
        project, agent = uuid.uuid4(), uuid.uuid4()
        await rt.lifecycle.spawn(project, agent, "s", initial_state={"a": 1})
        await rt.lifecycle.pause(project, agent, "s")
        store = rt.store
        assert isinstance(store, PostgresStore) and store._held_drivers
        held = [pooled.driver_connection for pooled in store._held_drivers]
        await pg_servers.first_column(
            url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = :db AND pid <> pg_backend_pid()",
            {"db": name},
        )
        await until(lambda: all(driver.is_closed() for driver in held), what="the held connections to see their end")
        # The pause finds its held connections closed, drops them, and runs on a connection of the pool's.
        assert (await rt.lifecycle.resume(project, agent, "s")).success
        assert (await rt.lifecycle.pause(project, agent, "s")).success
