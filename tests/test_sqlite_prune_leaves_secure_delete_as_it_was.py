"""On SQLite a pause's retention prune runs with ``secure_delete`` FAST (the pruned checkpoint's overflow pages are
left to be reused, not zeroed and synced again), and the connection's own setting is back once the prune is done,
for the explicit deletions that follow (stores/sqlite/transitions.py, ``_prune_sync``). Seen through the statements the
pause's transaction runs on the writer connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.sqlite.store import SqliteStore
from tests.conftest import FakeClock, new_scope

pytestmark = pytest.mark.anyio


async def test_the_prune_runs_with_fast_secure_delete_and_restores_the_setting(db_url: str) -> None:
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
        settings_after: list[int] = []
        write = store._write_direct

        async def traced(fn: Callable[[sqlite3.Connection], Any]) -> Any:
            def run(db: sqlite3.Connection) -> Any:
                (before,) = db.execute("PRAGMA secure_delete").fetchone()
                db.set_trace_callback(seen.append)
                try:
                    return fn(db)
                finally:
                    db.set_trace_callback(None)
                    (after,) = db.execute("PRAGMA secure_delete").fetchone()
                    settings_after.append(after)
                    assert after == before

            return await write(run)

        store._write_direct = traced  # type: ignore[method-assign]
        await rt.lifecycle.pause(*ids, checkpoint_id="cp2")  # the third: cp0 goes
        listed = [c.checkpoint_id for c in await store.list_checkpoints(scope, 10, None)]
    assert sorted(listed) == ["cp1", "cp2"]
    fast = seen.index("PRAGMA secure_delete = FAST")
    deleted = next(i for i, sql in enumerate(seen) if sql.startswith("DELETE FROM checkpoints"))
    restored = next(i for i, sql in enumerate(seen) if sql.startswith("PRAGMA secure_delete = ") and i > fast)
    assert fast < deleted < restored
    assert settings_after  # the pause's transaction ran through the traced writer
