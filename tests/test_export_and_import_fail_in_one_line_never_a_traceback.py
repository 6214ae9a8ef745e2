"""An export or import that fails in a way no error code names prints one ``mcp-memory: internal: ...`` line on
stderr and exits 1, never a Python traceback (the traceback goes to the log at DEBUG). Real CLI subprocesses.

The export's failure is a real one: metadata holding an integer beyond 64 bits, as a release that did not refuse it
could store in SQLite, which orjson cannot write (the export used to die with ``TypeError: Integer exceeds 64-bit
range`` and its traceback). The import's is raised at its fault point by a hook, in the subprocess that runs the CLI.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from tests.transfer_helpers import cli_source

pytestmark = pytest.mark.anyio


def one_internal_line(stderr: bytes, *fragments: str) -> None:
    text = stderr.decode()
    assert "Traceback" not in text and text.count("\n") == 1, text
    assert text.startswith("mcp-memory: internal: unexpected error while "), text
    assert all(f in text for f in fragments), text


async def test_an_export_of_metadata_orjson_cannot_write_is_one_line_and_exit_1(tmp_path: Path) -> None:
    project, env = await cli_source(tmp_path)
    with sqlite3.connect(tmp_path / "source.db") as db:
        db.execute("UPDATE sessions SET metadata = ?", ('{"n": 1180591620717411303424}',))
    db.close()
    cli = [sys.executable, "-m", "mcp_memory.cli", "export", "--project", str(project)]
    done = await anyio.run_process(cli, env=env, check=False)
    assert done.returncode == 1
    one_internal_line(done.stderr, "exporting", "Integer exceeds 64-bit range", "not complete", "DEBUG")
    output = tmp_path / "export.jsonl"
    to_file = await anyio.run_process([*cli, "-o", str(output)], env=env, check=False)
    assert to_file.returncode == 1
    one_internal_line(to_file.stderr, "exporting", str(output))
    assert not [name for name in os.listdir(tmp_path) if "export.jsonl" in name]  # no file, no partial one
    debug = await anyio.run_process(cli, env={**env, "MCP_MEMORY_LOG_LEVEL": "DEBUG"}, check=False)
    assert debug.returncode == 1 and b"Traceback" in debug.stderr  # where the details are


IMPORT_FAILING_AT_ITS_FAULT_POINT = """
import sys
from mcp_memory import faults
from mcp_memory.cli import main

async def fail(point: str) -> None:
    if point == "import.validated":
        raise RuntimeError("a failure no code names\\nand a second line")

with faults.on_fault(fail):
    sys.exit(main(["import", sys.argv[1]]))
"""


async def test_an_import_that_fails_unexpectedly_is_one_line_and_exit_1(tmp_path: Path) -> None:
    project, env = await cli_source(tmp_path)
    export = tmp_path / "export.jsonl"
    cli = [sys.executable, "-m", "mcp_memory.cli", "export", "--project", str(project), "-o", str(export)]
    await anyio.run_process(cli, env=env)
    env["MCP_MEMORY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"
    done = await anyio.run_process(
        [sys.executable, "-c", IMPORT_FAILING_AT_ITS_FAULT_POINT, str(export)], env=env, check=False
    )
    assert done.returncode == 1
    one_internal_line(done.stderr, "importing", "RuntimeError: a failure no code names)", "did not finish")
    assert done.stdout == b""
