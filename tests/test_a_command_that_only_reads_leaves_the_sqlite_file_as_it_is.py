"""``export`` and ``forget --dry-run`` only read the SQLite file: they neither upgrade a file of an older schema (the
release that wrote it could not open it after; docs/configuration.md says only ``serve`` and the commands that write
do that) nor create a missing one (a mistyped path would read as an empty project). They refuse in one line naming
the command that does it, exit 1, and the file is as it was. Before, export upgraded a schema-6 file with exit 0, and
a dry run on a mistyped path created the file and its directories and reported an empty project.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mcp_memory.stores.sqlite.schema import SCHEMA_VERSION
from tests.test_a_sqlite_file_a_start_refuses_is_refused_alike_by_every_command import OLD_FILE, PROJECT, cli

pytestmark = pytest.mark.anyio


async def test_export_and_a_dry_run_refuse_a_file_of_an_older_schema_until_serve_upgrades_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copyfile(OLD_FILE, path)
    before = path.read_bytes()
    older = (
        f"unavailable: the SQLite file {path} is at schema 6, older than this release's schema {SCHEMA_VERSION}: "
        "`mcp-memory serve` upgrades it at its next start (the release that wrote it cannot open it after)"
    )

    code, out, errors = await cli(tmp_path, path, "export", "--project", PROJECT, "--output", str(tmp_path / "x"))
    assert (code, out, errors) == (1, "", [f"mcp-memory: {older}; nothing was exported"])
    assert not (tmp_path / "x").exists()
    code, out, errors = await cli(tmp_path, path, "forget", "--project", PROJECT, "--dry-run")
    assert (code, out, errors) == (1, "", [f"mcp-memory forget: {older}; nothing was counted"])
    assert path.read_bytes() == before

    code, _, errors = await cli(tmp_path, path, "serve")  # the upgrade, as the message says
    assert (code, errors) == (0, [])
    code, out, errors = await cli(tmp_path, path, "export", "--project", PROJECT)
    assert code == 0 and json.loads(out.splitlines()[0])["format"] == "mcp-memory-export", errors
    code, out, errors = await cli(tmp_path, path, "forget", "--project", PROJECT, "--dry-run")
    assert code == 0 and json.loads(out)["dry_run"] is True, errors


async def test_a_dry_run_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "dir" / "memroy.db"
    code, out, errors = await cli(tmp_path, missing, "forget", "--project", PROJECT, "--dry-run")
    assert (code, out, len(errors)) == (1, "", 1), errors
    assert errors[0].startswith(f"mcp-memory forget: not_found: no SQLite file at {missing}: `mcp-memory serve`")
    assert errors[0].endswith("; nothing was counted")
    assert not (tmp_path / "typo").exists()
