"""On Postgres, a project above the exact-scan size gets its own partial HNSW index, so its vector recall@10 against
an exact scan stays >= 0.95 when another project adds many vectors right beside its own (through the one shared
graph, pgvector 0.6 filters after the scan and those neighbours would crowd the project's rows out)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.postgres.search import vector_text
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.postgres.vector_indexes import index_name
from tests import pg_servers

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0
DIM = 256
EXACT_SCAN_MAX = 200


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    # A low exact-scan size: a few thousand vectors take the index path.
    async with pg_servers.open_postgres_store(EXACT_SCAN_MAX) as s:
        yield s


def near(center: list[float], rng: random.Random) -> list[float]:
    return [c + rng.gauss(0.0, 1.0) for c in center]


async def add(store: PostgresStore, project: uuid.UUID, vectors: list[list[float]]) -> None:
    for first in range(0, len(vectors), 100):
        async with store._write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, "
                    "outcome, importance_score, created_at, embedding) VALUES (gen_random_uuid(), :p, "
                    "gen_random_uuid(), 'ops', 'episode', 'success', 0.5, to_timestamp(:at), CAST(:v AS vector))"
                ),
                [{"p": project, "at": T0, "v": vector_text(v)} for v in vectors[first : first + 100]],
            )
    async with store._write() as conn:
        await conn.execute(text("ANALYZE episodes"))


async def recall_at_10(store: PostgresStore, project: uuid.UUID, queries: list[list[float]]) -> float:
    found = 0
    for q in queries:
        qv = vector_text(q)
        async with store._read() as conn:
            # + 0: no index serves the distance, so this is the exact top 10.
            exact = {
                r[0]
                for r in await conn.execute(
                    text(
                        "SELECT episode_id FROM episodes WHERE project_id = :p "
                        "ORDER BY (embedding <=> CAST(:qv AS vector)) + 0 LIMIT 10"
                    ),
                    {"p": project, "qv": qv},
                )
            }
        hits = await store.search_episodes(project, "", q, EpisodeFilter(), 10, T0, "vector")
        found += len(exact & {h.episode_id for h in hits})
    return found / (10 * len(queries))


async def test_a_projects_recall_stays_when_another_project_crowds_its_vectors(store: PostgresStore) -> None:
    rng = random.Random(7)
    center = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
    mine, crowd = uuid.uuid4(), uuid.uuid4()
    await add(store, mine, [near(center, rng) for _ in range(600)])
    assert await store.build_vector_indexes() == [mine]
    queries = [near(center, rng) for _ in range(20)]
    alone = await recall_at_10(store, mine, queries)
    assert alone >= 0.95, alone

    # Another project, seven times larger, with its vectors among this project's.
    await add(store, crowd, [near(center, rng) for _ in range(4200)])
    # A vector search starts the build of the missing index in the background (checks are spaced in time: as if
    # the last one were long ago).
    store._index_checked_at = float("-inf")
    await store.search_episodes(crowd, "", queries[0], EpisodeFilter(), 10, T0, "vector")
    assert store._index_task is not None
    await store._index_task
    assert await store.build_vector_indexes() == []
    crowded = await recall_at_10(store, mine, queries)
    assert crowded >= 0.95, crowded

    # The search of this project goes through its own index (its exact-scan leg gated off).
    from mcp_memory.stores.postgres.search import search_statement

    sql, params, ef = search_statement(
        mine, None, vector_text(queries[0]), EpisodeFilter(), 10, T0, None, exact_scan_max=EXACT_SCAN_MAX
    )
    async with store._write() as conn:
        await conn.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef)})
        plan = "\n".join(r[0] for r in await conn.execute(text("EXPLAIN " + sql), params))
    assert index_name(mine) in plan, plan

    # For the record (not a claim): the same queries through the one shared graph.
    async with store._write() as conn:
        await conn.execute(text(f"DROP INDEX {index_name(mine)}"))
    print("recall@10 through the shared graph:", await recall_at_10(store, mine, queries), "own index:", crowded)


async def test_servers_building_indexes_at_once_build_each_once_without_error() -> None:
    """Two servers on one database check for missing indexes together (each does on its first vector search): one
    builds, the other finds the build under way and leaves it, and no call fails (two concurrent builders drop and
    create the same index concurrently, and Postgres ends that in a deadlock)."""
    async with pg_servers.open_postgres_store(EXACT_SCAN_MAX) as first:
        second = PostgresStore(first._url, embedding_dimension=DIM)
        second.exact_scan_max = EXACT_SCAN_MAX
        await second.start()
        rng = random.Random(11)
        project = uuid.uuid4()
        await add(first, project, [[rng.gauss(0.0, 1.0) for _ in range(DIM)] for _ in range(3000)])
        built = await asyncio.gather(first.build_vector_indexes(), second.build_vector_indexes())
        assert sorted(built, key=len) == [[], [project]]
        async with first._read() as conn:
            valid = await conn.execute(
                text(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid WHERE x.relname = :n"
                ),
                {"n": index_name(project)},
            )
            assert [r[0] for r in valid] == [True]
        assert await second.build_vector_indexes() == []  # nothing left to build
        await second.close()
