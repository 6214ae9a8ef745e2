"""``mcp-memory migrate --fill-search-weights`` fills ``episodes.search_weights`` of the rows written before
migration 0014 (which ranked from their tsvector), in batches along the primary key: afterwards every row holds its
tsvector's weights, searches return the same pages with the same scores, a second run has nothing left to do, and a
schema older than 0014 is told to migrate, with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_memory.errors import ConfigurationError
from mcp_memory.stores.postgres.backfill import fill_search_weights
from mcp_memory.stores.postgres.schema import migrate, schema_state
from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers
from tests.test_pg_search_weights import WEIGHTS_MISMATCH, _execute, _load, _searches

pytestmark = pytest.mark.anyio

EMPTY = "SELECT count(*) FROM episodes WHERE search_weights IS NULL"


async def test_filling_in_batches_gives_every_row_its_weights_and_the_same_pages() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    store = PostgresStore(url, embedding_dimension=256)
    await store.start()
    try:
        project = await _load(store, 45)
        with_weights = await _searches(store, project)
        # As rows written before 0014 are (the trigger does not fire on this column alone), all but a few.
        await _execute(url, "UPDATE episodes SET search_weights = NULL WHERE id % 9 <> 0")
        assert await pg_servers.first_column(url, EMPTY) == {"40"}
        seen: list[tuple[int, int]] = []
        report = await fill_search_weights(url, batch_rows=7, progress=lambda f, t: seen.append((f, t)))
        assert (report.to_fill, report.filled, report.batches) == (40, 40, 7)  # 45 rows in batches of 7
        assert seen[-1] == (40, 40) and [f for f, _ in seen] == sorted(f for f, _ in seen)
        assert await pg_servers.first_column(url, EMPTY) == {"0"}
        assert await pg_servers.first_column(url, WEIGHTS_MISMATCH) == set()
        assert await _searches(store, project) == with_weights
        again = await fill_search_weights(url, batch_rows=7)
        assert (again.to_fill, again.filled, again.batches) == (0, 0, 0)
    finally:
        await store.close()


async def test_a_schema_before_0014_is_told_to_migrate_and_left_as_it_is() -> None:
    url = pg_servers.database_url(await pg_servers.create_database())
    await migrate(url, revision="0013", embedding_dimension=256)
    with pytest.raises(ConfigurationError, match="mcp-memory migrate"):
        await fill_search_weights(url)
    with pytest.raises(ConfigurationError, match="at least 1"):
        await fill_search_weights(url, batch_rows=0)
    assert (await schema_state(url)).revision == "0013"


async def test_the_cli_fills_and_reports_on_stdout_with_progress_on_stderr(tmp_path: Path) -> None:
    from tests.test_stdio import run_cli, server_env

    url = pg_servers.database_url(await pg_servers.migrated_database())
    store = PostgresStore(url, embedding_dimension=256)
    await store.start()
    try:
        await _load(store, 12)
    finally:
        await store.close()
    await _execute(url, "UPDATE episodes SET search_weights = NULL")
    env = server_env(tmp_path, MCP_MEMORY_DATABASE_URL=url)
    code, out, err = await run_cli("migrate", "--fill-search-weights", "--batch", "5", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True and report["filled"] == 12 and report["batches"] == 3
    assert "filled 12 of 12" in err
    assert await pg_servers.first_column(url, WEIGHTS_MISMATCH) == set()
    code, out, err = await run_cli("migrate", "--fill-search-weights", "--batch", "0", env=env)
    assert code == 2 and "at least 1" in err
    # Postgres unreachable: a one-line reason in the JSON report, no traceback.
    gone = pg_servers.base_url().set(port=1, database="nowhere").render_as_string(hide_password=False)
    code, out, err = await run_cli(
        "migrate", "--fill-search-weights", env=server_env(tmp_path, MCP_MEMORY_DATABASE_URL=gone)
    )
    assert code == 1 and "not reachable" in json.loads(out)["error"] and "Traceback" not in err, out + err


async def test_batch_without_the_fill_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from tests.test_stdio import run_cli, server_env

    url = pg_servers.database_url(await pg_servers.create_database())
    code, _out, err = await run_cli("migrate", "--batch", "500", env=server_env(tmp_path, MCP_MEMORY_DATABASE_URL=url))
    assert code == 2 and "--batch goes with --fill-search-weights" in err
    assert (await schema_state(url)).revision is None  # not migrated
