"""Export and import round trip: a project of 3 agents, 10 sessions, TTL'd keys, 200 checkpoints and 1,000 episodes
exported from SQLite and imported into Postgres + Redis exports back the same records (ids, times; TTL remaining
within a second), resumes the same, and searches the same.

Search: both runtimes use the same embedding provider (the hash provider: deterministic, 256 wide, as the Postgres
test schema). Vector search ranks alike on both stores (the same ids in the same order). Full-text ranking is each
store's own (SQLite's tokenizer and Postgres' English stemming differ by design), so text and hybrid search are
compared after a second hop, Postgres -> SQLite: the same ids, order and scores as the source, which shows that the
import rebuilt every posting and per-project statistic through the normal insert path."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix
from tests.transfer_helpers import comparable, export_time, export_to, populate

pytestmark = pytest.mark.anyio

QUERIES = ["deploy rollback", "flaky test timeout", "vector search ranking", "cache index", "seal worker lease"]


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[MemoryRuntime]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}", embedding_provider="hash", embedding_dimension=256
    )
    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        yield rt


@pytest.fixture
async def target(postgres_database_url: str) -> AsyncIterator[MemoryRuntime]:
    prefix = unique_prefix()
    settings = Settings(
        database_url=postgres_database_url,
        redis_url=shared_redis_url(),
        redis_key_prefix=prefix,
        embedding_provider="hash",
        embedding_dimension=256,
    )
    try:
        async with MemoryRuntime(settings, embedding_retry=False) as rt:
            yield rt
    finally:
        delete_keys(shared_redis_url(), prefix)


async def test_project_round_trip_sqlite_to_postgres_and_redis(
    source: MemoryRuntime, target: MemoryRuntime, tmp_path: Path
) -> None:
    project = uuid.uuid4()
    sessions = await populate(source, project)
    sel = Selection(project)
    first = await export_to(source, sel, tmp_path / "a.jsonl", vectors=True)
    a_records, a_ttl, a_vectors = comparable(first)
    header = a_records[0]
    assert header["counts"] == {
        "sessions": 10,
        "working": a_records[-1]["counts"]["working"],
        "checkpoints": 200,
        "events": header["counts"]["events"],
        "episodes": 1000,
    }
    assert header["embedding_model"] == "hash-256"
    kept = [r for r in a_records if r["kind"] == "checkpoint" and r["keep"]]
    assert len(kept) == 10
    assert a_ttl and all(3500 < t <= 7200 for t in a_ttl.values())

    assert target.transfer is not None
    report = await target.transfer.import_file(first)
    assert report.counts["episodes"] == 1000 and report.counts["checkpoints"] == 200
    assert report.counts["vectors_dropped"] == 0 and not report.renamed_episodes
    second = await export_to(target, sel, tmp_path / "b.jsonl", vectors=True)
    b_records, b_ttl, b_vectors = comparable(second)
    assert b_records == a_records
    assert b_ttl.keys() == a_ttl.keys()
    # TTL remaining: what was left at the first export, less the time between the two exports.
    elapsed = export_time(second) - export_time(first)
    assert all(abs(b_ttl[k] - (a_ttl[k] - elapsed)) <= 1.0 for k in a_ttl)
    # Vectors: the same float32 vectors, but for Postgres' own normalisation (a unit or so in the last place).
    assert b_vectors.keys() == a_vectors.keys() and len(a_vectors) == 1000
    assert all(max(abs(x - y) for x, y in zip(a_vectors[k], b_vectors[k], strict=True)) < 1e-6 for k in a_vectors)

    # Search: vectors rank alike on both stores.
    for query in QUERIES:
        want = await source.episodic.search(project, query, limit=10, mode="vector")
        got = await target.episodic.search(project, query, limit=10, mode="vector")
        assert [e.episode_id for e in got] == [e.episode_id for e in want], query

    # Postgres -> SQLite again: text and hybrid search as on the source, scores included.
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'again.db'}", embedding_provider="hash", embedding_dimension=256
    )
    async with MemoryRuntime(settings, embedding_retry=False) as again:
        assert again.transfer is not None
        await again.transfer.import_file(second)
        third = await export_to(again, sel, tmp_path / "c.jsonl", vectors=True)
        assert comparable(third)[0] == a_records
        for query in QUERIES:
            for mode in ("text", "hybrid"):
                want = await source.episodic.search(project, query, limit=10, mode=mode)
                got = await again.episodic.search(project, query, limit=10, mode=mode)
                assert [(e.episode_id, round(e.score, 4)) for e in got] == [
                    (e.episode_id, round(e.score, 4)) for e in want
                ], (query, mode)

    # Resumes: the same checkpoint restores the same state on both.
    for agent, sid in (sessions[0], sessions[1], sessions[5]):
        scope = Scope(project, agent, sid)
        want = await source.lifecycle.resume(project, agent, sid)
        got = await target.lifecycle.resume(project, agent, sid)
        assert got.data == want.data
        assert await target.working.state(scope) == await source.working.state(scope)


async def test_vectors_postgres_cannot_keep_are_counted_as_dropped(tmp_path: Path) -> None:
    """An import into Postgres keeps vectors of its schema's width only; the others are dropped and counted in
    ``vectors_dropped`` (for the backfill to embed again), as vectors of another model are."""
    from tests import pg_servers

    project = uuid.uuid4()
    narrow = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'narrow.db'}", embedding_provider="hash", embedding_dimension=64
    )
    async with MemoryRuntime(narrow, embedding_retry=False) as rt:
        for i in range(3):
            await rt.episodic.record_episode(
                project_id=project,
                agent_instance_id=uuid.uuid4(),
                task_type="t",
                task_description=f"episode {i}",
                outcome="success",
            )
        path = await export_to(rt, Selection(project), tmp_path / "narrow.jsonl", vectors=True)
    url = pg_servers.database_url(await pg_servers.migrated_database())  # 256-wide vectors
    async with MemoryRuntime(Settings(database_url=url), embedding_retry=False) as rt:  # no provider: any model
        assert rt.transfer is not None
        report = await rt.transfer.import_file(path)
        assert report.counts["episodes"] == 3 and report.counts["vectors_dropped"] == 3
        assert len(await rt.store.episodes_missing_embedding(10)) == 3
