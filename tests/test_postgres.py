"""Postgres specifics on a real server (pgserver, see ``tests/pg_servers.py``): migrations up and down, the start-up
schema check, failures as contract errors, recall semantics (OR-ed full text, the HNSW pool under selective filters,
parity of the vector ranking with the SQLite adapter), a whole MCP session, and ``migrate``/``doctor`` as a process.

The port contract itself runs on Postgres in ``tests/contract`` (adapter ``postgres``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from mcp_memory.config import Settings
from mcp_memory.embeddings import HashEmbedding
from mcp_memory.errors import ConfigurationError, InvalidArgument, Unavailable
from mcp_memory.models import Episode, Outcome, to_datetime
from mcp_memory.ranking import TEXT_WEIGHT, VECTOR_WEIGHT, blend, fuse, similarities
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.ports import EpisodeFilter, EventRecord
from mcp_memory.stores.postgres.schema import head_revision, migrate, schema_state
from mcp_memory.stores.postgres.search import ts_query
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sqlite.store import SqliteStore
from tests import pg_servers
from tests.conftest import FakeClock, new_scope, statements_per_lifecycle_call

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
EMBEDDER = HashEmbedding()
TABLES = (
    "sessions",
    "events",
    "working_items",
    "checkpoints",
    "episodes",
    "mcp_memory_meta",
    "project_episode_counts",
    "project_lexeme_counts",
)


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    async with pg_servers.open_postgres_store() as s:
        yield s


async def tables_present(store_url: str) -> set[str]:
    return await pg_servers.first_column(
        store_url,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'mcp_memory' AND tablename = ANY(:t)",
        {"t": list(TABLES)},
    )


# -- migrations and the start-up check ---------------------------------------------------------------------
async def test_two_migrations_at_once_both_succeed_one_after_the_other() -> None:
    """Replicas that migrate as they start run ``migrate`` together: the second waits for the first (an advisory
    lock) and finds the database at the head, where both raced on the same DDL and one failed."""
    for start in (None, "0012"):
        url = pg_servers.database_url(await pg_servers.create_database())
        if start is not None:
            await migrate(url, revision=start, embedding_dimension=256)
        results = await asyncio.gather(*(migrate(url, embedding_dimension=256) for _ in range(3)))
        assert all(after.revision == head_revision() for _, after in results)
        assert sum(before.revision == start for before, _ in results) == 1  # the others found it migrated
        assert await tables_present(url) == set(TABLES)


async def test_migrate_up_down_and_up_again_on_a_real_database() -> None:
    url = pg_servers.database_url(await pg_servers.create_database())
    assert (await schema_state(url)).revision is None
    with pytest.raises(ConfigurationError, match="mcp-memory migrate"):
        await PostgresStore(url).start()

    before, after = await migrate(url, embedding_dimension=384)
    assert (before.revision, after.revision, after.embedding_dimension) == (None, head_revision(), 384)
    assert await tables_present(url) == set(TABLES)

    with pytest.raises(ConfigurationError, match="MCP_MEMORY_EMBEDDING_DIMENSION=384"):
        await PostgresStore(url, embedding_dimension=256).start()
    with pytest.raises(ValueError, match="384-dimensional"):
        await migrate(url, embedding_dimension=256)
    store = PostgresStore(url, embedding_dimension=384)
    await store.start()
    try:
        facts = await store.ping()
        assert facts["schema"] == {"revision": head_revision(), "head": head_revision(), "embedding_dimension": 384}
        assert facts["pgvector_version"] and facts["server_version"]
    finally:
        await store.close()

    _, down = await migrate(url, revision="0001", downgrade=True)
    assert down.revision == "0001" and await tables_present(url) == set(TABLES) - set(TABLES[-2:])
    _, up = await migrate(url, embedding_dimension=384)
    assert up.revision == head_revision() and await tables_present(url) == set(TABLES)
    _, down = await migrate(url, revision="base", downgrade=True)
    assert down.revision is None and await tables_present(url) == set()
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision() and up.embedding_dimension == 256
    assert await tables_present(url) == set(TABLES)


async def test_a_schema_behind_or_unknown_names_the_fix() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    probe = PostgresStore(url)
    engine = probe._create_engine()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE mcp_memory_alembic_version SET version_num = 'ffff'"))
    finally:
        await engine.dispose()
    with pytest.raises(ConfigurationError, match="upgrade mcp-memory"):
        await PostgresStore(url).start()


async def test_unreachable_postgres_is_unavailable_not_a_traceback() -> None:
    store = PostgresStore("postgresql+asyncpg://nobody:secret@127.0.0.1:1/none", timeout_seconds=2)
    with pytest.raises(Unavailable) as caught:
        await store.start()
    assert "retry later" in str(caught.value) and "secret" not in str(caught.value)


async def test_a_missing_database_is_a_configuration_error() -> None:
    url = pg_servers.database_url("mcpmem_test_no_such_database")
    with pytest.raises(ConfigurationError, match="does not exist"):
        await PostgresStore(url).start()


async def test_a_lost_server_mid_call_is_unavailable(store: PostgresStore) -> None:
    scope = new_scope()
    await store.create_session(scope, None, {}, T0, _event("spawn"))
    # Kill this store's connections from the server side: the next call finds its pooled connection dead.
    admin = await pg_servers.fresh_postgres_store()
    try:
        async with admin._read() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": store._url.database},
            )
    finally:
        await admin.close()
    with pytest.raises(Unavailable, match="retry later"):
        await store.get_session(scope)
    # The pool recovers once the server answers again.
    assert await store.get_session(scope) is not None


def _event(kind: str) -> Any:
    from mcp_memory.stores.ports import EventRecord

    return EventRecord(kind, T0, 1.0, "ok", {})


# -- recall -------------------------------------------------------------------------------------------------
def make_episode(project: uuid.UUID, description: str, *, created: float = T0, **extra: Any) -> Episode:
    return Episode(
        episode_id=uuid.uuid4(),
        project_id=project,
        agent_instance_id=extra.pop("agent", uuid.uuid4()),
        task_type=extra.pop("task_type", "coding"),
        task_description=description,
        outcome=extra.pop("outcome", Outcome.SUCCESS),
        importance_score=extra.pop("importance", 0.5),
        created_at=to_datetime(created),
        **extra,
    )


def test_ts_query_ors_plain_words() -> None:
    # Words as written (to_tsquery folds case as to_tsvector did), without repeats in any case.
    assert ts_query("Fix the parser's crash! fix") == "Fix | the | parser | s | crash"
    assert ts_query("a & b | !c <-> (d)") == "a | b | c | d"
    assert ts_query("task_type under_score") == "task | type | under | score"
    assert ts_query("  !!  ") is None


async def test_a_query_word_missing_from_the_episode_still_finds_it(store: PostgresStore) -> None:
    project = uuid.uuid4()
    wanted = make_episode(project, "fixed the flaky parser test by pinning the seed")
    await store.add_episode(wanted, None)
    await store.add_episode(make_episode(project, "wrote the release notes"), None)
    found = await store.search_episodes(project, "parser crash kubernetes", None, EpisodeFilter(), 5, T0, "text")
    assert [e.episode_id for e in found] == [wanted.episode_id]
    assert found[0].score > 0


async def test_a_rare_query_word_outweighs_a_common_one(store: PostgresStore) -> None:
    """BM25's IDF, from the project's own counts: a word every episode has counts for little, with no ANALYZE
    ever run (the counts are kept by the episodes' triggers, not gathered by ANALYZE)."""
    project = uuid.uuid4()
    for i in range(30):
        await store.add_episode(make_episode(project, f"deploy the service build {i}"), None)
    chatty = make_episode(project, "deploy, deploy again, and deploy the deploy script")
    rare = make_episode(project, "upgraded the kubernetes cluster")
    await store.add_episode(chatty, None)
    await store.add_episode(rare, None)
    async with store._read() as conn:
        analyzed = "SELECT count(*) FROM pg_stats WHERE schemaname = 'mcp_memory' AND tablename = 'episodes'"
        assert (await conn.execute(text(analyzed))).scalar() == 0
    found = await store.search_episodes(project, "deploy kubernetes", None, EpisodeFilter(), 3, T0, "text")
    assert found[0].episode_id == rare.episode_id, [e.task_description for e in found]


async def test_versions_and_ticket_ids_are_words_of_the_text_as_of_the_query(store: PostgresStore) -> None:
    """Migration 0003: Postgres' parser kept ``v2.16`` as one lexeme and read ``PAY-1603`` as ``pay`` and a negative
    number, so a query for either (split into letters and digits) matched nothing of the identifier. Now the
    episode text is split as the query is, and the identifier tells near-identical episodes apart."""
    project = uuid.uuid4()
    episodes = {}
    for version, ticket in (("v2.15", "PAY-1517"), ("v2.16", "PAY-1603"), ("v2.17", "PAY-1432")):
        ep = make_episode(project, f"Weekly release of payments-api {version} ({ticket}) to production")
        episodes[version], episodes[ticket] = ep, ep
        await store.add_episode(ep, None)
    for query, expected in (("what happened with payments-api v2.16?", "v2.16"), ("PAY-1432 status", "PAY-1432")):
        found = await store.search_episodes(project, query, None, EpisodeFilter(), 3, T0, "text")
        assert found[0].episode_id == episodes[expected].episode_id, (query, [e.task_description for e in found])
        assert found[0].score > found[1].score


async def test_text_rank_is_bm25_over_the_project(store: PostgresStore) -> None:
    """BM25's two other halves (beside the IDF): more occurrences of a word rank higher, with diminishing returns,
    and the same occurrences in a shorter episode rank higher."""
    project = uuid.uuid4()
    once = make_episode(project, "zanzibar shipment delayed at the port by customs paperwork checks")
    twice = make_episode(project, "zanzibar shipment delayed, zanzibar port closed by customs paperwork checks")
    short = make_episode(project, "zanzibar shipment delayed")
    for ep in (once, twice, short):
        await store.add_episode(ep, None)
    for i in range(10):
        await store.add_episode(make_episode(project, f"unrelated work item {i}"), None)
    found = await store.search_episodes(project, "zanzibar", None, EpisodeFilter(), 3, T0, "text")
    by_id = {e.episode_id: e.score for e in found}
    assert by_id[twice.episode_id] > by_id[once.episode_id]
    assert by_id[short.episode_id] > by_id[once.episode_id]
    assert by_id[twice.episode_id] < 2 * by_id[once.episode_id]


async def test_a_query_of_common_words_only_matches_on_all_of_them(store: PostgresStore) -> None:
    """In a project of 5,000+ episodes, a word held by 5% or more of them does not make candidates; when every
    word of the query is that common, the candidates are the episodes holding all of them (as on SQLite), not
    every episode holding any. A word the project does not hold is left out (it would match nothing)."""
    project = uuid.uuid4()
    async with store._write() as conn:
        await conn.execute(
            text(
                "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, "
                "outcome, importance_score, created_at) SELECT gen_random_uuid(), :p, gen_random_uuid(), 'ops', "
                "CASE WHEN i % 10 = 0 THEN 'alpha' WHEN i % 10 = 1 THEN 'beta' ELSE 'gamma' END "
                "|| CASE WHEN i IN (0, 10, 20) THEN ' beta' ELSE '' END || ' item ' || i, 'success', 0.5, now() "
                "FROM generate_series(0, 5999) i"
            ),
            {"p": project},
        )
    for query in ("alpha beta", "alpha beta qwertyuiop"):
        found = await store.search_episodes(project, query, None, EpisodeFilter(), 10, T0, "text")
        assert sorted(e.task_description for e in found) == [
            "alpha beta item 0",
            "alpha beta item 10",
            "alpha beta item 20",
        ]
    # A selective word (item 123's number) makes its own candidates; the common words add to their rank.
    found = await store.search_episodes(project, "alpha beta 123", None, EpisodeFilter(), 10, T0, "text")
    assert [e.task_description for e in found] == ["gamma item 123"]


# -- per-project counts: the only statistics recall uses ------------------------------------------------------
COUNTS_FROM_SCRATCH = """
SELECT 'p' AS kind, project_id, '' AS lexeme, count(*) AS n FROM episodes GROUP BY project_id
UNION ALL
SELECT 't', project_id, '', sum(length(search_text)) FROM episodes
GROUP BY project_id
UNION ALL
SELECT 'l', e.project_id, t.lexeme, count(*) FROM episodes e, unnest(e.search_text) AS t GROUP BY e.project_id, t.lexeme
"""
COUNTS_KEPT = """
SELECT 'p' AS kind, project_id, '' AS lexeme, episodes AS n FROM project_episode_counts WHERE episodes <> 0
UNION ALL
SELECT 't', project_id, '', tokens FROM project_episode_counts WHERE episodes <> 0
UNION ALL
SELECT 'l', project_id, lexeme, episodes FROM project_lexeme_counts WHERE episodes <> 0
"""


async def counts(store: PostgresStore, sql: str) -> set[tuple[Any, ...]]:
    async with store._read() as conn:
        return {tuple(r) for r in await conn.execute(text(sql))}


async def test_project_counts_stay_exact_through_every_write(store: PostgresStore) -> None:
    """Inserts (one, many in one statement, many at once from several connections), a terminate's episode,
    updates of the text, of the project and of the vector only, deletes: the kept counts always equal a count
    from scratch."""
    a, b = uuid.uuid4(), uuid.uuid4()
    await store.add_episode(make_episode(a, "deploy the deploy service", lessons_learned=["pin the seed"]), None)
    # Concurrent writers of one project (and of two), each add its own statement and transaction: no deadlock.
    await asyncio.gather(
        *(store.add_episode(make_episode(a if i % 3 else b, f"deploy service {i} kubernetes"), None) for i in range(24))
    )
    scope = new_scope()
    scope = scope.__class__(a, scope.agent_instance_id, scope.session_id)
    await store.create_session(scope, None, {}, T0, EventRecord("spawn", T0, 0.0, "ok"))
    ended = make_episode(a, "terminated session summary", session_id=scope.session_id)
    await store.record_terminate(scope, ended, None, {}, EventRecord("terminate", T0, 0.0, "ok"))
    assert await counts(store, COUNTS_KEPT) == await counts(store, COUNTS_FROM_SCRATCH)
    async with store._write() as conn:
        await conn.execute(
            text(
                "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, "
                "outcome, importance_score, created_at) SELECT gen_random_uuid(), CAST(:p AS uuid), "
                "gen_random_uuid(), 'ops', 'bulk ' || (i % 7) || ' zanzibar', 'success', 0.5, now() "
                "FROM generate_series(1, 50) i"
            ),
            {"p": b},
        )
    assert await counts(store, COUNTS_KEPT) == await counts(store, COUNTS_FROM_SCRATCH)
    await store.set_episode_embedding(a, ended.episode_id, EMBEDDER.embed_one("x"), "hash@256")
    async with store._write() as conn:
        rewrite = "UPDATE episodes SET task_description = 'rewritten words' WHERE project_id = :p"
        await conn.execute(text(rewrite), {"p": a})
        await conn.execute(
            text("UPDATE episodes SET project_id = :b WHERE episode_id = :e"), {"b": b, "e": ended.episode_id}
        )
        await conn.execute(text("DELETE FROM episodes WHERE task_description LIKE 'bulk 3%'"))
    assert await counts(store, COUNTS_KEPT) == await counts(store, COUNTS_FROM_SCRATCH)
    async with store._write() as conn:
        await conn.execute(text("TRUNCATE episodes"))
    assert await counts(store, COUNTS_KEPT) == set()


async def test_the_migration_counts_the_episodes_already_there() -> None:
    url = pg_servers.database_url(await pg_servers.create_database())
    await migrate(url, revision="0001")
    probe = PostgresStore(url)
    engine = probe._create_engine()
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, "
                    "outcome, importance_score, created_at) SELECT gen_random_uuid(), "
                    "CAST(md5((i % 3)::text) AS uuid), gen_random_uuid(), 'ops', 'word' || (i % 11) || ' deploy', "
                    "'success', 0.5, now() FROM generate_series(1, 200) i"
                )
            )
    finally:
        await engine.dispose()
    await migrate(url)
    store = PostgresStore(url)
    await store.start()
    try:
        kept = await counts(store, COUNTS_KEPT)
        assert (
            kept == await counts(store, COUNTS_FROM_SCRATCH) and len(kept) == 3 + 3 + 3 * 13
        )  # episodes, lengths, words
    finally:
        await store.close()


def _near(qv: list[float], cos: float, rng: random.Random) -> list[float]:
    """A unit vector whose cosine with the unit vector ``qv`` is ``cos``."""
    noise = [rng.gauss(0.0, 1.0) for _ in qv]
    along = sum(n * q for n, q in zip(noise, qv, strict=True))
    ortho = [n - along * q for n, q in zip(noise, qv, strict=True)]
    norm = math.sqrt(sum(x * x for x in ortho))
    return [cos * q + math.sqrt(1.0 - cos * cos) * x / norm for q, x in zip(qv, ortho, strict=True)]


async def test_project_a_ranking_is_bit_identical_whatever_project_b_holds(store: PostgresStore) -> None:
    """Another tenant's episodes (thousands, full of A's query words, their vectors nearer A's query than most of
    A's) and an ANALYZE change nothing in A's ranking, to the last bit of every score, in every mode: the full-text
    statistics are A's own counts, and A (a small project) is searched by an exact scan of its own vectors, which
    the HNSW graph of everyone's vectors cannot bias."""
    from mcp_memory.stores.postgres.search import search_sql, ts_query, vector_text

    rng = random.Random(7)
    a, b = uuid.uuid4(), uuid.uuid4()
    query = "rotate the vault credentials zanzibar"
    qv = [float(x) for x in EMBEDDER.embed_one(query)]
    qv_unit = [x / math.sqrt(sum(y * y for y in qv)) for x in qv]
    words = ["rotate", "vault", "credentials", "zanzibar", "deploy", "cache", "parser", "billing"]
    async with store._write() as conn:
        for index in ("episodes_project_agent", "episodes_project_newest", "episodes_project_task_type"):
            await conn.execute(text(f"DROP INDEX {index}"))
    for i in range(60):
        # High cosines, importance falling as the cosine rises: the exact top 10 mixes the two.
        cos = 0.92 + 0.03 * i / 59
        text_ = " ".join(rng.sample(words, 3)) + f" task {i}"
        ep = make_episode(a, text_, created=T0 - i * 3600, importance=1.0 - i / 59)
        await store.add_episode(ep, _near(qv_unit, cos, rng), "hash@256")

    async def ranking() -> dict[str, list[tuple[uuid.UUID, float]]]:
        out = {}
        for mode, tr, vr in (("hybrid", True, True), ("text", True, False), ("vector", False, True)):
            sql = search_sql(
                "", text_retriever=tr, vector_retriever=vr, same_model=vr, exact_scan_max=store.exact_scan_max
            )
            params = {"p": a, "pool": 50, "limit": 10, "now": T0, "vpool": 40, "vscan": 100, "model": "hash@256"}
            params.update(tsq=ts_query(query), qv=vector_text(qv))
            async with store._write() as conn:
                # As on a big table, the planner would take the HNSW index for A's candidates if it could.
                for setting in ("hnsw.ef_search = 100", "enable_seqscan = off", "enable_bitmapscan = off"):
                    await conn.execute(text(f"SET LOCAL {setting}"))
                rows = await conn.execute(text(sql), params)
                out[mode] = [(r.episode_id, r.score) for r in rows]
        return out

    before = await ranking()
    assert all(len(r) == 10 for r in before.values()), before
    crowd = [
        {
            "id": uuid.uuid4(),
            "d": " ".join(rng.sample(words[:4], 2)) + (" zanzibar" if i % 2 else ""),
            "v": vector_text(_near(qv_unit, 0.5 + 0.45 * rng.random(), rng)),
        }
        for i in range(3000)
    ]
    for start in range(0, len(crowd), 500):  # statements of a few hundred rows: each well within the timeout
        chunk = crowd[start : start + 500]
        async with store._one() as conn:
            await conn.execute(
                text(
                    "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, "
                    "outcome, importance_score, created_at, embedding, embedding_model) SELECT id, CAST(:b AS uuid), "
                    "gen_random_uuid(), 'ops', d, 'success', 0.9, now(), CAST(v AS vector), 'hash@256' "
                    "FROM unnest(CAST(:ids AS uuid[]), CAST(:ds AS text[]), CAST(:vs AS text[])) AS t(id, d, v)"
                ),
                {"b": b, "ids": [c["id"] for c in chunk], "ds": [c["d"] for c in chunk], "vs": [c["v"] for c in chunk]},
            )
    async with store._one() as conn:
        await conn.execute(text("ANALYZE episodes"))
    assert await ranking() == before


async def test_vector_ranking_matches_the_sqlite_adapter(store: PostgresStore, tmp_path: Path) -> None:
    """Cosines, the floor, importance and recency are the same formula in SQL as in ranking.py."""
    sqlite = SqliteStore(f"sqlite+aiosqlite:///{tmp_path / 'parity.db'}")
    await sqlite.start()
    try:
        project = uuid.uuid4()
        texts = [
            "deploy the billing service to kubernetes",
            "kubernetes deployment failed on a missing secret",
            "write unit tests for the parser",
            "tune postgres autovacuum for the events table",
            "deploy a hotfix to the billing api",
        ]
        for i, description in enumerate(texts):
            ep = make_episode(project, description, created=T0 - i * 86_400 * 7, importance=i / 5)
            vector = EMBEDDER.embed_one(description)
            await store.add_episode(ep, vector)
            await sqlite.add_episode(ep, vector)
        query = "deploy billing to kubernetes"
        qv = EMBEDDER.embed_one(query)
        for mode in ("vector", "hybrid"):
            pg = await store.search_episodes(project, query, qv, EpisodeFilter(), 5, T0, mode)  # type: ignore[arg-type]
            lite = await sqlite.search_episodes(project, query, qv, EpisodeFilter(), 5, T0, mode)  # type: ignore[arg-type]
            assert pg and pg[0].episode_id == lite[0].episode_id
            if mode == "vector":
                assert [e.episode_id for e in pg] == [e.episode_id for e in lite]
                assert [e.score for e in pg] == pytest.approx([e.score for e in lite], abs=1e-5)
    finally:
        await sqlite.close()


def at_cosine(cos: float, dimension: int = 256) -> list[float]:
    """A unit vector whose cosine with :data:`AXIS` is ``cos``."""
    vector = [0.0] * dimension
    vector[0], vector[1] = cos, math.sqrt(1.0 - cos * cos)
    return vector


AXIS = at_cosine(1.0)


@pytest.mark.parametrize(
    ("cosines", "query"),
    [
        # Good matches: scores are shares of the best cosine (0.9); one episode has the query's rare word.
        ((0.9, 0.6, 0.45, 0.3, 0.1), "zanzibar"),
        # Weak matches only: shares of GOOD_COSINE (the best, 0.4, scores 0.8); the text hit is a weak vector one.
        ((0.4, 0.3, 0.2, 0.16, 0.05), "zanzibar"),
        # No word of the query in any episode: the text retriever has no say (vectors alone, unweighted).
        ((0.9, 0.6, 0.45, 0.3, 0.1), "kilimanjaro"),
        # No cosine above MIN_COSINE: the vector retriever has no say (the text hit alone).
        ((0.14, 0.1, 0.05, 0.0, -0.2), "zanzibar"),
    ],
)
async def test_fused_ranking_matches_the_sqlite_adapter(
    store: PostgresStore, tmp_path: Path, cosines: tuple[float, ...], query: str
) -> None:
    """The SQL fusion is ranking.py's: same order and the same scores in every mode, whenever the full-text
    scores agree (one text hit scores 1.0 on both; BM25 and ts_rank_cd differ between several hits)."""
    sqlite = SqliteStore(f"sqlite+aiosqlite:///{tmp_path / 'parity.db'}")
    await sqlite.start()
    try:
        project = uuid.uuid4()
        words = ["alpha", "bravo", "charlie", "delta", "echo"]
        episodes = []
        for i, cos in enumerate(cosines):
            rare = " zanzibar" if i == 3 else ""  # a weak vector match, so text moves it up in hybrid
            ep = make_episode(project, f"{words[i]} task{rare}", created=T0 - i * 86_400 * 3, importance=i / 5)
            episodes.append(ep)
            for s in (store, sqlite):
                await s.add_episode(ep, at_cosine(cos), "m@256")
        # Another model's vectors nearest the query: ignored when the query names its model.
        for s in (store, sqlite):
            await s.add_episode(make_episode(project, "foxtrot"), AXIS, "other@256")
        for mode in ("vector", "hybrid", "text"):
            pg = await store.search_episodes(project, query, AXIS, EpisodeFilter(), 10, T0, mode, "m@256")  # type: ignore[arg-type]
            lite = await sqlite.search_episodes(project, query, AXIS, EpisodeFilter(), 10, T0, mode, "m@256")  # type: ignore[arg-type]
            assert [e.task_description for e in pg] == [e.task_description for e in lite], mode
            assert [e.score for e in pg] == pytest.approx([e.score for e in lite], abs=1e-5), mode
        hybrid = await store.search_episodes(project, query, AXIS, EpisodeFilter(), 10, T0, "hybrid", "m@256")
        expected = fuse(
            [
                {3: 1.0} if query == "zanzibar" else {},
                similarities(dict(enumerate(cosines))),
            ],
            [TEXT_WEIGHT, VECTOR_WEIGHT],
        )
        by_id = {ep.episode_id: i for i, ep in enumerate(episodes)}
        assert {by_id[e.episode_id]: e.score for e in hybrid} == pytest.approx(
            {
                i: blend(rel, episodes[i].importance_score, episodes[i].created_at.timestamp(), T0)
                for i, rel in expected.items()
            },
            abs=1e-5,
        )
    finally:
        await sqlite.close()


async def test_a_vector_of_the_wrong_width_is_never_written(
    store: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    """vector(256) holds 256 dimensions: a 384-dimensional vector (a provider configured for another width) leaves
    the episode without a vector (logged), and a backfill of it is refused with a message naming the fix."""
    project = uuid.uuid4()
    wide = [1.0] * 384
    ep = make_episode(project, "stored without its vector")
    with caplog.at_level(logging.WARNING, logger="mcp_memory.stores.postgres"):
        await store.add_episode(ep, wide, "wide@384")
        scope = new_scope()
        scope = scope.__class__(project, scope.agent_instance_id, scope.session_id)
        await store.create_session(scope, None, {}, T0, EventRecord("spawn", T0, 0.0, "ok"))
        ended = make_episode(project, "terminated without its vector", session_id=scope.session_id)
        await store.record_terminate(scope, ended, wide, {}, EventRecord("terminate", T0, 0.0, "ok"), "wide@384")
    assert sum("384 dimensions but the database stores 256" in r.getMessage() for r in caplog.records) == 2
    for e in (ep, ended):
        got = await store.get_episode(project, e.episode_id)
        assert got is not None and not got.embedded
    mine = {ep.episode_id, ended.episode_id}
    assert {e.episode_id for e in await store.episodes_missing_embedding(1000)} >= mine
    # The model's name went with the vector: no stale model recorded for a vector that is not there.
    async with store._read() as conn:
        models = (
            await conn.execute(text("SELECT embedding_model FROM episodes WHERE project_id = :p"), {"p": project})
        ).scalars()
        assert list(models) == [None, None]
    with pytest.raises(InvalidArgument, match=r"384 dimensions .* stores 256-dimensional vectors; .* new schema"):
        await store.set_episode_embedding(project, ep.episode_id, wide, "wide@384")
    got = await store.get_episode(project, ep.episode_id)
    assert got is not None and not got.embedded
    # A query vector of the wrong width: full text alone, no error.
    found = await store.search_episodes(project, "stored vector", wide, EpisodeFilter(), 5, T0)
    assert [e.episode_id for e in found][:1] == [ep.episode_id]


async def test_selective_filter_still_fills_the_vector_pool(store: PostgresStore) -> None:
    """Many near neighbours in other projects (and of other agents) must not hide the few that match the filter:
    HNSW filters after the scan, so the store falls back to an exact scan of the filtered rows."""
    crowd, target, agent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    query = "rotate the database credentials in the vault"
    qv = EMBEDDER.embed_one(query)
    async with store._write() as conn:
        await conn.execute(text("SET LOCAL statement_timeout = 0"))  # bulk set-up, not a user's call
        rows = []
        # The crowd is nearer the query than the agent's own episodes: the widened HNSW scan returns crowd only.
        for project, n, who, words in (
            (crowd, 1200, None, query),
            (target, 30, None, query),
            (target, 3, agent, "vault credentials rotation checklist"),
        ):
            for i in range(n):
                rows.append(make_episode(project, f"{words} {i}", agent=who or uuid.uuid4()))
        from mcp_memory.stores.postgres.search import vector_text

        insert = text(
            "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, "
            "outcome, importance_score, created_at, embedding) VALUES (:id, :p, :a, 'ops', :d, 'success', 0.5, "
            ":at, CAST(:v AS vector))"
        )
        params = [
            {
                "id": e.episode_id,
                "p": e.project_id,
                "a": e.agent_instance_id,
                "d": e.task_description,
                "at": e.created_at,
                "v": vector_text(EMBEDDER.embed_one(e.task_description)),
            }
            for e in rows
        ]
        # In batches: the driver's command timeout (the store's 5 s) bounds each batch, and 1,233 rows with their
        # HNSW insertions in one command outlasted it on a loaded machine.
        for i in range(0, len(params), 200):
            await conn.execute(insert, params[i : i + 200])
        await conn.execute(text("ANALYZE episodes"))
    # Make the planner take the HNSW index for the candidates whatever the filter (as it does on big tables),
    # so that the filtered-away candidates really leave too few rows and the exact fallback has to run.
    async with store._write() as conn:
        for index in ("episodes_project_agent", "episodes_project_newest", "episodes_project_task_type"):
            await conn.execute(text(f"DROP INDEX {index}"))
        await conn.execute(text(f'ALTER DATABASE "{store._url.database}" SET enable_seqscan = off'))
    forced = PostgresStore(store._url.render_as_string(hide_password=False))
    await forced.start()
    # The target project is small enough for the exact scan of its own vectors; as if it were not (the HNSW path).
    store.exact_scan_max = forced.exact_scan_max = 0
    try:
        from mcp_memory.stores.postgres.search import search_sql, vector_text

        sql = search_sql(" AND e.agent_instance_id = :f_agent", text_retriever=False, vector_retriever=True)
        params = {
            "p": target,
            "qv": vector_text(qv),
            "vpool": 40,
            "vscan": 200,
            "limit": 10,
            "now": T0,
            "f_agent": agent,
        }
        async with forced._write() as conn:
            plan = "\n".join(r[0] for r in await conn.execute(text("EXPLAIN " + sql), params))
        assert "episodes_embedding_hnsw" in plan, plan
        mine_only = EpisodeFilter(agent_instance_id=agent)
        for s in (store, forced):
            mine = await s.search_episodes(target, query, qv, mine_only, 10, T0, "vector")
            assert len(mine) == 3 and {e.agent_instance_id for e in mine} == {agent}
            hybrid = await s.search_episodes(target, query, qv, mine_only, 10, T0)
            assert len(hybrid) == 3 and {e.agent_instance_id for e in hybrid} == {agent}
            unfiltered = await s.search_episodes(target, query, qv, EpisodeFilter(), 10, T0, "vector")
            assert len(unfiltered) == 10 and {e.project_id for e in unfiltered} == {target}
    finally:
        await forced.close()


async def test_search_uses_the_hnsw_index_for_a_large_project_only(store: PostgresStore) -> None:
    """A project of more than ``exact_scan_max`` episodes is searched through the HNSW index; a smaller one never
    runs that scan (the plan holds it, gated off), only the exact scan of its own vectors."""
    from mcp_memory.stores.postgres.search import EXACT_SCAN_BUDGET, search_sql, vector_text

    project = uuid.uuid4()
    # Bulk set-up (1,000 HNSW inserts), in four statements so that each stays within the store's per-statement
    # timeout on a loaded machine.
    for first in range(1, 1001, 250):
        async with store._write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, "
                    "outcome, importance_score, created_at, embedding) SELECT gen_random_uuid(), :p, "
                    "gen_random_uuid(), 'ops', 'episode ' || i, 'success', 0.5, now(), "
                    "(SELECT array_agg(random())::vector FROM generate_series(1, 256) WHERE i > 0) "
                    "FROM generate_series(:first, :first + 249) i"
                ),
                {"p": project, "first": first},
            )
    async with store._write() as conn:
        await conn.execute(text("ANALYZE episodes"))
    assert store.exact_scan_max == EXACT_SCAN_BUDGET // 256 > 1000

    qv = vector_text(EMBEDDER.embed_one("episode"))
    params = {"p": project, "qv": qv, "vpool": 40, "vscan": 100, "limit": 5, "now": T0}
    for exact_scan_max, runs in ((999, True), (store.exact_scan_max, False)):
        sql = search_sql("", text_retriever=False, vector_retriever=True, exact_scan_max=exact_scan_max)
        async with store._write() as conn:
            await conn.execute(text("SET LOCAL hnsw.ef_search = 40"))
            plan = [r[0] for r in await conn.execute(text("EXPLAIN ANALYZE " + sql), params)]
        hnsw = [line for line in plan if "episodes_embedding_hnsw" in line]
        assert hnsw and ("never executed" not in hnsw[0]) == runs, "\n".join(plan)


# -- the whole stack on Postgres (the whole MCP session and its search filters: tests/test_mcp_session.py) ---------
@pytest.fixture
async def pg_settings() -> Settings:
    return Settings(database_url=pg_servers.database_url(await pg_servers.migrated_database()))


async def test_statements_per_lifecycle_call_do_not_grow_with_keys(pg_settings: Settings) -> None:
    async with MemoryRuntime(pg_settings, clock=FakeClock()) as rt:
        small, large = await statements_per_lifecycle_call(rt, [])
    print("statements per call:", small)
    assert small == large, (small, large)
    # spawn is one statement; pause and resume send none through SQLAlchemy: each is one statement on the asyncpg
    # connection (tests/test_pg_pause_and_resume_are_one_statement.py).
    assert small["spawn"] <= 1 and small["pause"] == 0 and small["resume"] == 0, small


# -- the CLI as a process -------------------------------------------------------------------------------------
async def test_cli_migrate_then_doctor(tmp_path: Path) -> None:
    from tests.test_stdio import run_cli, server_env

    name = await pg_servers.create_database()
    # trust auth ignores the password, which lets the test check it is never printed
    url = pg_servers.base_url().set(database=name, password="s3cret-pw").render_as_string(hide_password=False)
    env = server_env(tmp_path, MCP_MEMORY_DATABASE_URL=url)

    code, out, err = await run_cli("doctor", env=env)
    report = json.loads(out)
    assert code == 1 and "mcp-memory migrate" in report["error"], out
    assert "s3cret-pw" not in out + err

    code, out, err = await run_cli("migrate", env=env)
    assert code == 0, err
    migrated = json.loads(out)
    assert migrated["before"]["revision"] is None and migrated["after"]["revision"] == head_revision()
    assert "s3cret-pw" not in out + err and "***" in migrated["database_url"]

    code, out, err = await run_cli("doctor", env=env)
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True and report["durable_store"] == "postgresql + pgvector"
    assert report["stores"]["durable"]["schema"]["revision"] == head_revision()
    assert "s3cret-pw" not in out + err
    assert report["settings"]["database_url"] == report["database_url"] and "***" in report["database_url"]

    # serve logs the store it opens, masked too (stdin at EOF: it starts, logs and ends)
    code, out, err = await run_cli("serve", env=env)
    assert code == 0 and "serving on stdio" in err and "***" in err, err
    assert "s3cret-pw" not in out + err

    code, out, err = await run_cli("migrate", "--downgrade", "base", env=env)
    assert code == 0, err
    assert json.loads(out)["after"]["revision"] is None


# -- Postgres' own size limits ----------------------------------------------------------------------------------
async def test_a_checkpoint_over_the_jsonb_limit_is_too_large(pg_settings: Settings) -> None:
    """270 values of 1 MiB (each within the default limits, 10,000 keys of 1 MiB) make a state over JSONB's
    256 MiB: pause is ``too_large`` with a message saying so, on both paths (this store as the working store, and
    the two-step path a Redis working store takes), and writes nothing."""
    from mcp_memory.errors import TooLarge
    from mcp_memory.models import CheckpointInfo, Item

    value = '"' + "x" * (2**20 - 2) + '"'  # 1 MiB serialised, the default max_value_bytes
    scope = new_scope()
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    # Moving 270 MiB takes seconds: a timeout well above the default 5 s, for a busy machine.
    settings = Settings(database_url=pg_settings.database_url, database_timeout_seconds=120)
    async with MemoryRuntime(settings, clock=FakeClock(T0)) as rt:
        store = rt.store
        assert isinstance(store, PostgresStore)
        await rt.lifecycle.spawn(p, a, s)
        await store.restore(scope, {f"k{i:03d}": Item(value) for i in range(270)}, False, T0, rt.working.limits)
        with pytest.raises(TooLarge, match=r"larger than Postgres can store in one JSONB value .* nothing was written"):
            await rt.lifecycle.pause(p, a, s, checkpoint_id="big")
        info = CheckpointInfo(
            checkpoint_id="big2", created_at=to_datetime(T0), keys_count=270, bytes=270 * 2**20, content_hash="sha256:0"
        )
        items = {f"k{i:03d}": Item(value) for i in range(270)}  # what a Redis working store would snapshot
        with pytest.raises(TooLarge, match="JSONB"):
            await store.record_pause(scope, info, items, EventRecord("pause", T0, 0.0, "ok"))
        assert await store.list_checkpoints(scope, 10, None) == []
        session = await store.get_session(scope)
        assert session is not None and session.status == "running"
        # The lifecycle records the failed pause as an event; nothing else was written.
        events = sorted((e.event_type, e.outcome) for e in await store.list_events(scope, 10))
        assert events == [("pause", "too_large"), ("spawn", "ok")]
        # The session is usable as before: its keys are all there, and once fewer, it pauses.
        assert len(await store.list_keys(scope, "", T0)) == 270
        for i in range(266):
            await store.delete(scope, f"k{i:03d}", T0)
        paused = await rt.lifecycle.pause(p, a, s, checkpoint_id="fits")
        assert paused.data["items_saved"] == 4
