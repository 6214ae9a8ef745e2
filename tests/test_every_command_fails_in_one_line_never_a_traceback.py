"""Every command answers a failure no error code names as ``export`` and ``import`` do: one
``mcp-memory: internal: unexpected error while ...`` line on stderr and exit 1, never a Python traceback (which goes
to the log at DEBUG); a refusal with a code that a command does not answer itself is ``mcp-memory: <code>: ...`` and
exit 1. Real CLI subprocesses.

The failures are real ones: stored data ``reembed`` cannot read (an episode's metadata that is not JSON, written
directly with sqlite3), and failures raised at fault points by a hook in the subprocess that runs the CLI (a
``forget`` inside its SQL transaction, a Postgres ``migrate`` holding its lock). Each ended in a traceback.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from tests.pg_servers import create_database, database_url, first_column
from tests.test_a_store_that_cannot_start_is_one_line_and_an_exit_code import LOG_LINE
from tests.test_export_and_import_fail_in_one_line_never_a_traceback import one_internal_line
from tests.test_stdio import server_env
from tests.transfer_helpers import cli_source

pytestmark = pytest.mark.anyio

CLI_FAILING_AT = """
import sys
from mcp_memory import faults
from mcp_memory.cli import main

async def fail(point: str) -> None:
    if point == sys.argv[1]:
        raise RuntimeError("a failure no code names\\nand a second line")

with faults.on_fault(fail):
    sys.exit(main(sys.argv[2:]))
"""
"""``python -c CLI_FAILING_AT POINT ARGS...``: ``mcp-memory ARGS...`` with a failure raised at fault point POINT."""


async def run(*args: str, env: dict[str, str], failing_at: str | None = None) -> anyio.abc.Process:
    head = [sys.executable, "-m", "mcp_memory.cli"] if failing_at is None else [sys.executable, "-c", CLI_FAILING_AT]
    command = [*head, *([] if failing_at is None else [failing_at]), *args]
    with anyio.fail_after(120):
        return await anyio.run_process(command, input=b"", env=env, check=False)  # type: ignore[return-value]


async def test_a_forget_cut_off_by_an_unexpected_failure_is_one_line_and_can_be_run_again(tmp_path: Path) -> None:
    project, env = await cli_source(tmp_path)
    forget = ("forget", "--project", str(project))
    done = await run(*forget, env=env, failing_at="erase.rows_deleted")
    assert done.returncode == 1 and done.stdout == b""
    one_internal_line(
        done.stderr, "forgetting", "(RuntimeError: a failure no code names)", "run the same forget again", "DEBUG"
    )
    again = await run(*forget, env=env)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["sessions"], report["episodes"]) == (4, 3)  # the cut-off transaction erased nothing


async def test_a_reembed_of_stored_data_it_cannot_read_is_one_line_and_exit_1(tmp_path: Path) -> None:
    _, env = await cli_source(tmp_path)
    env["MCP_MEMORY_EMBEDDING_PROVIDER"] = "hash"
    with sqlite3.connect(tmp_path / "source.db") as db:
        db.execute("UPDATE episodes SET metadata = 'not json', embedding = NULL, embedding_model = NULL")
    db.close()
    done = await run("reembed", env=env)
    assert done.returncode == 1 and done.stdout == b""
    one_internal_line(done.stderr, "re-embedding", "JSONDecodeError: Expecting value", "still without one")
    debug = await run("reembed", env={**env, "MCP_MEMORY_LOG_LEVEL": "DEBUG"})
    assert debug.returncode == 1 and b"Traceback" in debug.stderr  # where the details are


async def test_a_reembed_on_a_store_that_is_down_says_unavailable_in_one_line(tmp_path: Path) -> None:
    env = server_env(
        tmp_path,
        MCP_MEMORY_EMBEDDING_PROVIDER="hash",
        MCP_MEMORY_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/nothing",
    )
    done = await run("reembed", env=env)
    errors = [line for line in done.stderr.decode().splitlines() if not LOG_LINE.match(line)]
    assert done.returncode == 1 and "Traceback" not in done.stderr.decode(), done.stderr
    assert len(errors) == 1 and errors[0].startswith("mcp-memory: unavailable: Postgres is not reachable"), errors


async def test_a_migration_cut_off_by_an_unexpected_failure_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    url = database_url(await create_database())
    env = server_env(tmp_path, MCP_MEMORY_DATABASE_URL=url)
    done = await run("migrate", env=env, failing_at="migrate.locked")
    assert done.returncode == 1 and done.stdout == b""
    one_internal_line(done.stderr, "migrating", "(RuntimeError: a failure no code names)", "whole or not at all")
    assert await first_column(url, "SELECT to_regclass('mcp_memory.mcp_memory_alembic_version')") == {"None"}
