"""The terminate sweep (``services/terminate_sweep.py``; its listing in ``stores/sql/unfinished_terminates.py``) lists
the unfinished terminates through ``sessions_unfinished_terminates``, a partial index on ``sessions.id`` of the rows
whose terminate has not finished (Postgres migration 0023, SQLite schema 10): a pass reads those few rows, not the
``sessions`` table, and a listing that goes on after an earlier one starts at its bound on the index's key (the row
the earlier one ended at, whether or not it is still there). The statements a real pass sent are explained with the
parameters it sent them with, on SQLite and on Postgres; no timing here, the plan is the fact."""

from __future__ import annotations

import re

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sqlite.store import SqliteStore
from tests.conftest import FakeClock, new_scope
from tests.cut_off_spawns import ids
from tests.cut_off_terminates import cut_off_terminates
from tests.query_plans import plan, sent_by

pytestmark = pytest.mark.anyio

_LISTING = "terminate_unfinished AND (seal_until IS NULL"
"""The sweep's listing (``UNFINISHED_TERMINATES``), told apart from its claims and finishings."""
_PG_INDEX = re.compile(r"Index (?:Only )?Scan (?:Backward )?(?:using|on) (\w+)")
"""A Postgres step reading an index (a bitmap's, or an index scan's), and which."""


def through_the_index(lines: list[str], after: bool) -> bool:
    """Whether the plan reads ``sessions`` only through ``sessions_unfinished_terminates``, bounded by the row gone
    on after (``after``) as the index's condition. On SQLite also in the index's order (no sort); Postgres may sort
    what it found when it reads the index as a bitmap, which it chooses on the few rows the index holds."""
    if any("cost=" in line for line in lines):
        indexes = [m.group(1) for line in lines if (m := _PG_INDEX.search(line))]
        whole = any("Seq Scan" in line for line in lines)
        bounded = any("Index Cond:" in line and "id > " in line for line in lines)
        return indexes == ["sessions_unfinished_terminates"] and not whole and bounded == after
    [step] = lines
    expected = "SEARCH sessions USING INDEX sessions_unfinished_terminates (id>?)"
    return step == (expected if after else "SCAN sessions USING INDEX sessions_unfinished_terminates")


@pytest.mark.backends("sqlite", "postgres")
async def test_the_terminate_sweep_lists_the_unfinished_terminates_through_an_index(
    settings: Settings, clock: FakeClock
) -> None:
    async with MemoryRuntime(settings, clock=clock) as rt:
        store = rt.store
        assert isinstance(store, SqliteStore | PostgresStore)
        for n in range(3):  # finished terminates and live sessions: never in the index
            scope = new_scope(f"done-{n}")
            await rt.lifecycle.spawn(*ids(scope))
            if n:
                await rt.lifecycle.terminate(*ids(scope))
        await cut_off_terminates(rt, clock, [new_scope(f"cut-off-{n}") for n in range(3)], {"goal": "ship"})

        with sent_by(store) as sent:
            assert await rt.terminate_sweep.run_once(batch=2) == 3
        listings = [(st, params) for st, params in sent if _LISTING in st]
        assert len(listings) == 2
        for (statement, parameters), after in zip(listings, (False, True), strict=True):
            lines = await plan(store, statement, parameters)
            assert through_the_index(lines, after), f"{statement}\n" + "\n".join(lines)
