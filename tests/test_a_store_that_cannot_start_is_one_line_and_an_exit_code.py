"""``mcp-memory serve`` whose store cannot start says why in one ``mcp-memory: ...`` line on stderr and exits with
the documented code, the same on stdio and on HTTP: 2 for a configuration error (a Postgres database without the
schema), 1 for a store that cannot be reached or opened (``unavailable: ...``). Before, the failure surfaced inside
the transport's task groups: a traceback of 80-190 lines with the useful line buried, exit 1 on stdio and 3 on HTTP.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import anyio
import pytest

from tests.pg_servers import create_database, database_url, migrated_database

pytestmark = pytest.mark.anyio

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
"""A line of the server's log (``setup_logging``'s format); every other line of stderr is the error itself."""
TRANSPORTS = (["serve"], ["serve", "--transport", "http", "--port", "0"])


async def serve(tmp_path: Path, database: str, args: list[str]) -> tuple[int, list[str]]:
    """Run ``mcp-memory ARGS`` on ``database`` (stdin closed) to its end: its exit code and the lines of stderr that
    are not log lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env.update(MCP_MEMORY_CONFIG="", MCP_MEMORY_DATABASE_URL=database, XDG_DATA_HOME=str(tmp_path / "data"))
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "mcp_memory.cli", *args], env=env, check=False)
    return done.returncode, [line for line in done.stderr.decode().splitlines() if not LOG_LINE.match(line)]


@pytest.mark.parametrize("args", TRANSPORTS, ids=["stdio", "http"])
async def test_a_database_without_the_schema_is_a_configuration_error(tmp_path: Path, args: list[str]) -> None:
    url = database_url(await create_database())
    code, errors = await serve(tmp_path, url, args)
    assert code == 2, errors
    assert len(errors) == 1, errors
    assert errors[0].startswith("mcp-memory: configuration error: the Postgres database ")
    assert "has no mcp-memory schema yet; run `mcp-memory migrate`" in errors[0]


@pytest.mark.parametrize("args", TRANSPORTS, ids=["stdio", "http"])
async def test_an_unreachable_postgres_is_unavailable(tmp_path: Path, args: list[str]) -> None:
    code, errors = await serve(tmp_path, "postgresql+asyncpg://mcp:secret@127.0.0.1:1/memory", args)
    assert code == 1, errors
    assert len(errors) == 1, errors
    assert errors[0].startswith("mcp-memory: unavailable: Postgres is not reachable at 127.0.0.1:1/memory")
    assert "secret" not in errors[0]


@pytest.mark.parametrize("args", TRANSPORTS, ids=["stdio", "http"])
async def test_a_sqlite_directory_that_cannot_be_made_is_unavailable(tmp_path: Path, args: list[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, errors = await serve(tmp_path, f"sqlite+aiosqlite:///{blocker}/sub/memory.db", args)
    assert code == 1, errors
    assert errors == [
        f"mcp-memory: unavailable: cannot create {blocker}/sub, the directory of the SQLite file: Not a directory"
    ]


@pytest.mark.parametrize("args", TRANSPORTS, ids=["stdio", "http"])
async def test_a_sqlite_path_that_is_a_directory_is_unavailable(tmp_path: Path, args: list[str]) -> None:
    code, errors = await serve(tmp_path, f"sqlite+aiosqlite:///{tmp_path}", args)
    assert code == 1, errors
    assert errors == [f"mcp-memory: unavailable: cannot open the SQLite file {tmp_path}: unable to open database file"]


async def log_lines(tmp_path: Path, database: str) -> tuple[int, list[str]]:
    """Run ``mcp-memory serve`` on stdio (stdin closed) on ``database``: its exit code and its log lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env.update(MCP_MEMORY_CONFIG="", MCP_MEMORY_DATABASE_URL=database, XDG_DATA_HOME=str(tmp_path / "data"))
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "mcp_memory.cli", "serve"], env=env, check=False)
    return done.returncode, [line for line in done.stderr.decode().splitlines() if LOG_LINE.match(line)]


async def test_serving_is_logged_only_once_the_stores_are_open_and_without_alembic_chatter(tmp_path: Path) -> None:
    code, lines = await log_lines(tmp_path, database_url(await create_database()))
    assert code == 2 and not [line for line in lines if "serving" in line], lines
    assert not [line for line in lines if " alembic" in line], lines

    code, lines = await log_lines(tmp_path, database_url(await migrated_database()))
    assert code == 0, lines
    assert [line.split(": ", 1)[1] for line in lines if " mcp_memory" in line][:2] == [
        lines[0].split(": ", 1)[1],
        "serving on stdio: the stores are open",
    ]
    assert "starting on stdio" in lines[0] and not [line for line in lines if " alembic" in line], lines
