"""``mcp-memory export -o PATH`` writes the export where PATH leads without changing what PATH is: a symlink stays a
link (its target gets the export), a FIFO stays a FIFO (its reader gets the export), a file keeps its mode, and a new
file is made 0600 (an export holds all of the scope's memory). Real CLI subprocesses on SQLite."""

from __future__ import annotations

import os
import stat
import sys
import threading
import uuid
from pathlib import Path

import anyio
import pytest

from tests.transfer_helpers import cli_source, comparable

pytestmark = pytest.mark.anyio


@pytest.fixture
async def source(tmp_path: Path) -> tuple[uuid.UUID, dict[str, str]]:
    """A small project in a SQLite file, and the environment that points the CLI at it."""
    return await cli_source(tmp_path)


async def export(project: uuid.UUID, env: dict[str, str], output: Path) -> None:
    cli = [sys.executable, "-m", "mcp_memory.cli", "export", "--project", str(project), "-o", str(output)]
    done = await anyio.run_process(cli, env=env, check=False)
    assert done.returncode == 0 and done.stdout == b"", done.stderr.decode()


async def test_a_symlink_stays_a_link_and_its_target_gets_the_export(
    source: tuple[uuid.UUID, dict[str, str]], tmp_path: Path
) -> None:
    project, env = source
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("an older backup\n")
    link.symlink_to(real)
    await export(project, env, link)
    assert link.is_symlink() and link.resolve() == real
    assert comparable(real)[0][0]["kind"] == "header" and comparable(real)[0][-1]["kind"] == "trailer"


async def test_a_fifo_stays_a_fifo_and_its_reader_gets_the_export(
    source: tuple[uuid.UUID, dict[str, str]], tmp_path: Path
) -> None:
    project, env = source
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        await export(project, env, fifo)
    finally:
        reader.join(timeout=10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received, "the FIFO's reader got nothing"
    copy = tmp_path / "received.jsonl"
    copy.write_bytes(received[0])
    assert comparable(copy)[0][-1]["kind"] == "trailer"


async def test_a_file_keeps_its_mode_and_a_new_file_is_private(
    source: tuple[uuid.UUID, dict[str, str]], tmp_path: Path
) -> None:
    project, env = source
    kept = tmp_path / "kept.jsonl"
    kept.write_text("an older backup\n")
    kept.chmod(0o640)
    await export(project, env, kept)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_bytes().startswith(b'{"kind":"header"')
    new = tmp_path / "new.jsonl"
    await export(project, env, new)
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    assert [name for name in os.listdir(tmp_path) if ".partial" in name] == []
