"""The spawn sweep (``services/spawn_sweep.py``; its statements in ``stores/sql/lapsed_spawns.py``) lists the lapsed
spawns through ``sessions_spawning``, a partial index on ``sessions.spawn_until`` that holds only the incomplete
sessions (Postgres migration 0022; SQLite's ``SCHEMA``): a pass reads the spawns under way, not the whole ``sessions``
table, and one that finds nothing (most passes) sends that one read, of an index range that holds nothing. The
statements a real pass sent are explained with the parameters it sent them with, on SQLite and on Postgres; no
timing here, the plan is the fact."""

from __future__ import annotations

import re

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.spawn_sweep import SWEEP_MARGIN_SECONDS
from mcp_memory.stores.ports import EventRecord
from mcp_memory.stores.postgres.schema import migrate
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sqlite.store import SqliteStore
from tests import pg_servers
from tests.conftest import FakeClock, new_scope
from tests.query_plans import plan, sent_by

pytestmark = pytest.mark.anyio

_LISTING = "ORDER BY spawn_until"
"""The sweep's listing of lapsed spawns (``LAPSED_SPAWNS``), told apart from its deletions."""
_PG_SCAN = re.compile(
    r"(Seq Scan|Index Scan|Index Only Scan|Bitmap Index Scan)( Backward)?( using \w+)? on (sessions|working_items)\b"
)


def whole_table_reads(lines: list[str]) -> list[str]:
    """The steps that read ``sessions`` or ``working_items`` without a condition on an index: SQLite's ``SCAN``, and
    a Postgres scan with no ``Index Cond`` among its details (a sequential scan, or an index read end to end)."""
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


def by_lease(lines: list[str]) -> bool:
    """Whether the plan reads the sessions through ``sessions_spawning`` by the end of their lease. On SQLite also in
    the index's order (no sort: the order is the listing's); Postgres may sort what it found when it reads the index
    as a bitmap, which it chooses on the few rows the index holds."""
    if any("cost=" in line for line in lines):
        uses = any(re.search(r"\busing sessions_spawning\b|\bon sessions_spawning\b", line) for line in lines)
        return uses and any("Index Cond:" in line and re.search(r"\bspawn_until <= ", line) for line in lines)
    return any("USING INDEX sessions_spawning (spawn_until<?)" in line for line in lines) and not any(
        "TEMP B-TREE" in line for line in lines
    )


@pytest.mark.backends("sqlite", "postgres")
async def test_the_spawn_sweep_lists_the_lapsed_spawns_through_an_index(settings: Settings, clock: FakeClock) -> None:
    async with MemoryRuntime(settings, clock=clock) as rt:
        assert rt.spawn_sweep is not None
        store = rt.store
        assert isinstance(store, SqliteStore | PostgresStore)
        lease = rt.settings.spawn_lease_seconds
        for n in range(3):  # completed sessions: spawn_until NULL, never in the index
            scope = new_scope(f"done-{n}")
            assert (await rt.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)).success
        # A spawn cut off by a crash (the first step of a two-step spawn, never completed), and one still under way.
        now = clock()
        await store.begin_spawn(new_scope("crashed"), None, {}, now, EventRecord("spawn", now, 0.0, "ok"), "x", lease)
        clock.advance(lease + SWEEP_MARGIN_SECONDS + 1)
        now = clock()
        await store.begin_spawn(new_scope("live"), None, {}, now, EventRecord("spawn", now, 0.0, "ok"), "l", lease)

        with sent_by(store) as removing:
            assert await rt.spawn_sweep.run_once() == 1
        with sent_by(store) as finding_nothing:
            assert await rt.spawn_sweep.run_once() == 0

        # The pass that finds nothing, as most do, sends the listing and nothing else.
        assert [st for st, _ in finding_nothing if "sessions" in st] == [st for st, _ in finding_nothing]
        listings = [(st, params) for st, params in removing + finding_nothing if _LISTING in st]
        assert len(listings) == 2 and [st for st, _ in finding_nothing] == [listings[1][0]]
        for statement, parameters in [(st, params) for st, params in removing if "sessions" in st]:
            lines = await plan(store, statement, parameters)
            shown = f"{statement}\n" + "\n".join(lines)
            assert not whole_table_reads(lines), shown
            if _LISTING in statement:
                assert by_lease(lines), shown
        lines = await plan(store, *listings[1])
        assert not whole_table_reads(lines) and by_lease(lines), "\n".join(lines)


async def test_the_migration_adds_the_sessions_index_and_its_downgrade_drops_it() -> None:
    url = pg_servers.database_url(await pg_servers.create_database())
    indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'sessions'"
    await migrate(url, embedding_dimension=256)
    assert "sessions_spawning" in await pg_servers.first_column(url, indexes)
    await migrate(url, revision="0021", downgrade=True)
    assert "sessions_spawning" not in await pg_servers.first_column(url, indexes)
    await migrate(url, embedding_dimension=256)
    assert "sessions_spawning" in await pg_servers.first_column(url, indexes)
