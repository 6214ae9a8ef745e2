"""``mcp-memory migrate`` on a Postgres database that a newer release migrated says what ``doctor`` and ``serve``
say (a newer release migrated it; upgrade mcp-memory), as its one-line configuration error (exit 2), and changes
nothing. Before, it printed Alembic's own "Can't locate revision identified by '0099'", naming neither the cause nor
the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from mcp_memory.stores.postgres.store import PostgresStore
from tests.pg_servers import database_url, first_column, migrated_database
from tests.test_a_store_that_cannot_start_is_one_line_and_an_exit_code import LOG_LINE
from tests.test_stdio import run_cli, server_env

pytestmark = pytest.mark.anyio


async def test_migrate_says_a_newer_release_migrated_the_database(tmp_path: Path) -> None:
    url = database_url(await migrated_database())
    engine = PostgresStore(url)._create_engine()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE mcp_memory_alembic_version SET version_num = '0099'"))
    finally:
        await engine.dispose()
    env = server_env(tmp_path, MCP_MEMORY_DATABASE_URL=url)
    code, out, _ = await run_cli("doctor", env=env)
    said = json.loads(out)["error"]
    assert code == 1 and said.endswith("(a newer release migrated it); upgrade mcp-memory"), said

    for args in (["migrate"], ["migrate", "--downgrade", "base"]):
        code, out, err = await run_cli(*args, env=env)
        errors = [line for line in err.splitlines() if not LOG_LINE.match(line)]
        assert (code, out, errors) == (2, "", [f"mcp-memory: configuration error: {said}"]), args
    assert await first_column(url, "SELECT version_num FROM mcp_memory_alembic_version") == {"0099"}
