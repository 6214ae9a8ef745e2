"""Migration 0018 makes ``mcpmem_pause`` (19 arguments, its body replaced) and a new ``mcpmem_resume`` overload (15
arguments) skip a session row another transaction holds, so the server reads its clock again under the lock. The
previous release's 14-argument ``mcpmem_resume`` stays at the head for its servers during an upgrade; downgrading
drops only the new overload and gives the pause 0017's body back, upgrading brings both again."""

from __future__ import annotations

import pytest

from mcp_memory.stores.postgres.schema import head_revision, migrate
from tests import pg_servers

pytestmark = pytest.mark.anyio

RESUMES = (
    "SELECT proname || '/' || pronargs FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
    "WHERE nspname = 'mcp_memory' AND proname = 'mcpmem_resume'"
)
SKIPPING_PAUSE = (
    "SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
    "WHERE nspname = 'mcp_memory' AND proname = 'mcpmem_pause' AND pronargs = 19 AND prosrc LIKE '%SKIP LOCKED%'"
)


async def test_the_previous_resume_stays_and_a_downgrade_restores_0017s_pause() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    assert await pg_servers.first_column(url, RESUMES) == {"mcpmem_resume/14", "mcpmem_resume/15"}
    assert await pg_servers.first_column(url, SKIPPING_PAUSE) == {"mcpmem_pause"}
    _, down = await migrate(url, revision="0017", downgrade=True)
    assert down.revision == "0017"
    assert await pg_servers.first_column(url, RESUMES) == {"mcpmem_resume/14"}
    assert await pg_servers.first_column(url, SKIPPING_PAUSE) == set()
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision()
    assert await pg_servers.first_column(url, RESUMES) == {"mcpmem_resume/14", "mcpmem_resume/15"}
    assert await pg_servers.first_column(url, SKIPPING_PAUSE) == {"mcpmem_pause"}
