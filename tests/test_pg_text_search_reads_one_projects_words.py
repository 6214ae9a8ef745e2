"""Full-text candidates on Postgres come from one project's posting lists (migration 0009): the GIN index is on
each episode's words keyed by its project, so a word that fills another project is never read for this one; the
migration builds that index and its downgrade restores the GIN index on ``search_text``. No timing here: the plan
and the rows each scan returned are the facts (bench_pg_search.py measures the time)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.postgres.schema import migrate
from mcp_memory.stores.postgres.search import search_statement, ts_query
from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers
from tests.test_postgres import T0, make_episode

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    async with pg_servers.open_postgres_store() as s:
        yield s


async def _indexes(url: str) -> set[str]:
    return await pg_servers.first_column(url, "SELECT indexname FROM pg_indexes WHERE tablename = 'episodes'")


async def test_a_projects_text_search_reads_only_its_own_posting_lists(store: PostgresStore) -> None:
    small, crowded = uuid.uuid4(), uuid.uuid4()
    for i in range(3):
        await store.add_episode(make_episode(small, f"parser deadlock number {i}"), None)
    # Many of the small project's episodes without the words (its rows are not the cheaper path to its matches),
    # and another project full of the words: with one index over every project, its posting lists were read too.
    fill = (
        "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, outcome, "
        "importance_score, created_at) SELECT gen_random_uuid(), :p, gen_random_uuid(), 'ops', :words || ' ' || i, "
        "'success', 0.5, now() FROM generate_series(1, 300) i"
    )
    async with store._write() as conn:
        await conn.execute(text(fill), {"p": small, "words": "wrote the release notes"})
        await conn.execute(text(fill), {"p": crowded, "words": "parser deadlock again"})
        await conn.execute(text("ANALYZE episodes"))

    sql, params, _ = search_statement(
        small, ts_query("parser deadlock"), None, EpisodeFilter(), 5, T0, None, exact_scan_max=store.exact_scan_max
    )
    async with store._write() as conn:
        # A table this small is cheapest to scan whole; the index's use is the point, not the planner's choice.
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = [r[0] for r in await conn.execute(text("EXPLAIN ANALYZE " + sql), params)]
    scans = [line for line in plan if "Index Scan on episodes_project_words" in line]
    assert scans, "\n".join(plan)
    # The rows each scan of the index returned: the small project's 3 episodes holding the words, at most, never
    # the crowded project's 300.
    returned = [int(m.group(1)) for line in scans if (m := re.search(r"actual time=\S+ rows=(\d+)", line))]
    assert len(returned) == len(scans) and max(returned) == 3, "\n".join(plan)
    # Nor all of the project's rows from a B-tree on project_id, ANDed with them (the keys hold the project).
    assert not [line for line in plan if re.search(r"Scan (on|using) episodes_(?!project_words|pkey)", line)], (
        "\n".join(plan)
    )
    found = await store.search_episodes(small, "parser deadlock", None, EpisodeFilter(), 5, T0, "text")
    assert len(found) == 3 and {e.project_id for e in found} == {small}


async def test_the_migration_keys_the_text_index_by_project_and_its_downgrade_restores_the_old_one() -> None:
    url = pg_servers.database_url(await pg_servers.create_database())
    await migrate(url, embedding_dimension=256)
    indexes = await _indexes(url)
    assert "episodes_project_words" in indexes and "episodes_search_text" not in indexes
    await migrate(url, revision="0008", downgrade=True)
    indexes = await _indexes(url)
    assert "episodes_search_text" in indexes and "episodes_project_words" not in indexes
    await migrate(url, embedding_dimension=256)
    assert "episodes_project_words" in await _indexes(url)
