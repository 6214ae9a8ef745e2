"""A SQLite file that mcp-memory must not open is refused by every command in the same one sentence, exit 1, and is
left byte for byte as it was:

- written by a newer release (a ``schema_version`` or an Alembic revision this release does not know): ``doctor``
  said the file "lacks tables ... `mcp-memory serve` adds them", where serve refuses it ("upgrade mcp-memory");
- another application's database (tables, but no mcp-memory version), as a mistyped path names: ``export`` and
  ``serve`` wrote mcp-memory's eleven tables into it, and doctor said serve would add them;
- not a database, or a damaged one: ``serve``, ``export``, ``import`` and ``forget`` ended in a traceback.

An empty file (no table at all) is no refusal: a start creates the schema in it, as in a file that does not exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from mcp_memory.stores.sqlite.schema import SCHEMA_VERSION
from mcp_memory.stores.sqlite.upgrade import HEAD

pytestmark = pytest.mark.anyio

OLD_FILE = Path(__file__).parent / "data" / "sqlite_schema6.db"
PROJECT = "aaaaaaaa-0000-4000-8000-000000000001"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


async def cli(tmp_path: Path, database: Path, *args: str) -> tuple[int, str, list[str]]:
    """``mcp-memory ARGS`` on the SQLite file ``database`` (stdin closed): exit code, stdout, stderr's lines that are
    not log lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env.update(
        MCP_MEMORY_CONFIG="", MCP_MEMORY_DATABASE_URL=f"sqlite+aiosqlite:///{database}", XDG_DATA_HOME=str(tmp_path)
    )
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "mcp_memory.cli", *args], env=env, check=False)
    errors = [line for line in done.stderr.decode().splitlines() if not LOG_LINE.match(line)]
    return done.returncode, done.stdout.decode(), errors


def edited(path: Path, *statements: str) -> None:
    """Run ``statements`` on ``path`` and close it: the file (in WAL mode) holds them whole, with no WAL beside it
    for a later connection to fold in."""
    db = sqlite3.connect(path)
    try:
        with db:
            for statement in statements:
                db.execute(statement)
    finally:
        db.close()


def newer_schema_version(path: Path) -> str:
    shutil.copyfile(OLD_FILE, path)
    edited(path, "UPDATE schema_version SET version = 99")
    return (
        f"the database {path} has schema version 99, newer than this mcp-memory understands (schema version "
        f"{SCHEMA_VERSION}, revision {HEAD}); upgrade mcp-memory"
    )


def newer_revision(path: Path) -> str:
    shutil.copyfile(OLD_FILE, path)
    edited(
        path,
        "CREATE TABLE mcp_memory_alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO mcp_memory_alembic_version VALUES ('sqlite_99')",
    )
    return (
        f"the database {path} has schema revision sqlite_99, newer than this mcp-memory understands (schema version "
        f"{SCHEMA_VERSION}, revision {HEAD}); upgrade mcp-memory"
    )


def another_application(path: Path) -> str:
    edited(
        path, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO customers (name) VALUES ('a')"
    )
    return (
        f"the database {path} has tables but no mcp-memory schema version; it was not written by mcp-memory "
        "(check MCP_MEMORY_DATABASE_URL)"
    )


def not_a_database(path: Path) -> str:
    path.write_text('databse_url = "x"\n')
    return f"cannot open the SQLite file {path}: file is not a database"


def damaged(path: Path) -> str:
    path.write_bytes(OLD_FILE.read_bytes()[:50_000])
    return f"cannot open the SQLite file {path}: database disk image is malformed"


EVERY_COMMAND = (
    ("serve",),
    ("export", "--project", PROJECT),
    ("import", "IMPORT"),
    ("forget", "--project", PROJECT),
    ("forget", "--project", PROJECT, "--dry-run"),
)
CASES: dict[str, tuple[Callable[[Path], str], tuple[tuple[str, ...], ...]]] = {
    "newer schema version": (newer_schema_version, EVERY_COMMAND[:2]),
    "newer revision": (newer_revision, EVERY_COMMAND[:2]),
    "another application's": (another_application, EVERY_COMMAND),
    "not a database": (not_a_database, EVERY_COMMAND),
    "damaged": (damaged, EVERY_COMMAND),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_every_command_refuses_the_file_in_the_sentence_of_a_start_and_leaves_it_as_it_was(
    tmp_path: Path, case: str
) -> None:
    make, commands = CASES[case]
    path = tmp_path / "memory.db"
    sentence = make(path)
    before = path.read_bytes()
    to_import = tmp_path / "export.jsonl"
    to_import.write_text("{}\n")

    code, out, errors = await cli(tmp_path, path, "doctor")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["error"] in (sentence, f"unavailable: {sentence}"), report["error"]
    for command in commands:
        args = [str(to_import) if arg == "IMPORT" else arg for arg in command]
        code, _, errors = await cli(tmp_path, path, *args)
        assert code == 1, (command, errors)
        assert len(errors) == 1 and "Traceback" not in errors[0], (command, errors)
        assert f"unavailable: {sentence}" in errors[0], (command, errors)
    assert path.read_bytes() == before
    wal = path.with_name(f"{path.name}-wal")  # (a read-only connection leaves an empty one)
    assert not wal.exists() or wal.stat().st_size == 0, "nothing was written"


async def test_an_empty_file_gets_the_schema_at_the_first_start(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    path.touch()
    code, out, _ = await cli(tmp_path, path, "doctor")
    assert code == 1 and json.loads(out)["error"].startswith(f"the SQLite file {path} is empty: `mcp-memory serve`")
    assert path.read_bytes() == b""
    code, _, errors = await cli(tmp_path, path, "serve")
    assert (code, errors) == (0, [])
    code, out, _ = await cli(tmp_path, path, "doctor")
    assert code == 0 and json.loads(out)["sqlite_file"]["state"] == "current", out
