"""The periodic age sweep (``stores/sql/aged_sweep.py``, ``stores/postgres/aged_sweep.py``) finds the rows it may
delete through an index on their date, on SQLite and on Postgres: a pass reads the rows past the cutoff, not the whole
``checkpoints`` and ``events`` tables (a pass that finds nothing would otherwise still scan both). The statements a
real pass sent are explained with the parameters it sent them with; no timing here, the plan is the fact.

The indexes are partial (``events_aged``: not a protected spawn or terminate; SQLite's ``checkpoints_aged``: not
kept), so that a pass does not read, pass after pass, the rows it never deletes."""

from __future__ import annotations

import re

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.retention_sweep import SweepReport
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.schema import migrate
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sqlite.store import SqliteStore
from tests import pg_servers
from tests.conftest import FakeClock, new_scope
from tests.query_plans import plan, sent_by

pytestmark = pytest.mark.anyio
AGE = 100.0

_PG_SCAN = re.compile(
    r"(Seq Scan|Index Scan|Index Only Scan|Bitmap Index Scan)( Backward)?( using \w+)? on (events|checkpoints)\b"
)
"""A Postgres step reading one of the tables the sweep deletes from (with the planner's statistics of a few rows,
``sessions`` may be read whole here; in a store that holds many it is looked up by key)."""


_SWEPT = re.compile(r"FROM (events|checkpoints) ")
"""A statement of the sweep's, and the table it reads (SQLite: its DELETE; Postgres: the lock and the DELETE)."""


def whole_table_reads(lines: list[str]) -> list[str]:
    """The steps that read ``events`` or ``checkpoints`` without a condition on an index: SQLite's ``SCAN`` (only
    those two tables are read, under their names or aliases), and a Postgres scan with no ``Index Cond`` among its
    details (a sequential scan, or an index read end to end)."""
    if not any("cost=" in line for line in lines):
        return [line for line in lines if line.startswith("SCAN ")]
    found = []
    for i, line in enumerate(lines):
        if _PG_SCAN.search(line) is None:
            continue
        details = []
        for after in lines[i + 1 :]:
            if "->" in after or re.match(r"\s*(SubPlan|InitPlan|CTE)", after):
                break
            details.append(after)
        if not any("Index Cond:" in d for d in details):
            found.append(line.strip())
    return found


def by_date(lines: list[str], table: str) -> bool:
    """Whether the plan finds ``table``'s rows by their date through an index (SQLite: the partial index this
    change made; Postgres: any index with the date in its condition)."""
    column = {"checkpoints": "created_at", "events": "at"}[table]
    if any(f"USING INDEX {table}_aged ({column}<?)" in line for line in lines):
        return True
    return any("Index Cond:" in line and re.search(rf"\b{column} < ", line) for line in lines)


@pytest.mark.backends("sqlite", "postgres")
async def test_the_age_sweep_finds_the_rows_past_the_cutoff_through_an_index(
    settings: Settings, clock: FakeClock
) -> None:
    settings = settings.model_copy(
        update={
            "checkpoint_retention_count": 0,
            "event_retention_count": 0,
            "checkpoint_retention_seconds": AGE,
            "event_retention_seconds": AGE,
        }
    )
    async with MemoryRuntime(settings, clock=clock) as rt:
        assert rt.retention_sweep is not None
        store = rt.store
        assert isinstance(store, SqliteStore | PostgresStore)
        scope = new_scope()
        p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
        assert (await rt.lifecycle.spawn(p, a, s, initial_state={"k": 1})).success
        for checkpoint_id in ("a", "b"):
            clock.advance(1)
            assert (await rt.lifecycle.pause(p, a, s, checkpoint_id=checkpoint_id)).success
            clock.advance(1)
            assert (await rt.lifecycle.resume(p, a, s)).success
        clock.advance(AGE * 5)

        with sent_by(store) as deleting:
            assert await rt.retention_sweep.run_once() == SweepReport(checkpoints=1, events=3)
        # The pass that finds nothing, as most do: it must not read either table whole.
        with sent_by(store) as finding_nothing:
            assert await rt.retention_sweep.run_once() == SweepReport()

        swept = [(m.group(1), st, params) for st, params in deleting + finding_nothing if (m := _SWEPT.search(st))]
        assert {table for table, _, _ in swept} == {"events", "checkpoints"}
        for table, statement, parameters in swept:
            lines = await plan(store, statement, parameters)
            shown = f"{statement}\n" + "\n".join(lines)
            assert not whole_table_reads(lines), shown
            assert by_date(lines, table), shown


async def test_the_migration_adds_the_events_index_and_its_downgrade_drops_it() -> None:
    url = pg_servers.database_url(await pg_servers.create_database())
    indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'events'"
    await migrate(url, embedding_dimension=256)
    assert "events_aged" in await pg_servers.first_column(url, indexes)
    await migrate(url, revision="0020", downgrade=True)
    assert "events_aged" not in await pg_servers.first_column(url, indexes)
    await migrate(url, embedding_dimension=256)
    assert "events_aged" in await pg_servers.first_column(url, indexes)
