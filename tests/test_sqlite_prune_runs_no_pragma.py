"""On SQLite a pause's retention prune runs under the writer connection's ``secure_delete``, FAST from its opening
(the pruned checkpoint's overflow pages are left to be reused, not zeroed and synced again), and sends no PRAGMA of
its own: nothing is read, set and put back in the pause's transaction (stores/sqlite/transitions.py, ``_prune_sync``;
stores/sqlite/connection.py). Seen through the statements the pause's transaction runs on the writer connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.sqlite.secure_delete import SETTINGS
from mcp_memory.stores.sqlite.store import SqliteStore
from tests.conftest import FakeClock, new_scope

pytestmark = pytest.mark.anyio


async def test_a_pause_at_the_retention_bound_prunes_with_no_pragma_under_the_writers_fast_secure_delete(
    db_url: str,
) -> None:
    settings = Settings(database_url=db_url, checkpoint_retention_count=2)
    scope = new_scope()
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    async with MemoryRuntime(settings, clock=FakeClock()) as rt:
        store = rt.store
        assert isinstance(store, SqliteStore)
        await rt.lifecycle.spawn(*ids, initial_state={f"k{i}": "x" * 200 for i in range(50)})
        for i in range(2):
            await rt.lifecycle.pause(*ids, checkpoint_id=f"cp{i}")
        seen: list[str] = []
        write = store._write_direct

        async def traced(fn: Callable[[sqlite3.Connection], Any]) -> Any:
            def run(db: sqlite3.Connection) -> Any:
                db.set_trace_callback(seen.append)
                try:
                    return fn(db)
                finally:
                    db.set_trace_callback(None)

            return await write(run)

        store._write_direct = traced  # type: ignore[method-assign]
        await rt.lifecycle.pause(*ids, checkpoint_id="cp2")  # the third: cp0 goes
        store._write_direct = write  # type: ignore[method-assign]
        listed = [c.checkpoint_id for c in await store.list_checkpoints(scope, 10, None)]
        (setting,) = await write(lambda db: db.execute("PRAGMA secure_delete").fetchone())
    assert sorted(listed) == ["cp1", "cp2"]
    assert any(sql.startswith("DELETE FROM checkpoints") for sql in seen), seen
    assert [sql for sql in seen if sql.lstrip().upper().startswith("PRAGMA")] == []
    assert SETTINGS[setting] == "FAST"
