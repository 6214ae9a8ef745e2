"""Connections beyond the Postgres pool's size (its overflow), used by the statements sent on the asyncpg
connection directly (pause's and resume's records, a checkpoint's read), are closed when they are given back:
with the protocol's goodbye, no error logged, and none left open on the server. Under load (50 agents at once) the
pool used to close them in its synchronous code, which cannot await asyncpg outside a greenlet: it logged
``Exception closing connection`` and left the connection open."""

from __future__ import annotations

import logging

import anyio
import pytest

from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers

pytestmark = pytest.mark.anyio


async def _server_connections(url: str, database: str) -> int:
    rows = await pg_servers.first_column(
        url, "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()", {"db": database}
    )
    return int(next(iter(rows)))


async def test_overflow_connections_given_back_are_closed_without_error(caplog: pytest.LogCaptureFixture) -> None:
    name = await pg_servers.migrated_database()
    url = pg_servers.database_url(name)
    store = PostgresStore(url, pool_size=1, max_overflow=4)
    await store.start()
    caplog.set_level(logging.ERROR)
    try:
        all_in = anyio.Event()
        inside = 0

        async def hold() -> None:
            nonlocal inside
            async with store._driver() as driver:
                inside += 1
                if inside == 5:
                    all_in.set()
                await all_in.wait()  # five connections out at once: the pool's one and four of its overflow
                assert await driver.fetchval("SELECT 1") == 1

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(hold)

        pool = store._require_engine().sync_engine.pool
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)
        assert await _server_connections(url, name) == 1
        assert not [r for r in caplog.records if "closing connection" in r.getMessage()]
        # The pool's own connection still serves the next statement.
        async with store._driver() as driver:
            assert await driver.fetchval("SELECT 2") == 2
    finally:
        await store.close()
