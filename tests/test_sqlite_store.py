"""The SQLite store under a runtime: its durability setting, expired rows purged as it goes, and a number of
statements per lifecycle call that does not grow with the number of keys (the Postgres equivalent is in
tests/test_postgres.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock, statements_per_lifecycle_call

pytestmark = pytest.mark.anyio


async def test_durability_level_is_a_setting(make_settings: Callable[..., Settings]) -> None:
    for level, expected in (("FULL", 2), ("NORMAL", 1)):
        async with MemoryRuntime(make_settings(sqlite_synchronous=level)) as rt:
            async with rt.store._write() as conn:
                assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == expected


async def test_expired_rows_are_purged(runtime: MemoryRuntime, scope: Scope, clock: FakeClock) -> None:
    await runtime.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)
    for i in range(5):
        await runtime.working.set(scope, f"t{i}", i, ttl_seconds=5)
    clock.advance(10)
    runtime.store.purge_every = 1
    await runtime.working.set(scope, "alive", 1)
    async with runtime.store._read() as conn:
        rows = (await conn.execute(text("SELECT key FROM working_items"))).scalars().all()
    assert rows == ["alive"]


async def test_store_statements_per_lifecycle_call_do_not_grow_with_keys(
    runtime: MemoryRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/contract.md: the cost of pause and resume in round trips to the store does not grow with the number of keys.
    Counted here as SQL statements sent (an executemany is one), both those sent through SQLAlchemy and those
    the store's hot calls send to ``sqlite3`` directly on the connection's thread."""
    from mcp_memory.stores.sqlite import connection as sqlite_connection

    statements: list[str] = []

    class Counted:
        """A sqlite3 connection that notes each statement it is given."""

        def __init__(self, db: Any) -> None:
            self._db = db

        def execute(self, sql: str, *args: Any) -> Any:
            statements.append(sql)
            return self._db.execute(sql, *args)

        def executemany(self, sql: str, rows: Any) -> Any:
            statements.append(sql)
            return self._db.executemany(sql, rows)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._db, name)

    for name in ("_in_transaction", "_in_autocommit", "_in_open_transaction"):
        runner = getattr(sqlite_connection, name)
        monkeypatch.setattr(sqlite_connection, name, lambda db, fn, run=runner: run(Counted(db), fn))

    small, large = await statements_per_lifecycle_call(runtime, statements)
    print("statements per call:", small)
    assert small == large, (small, large)
    # One write transaction each (BEGIN IMMEDIATE and COMMIT counted): spawn inserts the session, its event and
    # its items; pause reads the items, inserts checkpoint, status and event, and prunes checkpoints and events by
    # the retention policy (two DELETEs: SQLite has no data-modifying WITH; no PRAGMA: the connection has
    # secure_delete FAST from its opening); resume reads the checkpoint and the session, restores, and writes status
    # and event; the pause also looks up the session's newest checkpoint time, to date itself after a checkpoint
    # another process wrote while it waited for the lock. (Two-step path: 8, 8 in two transactions, 8.)
    assert small["spawn"] <= 5 and small["pause"] <= 9 and small["resume"] <= 8, small
