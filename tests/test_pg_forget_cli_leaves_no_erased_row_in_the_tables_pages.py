"""On Postgres, ``mcp-memory forget`` reclaims what its erase left below the rows, with a real server's database
open beside it:

- by default (VACUUM with ANALYZE), a distinctive string written in the forgotten project's working memory,
  checkpoint, session id and episodes is in no tuple, live or dead, of the pages of the tables it deleted from
  (their heap and TOAST files, read raw after a CHECKPOINT, each line pointer's tuple), nor in the planner's
  statistics (``pg_stats``, which an ANALYZE had filled with sampled values). Before, the deleted rows stayed
  there as dead tuples until autovacuum came, and the statistics kept their values until the next ANALYZE;
- with ``--vacuum-full``, it is in no byte of those tables' files, their TOAST's or their indexes' (the free space
  of a page, and a GIN index's keys, keep it through a plain VACUUM);
- the project's own vector index goes, and when it cannot be dropped (another server holds the index builders'
  lock, as during a build) the report says so, the exit status is 1, and the same forget run again drops it.

Raw files are read with ``pg_read_binary_file`` (the test's role is a superuser): pgserver has no pageinspect."""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.cli import main as cli_main
from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres import reclaim
from mcp_memory.stores.postgres.schema import autocommit_connection
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.postgres.vector_indexes import index_name

pytestmark = pytest.mark.anyio

EXACT_SCAN_MAX = 3
"""Projects above this many episodes get a vector index of their own."""
ERASED = reclaim.ERASED_TABLES
LP_NORMAL = 1
BUILDERS_LOCK = (
    "SELECT pg_advisory_lock(hashtextextended('mcp_memory.vector_indexes:' || "
    "CAST(CAST(CAST('episodes' AS regclass) AS oid) AS text), 0))"
)
"""The lock a server takes while it builds or drops per-project vector indexes (vector_indexes._ONE_BUILDER)."""


def needle() -> str:
    """Lower case hex that stemming leaves as it is, found nowhere else."""
    return f"zq{uuid.uuid4().hex[:16]}x"


@pytest.fixture
async def server(postgres_database_url: str, clean_env: pytest.MonkeyPatch) -> AsyncIterator[MemoryRuntime]:
    """The deployment's running server, and the environment the operator's CLI reads."""
    clean_env.setenv("MCP_MEMORY_DATABASE_URL", postgres_database_url)
    settings = Settings(database_url=postgres_database_url, embedding_provider="hash")
    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        assert isinstance(rt.store, PostgresStore)
        rt.store.exact_scan_max = EXACT_SCAN_MAX
        yield rt


async def fill(rt: MemoryRuntime, project: uuid.UUID, mark: str) -> None:
    """A session holding ``mark`` in its id, a working value and a checkpoint of it, terminated with an episode;
    and episodes holding it, enough for the project's own vector index."""
    agent = uuid.uuid4()
    sid = f"task-{mark}"
    await rt.lifecycle.spawn(project, agent, sid, initial_state={"goal": "start"})
    await rt.working.set(Scope(project, agent, sid), "note", f"the value {mark}")
    await rt.lifecycle.pause(project, agent, sid, label=f"before {mark}")
    await rt.lifecycle.resume(project, agent, sid)
    await rt.working.set(Scope(project, agent, f"task-{mark}"), "live", f"still {mark}")
    other = f"open-{mark}"
    await rt.lifecycle.spawn(project, agent, other, initial_state={"left": f"open {mark}"})
    await rt.lifecycle.terminate(project, agent, sid, task_description=f"ship {mark}")
    for i in range(EXACT_SCAN_MAX + 2):
        await rt.episodic.record_episode(
            project_id=project,
            agent_instance_id=agent,
            task_type="ops",
            task_description=f"rebuild {mark} attempt {i}",
            outcome="success",
            lessons_learned=[f"lesson {mark}"],
        )


async def forget(
    capsys: pytest.CaptureFixture[str], project: uuid.UUID, *flags: str, status: int = 0
) -> tuple[dict[str, Any], str]:
    """The operator's CLI in a thread of its own (it runs its own event loop, as from a shell): its report and
    its stderr."""
    capsys.readouterr()
    assert await anyio.to_thread.run_sync(cli_main, ["forget", "--project", str(project), *flags]) == status
    out = capsys.readouterr()
    report: dict[str, Any] = json.loads(out.out)
    return report, out.err


async def files(conn: AsyncConnection, indexes: bool) -> dict[str, bytes]:
    """The raw main-fork file of each erased table and of its TOAST table (and of their indexes), after a
    CHECKPOINT wrote every page out."""
    await conn.execute(text("CHECKPOINT"))
    tables = "c.oid = ANY(CAST(CAST(:tables AS text[]) AS regclass[]))"
    rels = f"SELECT c.oid FROM pg_class c WHERE {tables}"
    rels += f" UNION SELECT c.reltoastrelid FROM pg_class c WHERE {tables} AND c.reltoastrelid <> 0"
    if indexes:
        rels = f"WITH r AS ({rels}) SELECT oid FROM r UNION "
        rels += "SELECT i.indexrelid FROM pg_index i JOIN r ON i.indrelid = r.oid"
    found = await conn.execute(
        text(
            f"SELECT CAST(CAST(oid AS regclass) AS text), pg_read_binary_file(pg_relation_filepath(oid)) "
            f"FROM ({rels}) AS x(oid)"
        ),
        {"tables": [f"mcp_memory.{t}" for t in ERASED]},
    )
    return {str(name): bytes(data) for name, data in found}


def tuples(data: bytes, page: int = 8192) -> Iterator[bytes]:
    """Each tuple a line pointer of a heap page points at (LP_NORMAL: live, or deleted and not yet vacuumed)."""
    for start in range(0, len(data), page):
        block = data[start : start + page]
        lower = int.from_bytes(block[12:14], "little")
        for at in range(24, lower, 4):
            (word,) = struct.unpack_from("<I", block, at)
            offset, flags, length = word & 0x7FFF, (word >> 15) & 0x3, word >> 17
            if flags == LP_NORMAL and length:
                yield block[offset : offset + length]


async def in_statistics(conn: AsyncConnection, marks: list[str]) -> list[str]:
    rows = await conn.execute(
        text("SELECT tablename, attname, CAST(s AS text) FROM pg_stats s WHERE schemaname = 'mcp_memory'")
    )
    return [f"{table}.{column}" for table, column, row in rows if any(m in row for m in marks)]


async def test_the_forget_cli_vacuums_the_erased_rows_out_of_every_tuple_and_the_statistics(
    server: MemoryRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    gone, kept = uuid.uuid4(), uuid.uuid4()
    gone_mark, kept_mark = needle(), needle()
    await fill(server, gone, gone_mark)
    await fill(server, kept, kept_mark)
    assert isinstance(server.store, PostgresStore)
    assert sorted(await server.store.build_vector_indexes()) == sorted([gone, kept])
    url = server.store._url
    async with autocommit_connection(url) as conn:
        # As autovacuum's ANALYZE would have, in time: the planner's statistics sample the stored values.
        for table in ERASED:
            await conn.execute(text(f"ANALYZE {table}"))
        assert await in_statistics(conn, [gone_mark])
        before = {
            name: sum(gone_mark.encode() in t for t in tuples(data))
            for name, data in (await files(conn, False)).items()
        }
        assert before["sessions"] and before["episodes"] and before["checkpoints"]

    report, err = await forget(capsys, gone)
    assert (report["sessions"], report["episodes"]) == (2, EXACT_SCAN_MAX + 3)
    # The erase dropped it after its commit already, as a tool's deletion does.
    assert report["on_disk"] == {"vector_index": "absent", "vacuum": "VACUUM (ANALYZE)", "vacuumed": list(ERASED)}
    assert "not_done" not in report and err == ""

    async with autocommit_connection(url) as conn:
        pages = await files(conn, False)
        assert {name: sum(gone_mark.encode() in t for t in tuples(data)) for name, data in pages.items()} == {
            name: 0 for name in pages
        }
        assert await in_statistics(conn, [gone_mark]) == []
        # The other project's rows are there, read the same way.
        assert sum(kept_mark.encode() in t for t in tuples(pages["episodes"])) == EXACT_SCAN_MAX + 3
        indexes = {str(r[0]) for r in await conn.execute(text("SELECT indexname FROM pg_indexes"))}
        assert index_name(gone) not in indexes and index_name(kept) in indexes


async def test_the_forget_cli_with_vacuum_full_leaves_the_erased_rows_in_no_byte_of_the_tables_files(
    server: MemoryRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    gone, kept = uuid.uuid4(), uuid.uuid4()
    gone_mark = needle()
    await fill(server, gone, gone_mark)
    await fill(server, kept, needle())
    assert isinstance(server.store, PostgresStore)
    url = server.store._url
    async with autocommit_connection(url) as conn:
        assert [name for name, data in (await files(conn, True)).items() if gone_mark.encode() in data]

    report, _ = await forget(capsys, gone, "--vacuum-full")
    assert report["on_disk"]["vacuum"] == "VACUUM (FULL, ANALYZE)"
    assert report["on_disk"]["vacuumed"] == list(ERASED)

    async with autocommit_connection(url) as conn:
        assert [name for name, data in (await files(conn, True)).items() if gone_mark.encode() in data] == []


async def test_a_vector_index_the_forget_cannot_drop_is_reported_and_goes_when_the_forget_is_run_again(
    server: MemoryRuntime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = uuid.uuid4()
    await fill(server, gone, needle())
    assert isinstance(server.store, PostgresStore)
    assert await server.store.build_vector_indexes() == [gone]
    # The CLI runs in this process: a short patience, so that the test does not wait out the real one.
    monkeypatch.setattr(reclaim, "INDEX_DROP_PATIENCE_SECONDS", 0.5)
    async with autocommit_connection(server.store._url) as builder:
        # Another server building vector indexes holds their lock for as long as the build runs.
        await builder.execute(text(BUILDERS_LOCK))
        report, err = await forget(capsys, gone, "--no-vacuum", status=1)
    assert report["sessions"] == 2
    assert report["on_disk"]["vector_index"] == "left"
    (left,) = report["not_done"]
    assert index_name(gone) in left and "another server is building vector indexes" in left
    assert err.startswith("mcp-memory forget: the scope is erased, but not all of it is off the disk: the project's")
    assert err.endswith("; the same forget run again does the rest\n") and err.count("\n") == 1

    report, err = await forget(capsys, gone, "--no-vacuum")
    assert (report["sessions"], report["episodes"]) == (0, 0)
    assert report["on_disk"]["vector_index"] == "dropped" and "not_done" not in report
    async with autocommit_connection(server.store._url) as conn:
        indexes = {str(r[0]) for r in await conn.execute(text("SELECT indexname FROM pg_indexes"))}
    assert index_name(gone) not in indexes


async def test_a_vacuum_the_role_may_not_run_is_reported_not_claimed(
    server: MemoryRuntime,
    postgres_database_url: str,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A deployment whose serving role does not own the tables (an admin migrated them): Postgres skips the VACUUM
    of each with a warning, not an error, so the forget must not count them as vacuumed."""
    gone = uuid.uuid4()
    await fill(server, gone, needle())
    assert isinstance(server.store, PostgresStore)
    role = f"forgetter_{uuid.uuid4().hex[:8]}"
    async with autocommit_connection(server.store._url) as conn:
        await conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        await conn.execute(text(f"GRANT USAGE ON SCHEMA mcp_memory TO {role}"))
        await conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA mcp_memory TO {role}"))
        await conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA mcp_memory TO {role}"))
    clean_env.setenv("MCP_MEMORY_DATABASE_URL", server.store._url.set(username=role).render_as_string(False))
    try:
        report, err = await forget(capsys, gone, status=1)
    finally:
        async with autocommit_connection(server.store._url) as conn:
            await conn.execute(text(f"DROP OWNED BY {role}"))
            await conn.execute(text(f"DROP ROLE {role}"))
    assert report["sessions"] == 2
    assert report["on_disk"]["vacuumed"] == []
    (skipped,) = report["not_done"]
    assert skipped.startswith(f"Postgres skipped the VACUUM (ANALYZE) of {', '.join(ERASED)} (permission denied")
    assert err.startswith("mcp-memory forget: the scope is erased, but not all of it is off the disk: Postgres")
