"""Many episodes that score exactly alike, more than a search's candidate pool holds: the pool keeps the newest of
them, so the search returns the newest (the final ranking prefers them), on SQLite and Postgres, by text, by vector
and both. The pools were cut on relevance alone, their ties broken oldest first (SQLite's text ranking), or in no
set order (the vector pools, Postgres' text pool): 60 episodes of one text returned records 49 to 45, not 59 to 55.
Postgres' HNSW scan too, which orders by distance alone (a second sort key would leave the index unused)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import text

from mcp_memory.config import Settings
from mcp_memory.embeddings import HashEmbedding
from mcp_memory.models import Episode, Outcome, to_datetime
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.ports import EpisodeFilter, SearchMode
from mcp_memory.stores.postgres.search import search_statement, vector_text
from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio
MANY = 60
"""More than any candidate pool of a search for 5: text 50, vectors 50 on SQLite and 40 on Postgres."""
MANY_IN_THE_GRAPH = 100
"""As many as the HNSW scan yields for a search for 5 (ef_search 100): it finds them all, in an order of its graph
that, here, does not put the newest among the first 40."""
LIMIT = 5


@pytest.mark.backends("sqlite", "postgres")
@pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
async def test_the_newest_of_many_equal_episodes_are_found(
    make_settings: Callable[..., Settings], clock: FakeClock, mode: SearchMode
) -> None:
    p = uuid.uuid4()
    recorded = []
    async with MemoryRuntime(make_settings(embedding_provider="hash"), clock=clock) as rt:
        for _ in range(MANY):  # one text, one vector: every episode scores alike but for its age
            ep = await rt.episodic.record_episode(
                project_id=p,
                agent_instance_id=uuid.uuid4(),
                task_type="ops",
                task_description="rotate the signing keys",
                outcome="success",
            )
            recorded.append(ep.episode_id)
            clock.advance(3600)
        if isinstance(rt.store, PostgresStore):
            # With the table's statistics the planner reads the rows in table order (oldest first), not through an
            # index on the project that happens to hand them newest first.
            async with rt.store._write() as conn:
                await conn.execute(text("ANALYZE episodes"))
        hits = await rt.episodic.search(p, "rotate signing keys", limit=LIMIT, mode=mode)
    assert [h.episode_id for h in hits] == recorded[::-1][:LIMIT]


async def test_the_hnsw_scan_keeps_the_newest_of_equal_vectors() -> None:
    store = await pg_servers.fresh_postgres_store()
    embedder = HashEmbedding()
    vector = embedder.embed_one("rotate the signing keys")
    p = uuid.uuid4()
    t0 = time.time() - MANY_IN_THE_GRAPH * 3600
    recorded = []
    try:
        for i in range(MANY_IN_THE_GRAPH):
            ep = Episode(
                episode_id=uuid.uuid4(),
                project_id=p,
                agent_instance_id=uuid.uuid4(),
                task_type="ops",
                task_description="rotate the signing keys",
                outcome=Outcome.SUCCESS,
                created_at=to_datetime(t0 + i * 3600),
            )
            recorded.append(await store.add_episode(ep, vector, embedder.name))
        # As on a large table, the planner takes the HNSW index whatever the size (a new store: new connections).
        async with store._write() as conn:
            await conn.execute(text("ANALYZE episodes"))
            for index in ("episodes_project_agent", "episodes_project_newest", "episodes_project_task_type"):
                await conn.execute(text(f"DROP INDEX {index}"))
            await conn.execute(text(f'ALTER DATABASE "{store._url.database}" SET enable_seqscan = off'))
    finally:
        await store.close()
    forced = PostgresStore(store._url.render_as_string(hide_password=False))
    await forced.start()
    forced.exact_scan_max = 0  # the project is searched as a large one: through the HNSW scan
    try:
        now = time.time()
        sql, params, ef_search = search_statement(
            p, None, vector_text(vector), EpisodeFilter(), LIMIT, now, None, exact_scan_max=0
        )
        async with forced._write() as conn:
            await conn.execute(text(f"SET LOCAL hnsw.ef_search = {ef_search}"))
            plan = "\n".join(r[0] for r in await conn.execute(text("EXPLAIN ANALYZE " + sql), params))
        scan = [line for line in plan.splitlines() if "episodes_embedding_hnsw" in line]
        assert scan and "never executed" not in scan[0], plan
        hits = await forced.search_episodes(p, "", vector, EpisodeFilter(), LIMIT, now, "vector")
    finally:
        await forced.close()
    assert [h.episode_id for h in hits] == recorded[::-1][:LIMIT]
