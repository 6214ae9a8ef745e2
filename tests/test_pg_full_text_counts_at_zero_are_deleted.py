"""On Postgres, a per-project full-text count that reaches 0 is deleted (migration 0019): a project whose episodes
are all gone has no ``project_episode_counts`` row, and a word that no episode of its project holds any more (its
episodes forgotten, or edited away) no ``project_lexeme_counts`` row, so neither names what was forgotten. The
migration also deletes the rows that earlier releases left at 0. Recall reads a missing row as 0, as before."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from mcp_memory.stores.postgres.schema import migrate
from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers

pytestmark = pytest.mark.anyio

INSERT = (
    "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, outcome, "
    "importance_score, created_at) VALUES (gen_random_uuid(), :p, gen_random_uuid(), 'ops', :d, 'success', 0.5, now())"
)
COUNTED = (
    "SELECT 'project ' || project_id || ' ' || episodes FROM project_episode_counts UNION ALL "
    "SELECT 'word ' || project_id || ' ' || lexeme || ' ' || episodes FROM project_lexeme_counts"
)


async def counted(url: str) -> set[str]:
    return await pg_servers.first_column(url, COUNTED)


async def test_counts_at_zero_go_with_the_writes_that_bring_them_there_and_those_left_by_0018() -> None:
    url = pg_servers.database_url(await pg_servers.create_database())
    await migrate(url, revision="0018")
    engine = PostgresStore(url)._create_engine()
    gone, kept = uuid.uuid4(), uuid.uuid4()
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(INSERT), [{"p": gone, "d": "zebra"}, {"p": kept, "d": "alpha"}, {"p": kept, "d": "quokka"}]
            )
        async with engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM episodes WHERE project_id = :p OR task_description = 'quokka'"), {"p": gone}
            )
        # Revision 0018 keeps them at 0.
        assert {f"project {gone} 0", f"word {gone} zebra 0", f"word {kept} quokka 0"} <= await counted(url)

        await migrate(url)
        assert await counted(url) == {f"project {kept} 1", f"word {kept} alpha 1", f"word {kept} op 1"}

        # An edit that takes a word away, and a delete of a project's last episode.
        async with engine.begin() as conn:
            await conn.execute(text(INSERT), {"p": gone, "d": "yak"})
            await conn.execute(
                text("UPDATE episodes SET task_description = 'okapi' WHERE project_id = :p"), {"p": kept}
            )
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM episodes WHERE project_id = :p"), {"p": gone})
        assert await counted(url) == {f"project {kept} 1", f"word {kept} okapi 1", f"word {kept} op 1"}
    finally:
        await engine.dispose()
