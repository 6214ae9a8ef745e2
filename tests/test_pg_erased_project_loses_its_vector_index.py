"""On Postgres, erasing a project (``mcp-memory forget``'s ``erase``) drops the project's own partial HNSW index,
while a partial erase that leaves episodes keeps it and other projects keep theirs; an index whose project lost
its episodes some other way goes at the next index check. Otherwise the indexes of dead projects pile up."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from mcp_memory.stores.postgres.search import vector_text
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.postgres.vector_indexes import INDEX_PREFIX, index_name
from tests import pg_servers

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0
DIM = 256
EXACT_SCAN_MAX = 50


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    # A low exact-scan size: a project of a hundred episodes gets an index of its own.
    async with pg_servers.open_postgres_store(EXACT_SCAN_MAX) as s:
        yield s


async def add(store: PostgresStore, project: uuid.UUID, agents: list[uuid.UUID], n: int) -> None:
    rng = random.Random(str(project))
    async with store._write() as conn:
        await conn.execute(
            text(
                "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, "
                "outcome, importance_score, created_at, embedding) VALUES (gen_random_uuid(), :p, :a, 'ops', "
                "'episode', 'success', 0.5, to_timestamp(:at), CAST(:v AS vector))"
            ),
            [
                {"p": project, "a": agents[i % len(agents)], "at": T0, "v": vector_text([rng.gauss(0, 1)] * DIM)}
                for i in range(n)
            ],
        )


async def indexed(store: PostgresStore) -> set[str]:
    async with store._read() as conn:
        found = await conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE starts_with(indexname, :prefix)"), {"prefix": INDEX_PREFIX}
        )
        return {str(r[0]) for r in found}


async def test_erasing_a_project_drops_its_vector_index_and_no_other(store: PostgresStore) -> None:
    gone, kept = uuid.uuid4(), uuid.uuid4()
    gone_agents, kept_agents = [uuid.uuid4(), uuid.uuid4()], [uuid.uuid4()]
    await add(store, gone, gone_agents, 120)
    await add(store, kept, kept_agents, 80)
    assert sorted(await store.build_vector_indexes()) == sorted([gone, kept])
    assert await indexed(store) == {index_name(gone), index_name(kept)}

    # A dry run, and then one agent's part: the project still holds episodes, so its index stays.
    await store.erase(gone, None, None, T0, True)
    assert await indexed(store) == {index_name(gone), index_name(kept)}
    removed = await store.erase(gone, gone_agents[0], None, T0, False)
    assert removed.episodes == 60
    assert await indexed(store) == {index_name(gone), index_name(kept)}

    removed = await store.erase(gone, None, None, T0, False)
    assert removed.episodes == 60
    assert await indexed(store) == {index_name(kept)}
    # Nothing to build again for it, nothing left to sweep.
    assert await store.build_vector_indexes() == []
    assert await indexed(store) == {index_name(kept)}


async def test_an_index_left_by_a_project_emptied_otherwise_goes_at_the_next_index_check(
    store: PostgresStore,
) -> None:
    emptied, kept = uuid.uuid4(), uuid.uuid4()
    await add(store, emptied, [uuid.uuid4()], 100)
    await add(store, kept, [uuid.uuid4()], 100)
    await store.build_vector_indexes()
    # Deleted behind the store's back (as forgetting its episodes one by one would): no erase, no hook.
    async with store._write() as conn:
        await conn.execute(text("DELETE FROM episodes WHERE project_id = :p"), {"p": emptied})
    assert await indexed(store) == {index_name(emptied), index_name(kept)}
    assert await store.build_vector_indexes() == []
    assert await indexed(store) == {index_name(kept)}
