"""An export that cannot be written whole is an error a script sees: a reader that went away (``| head -1``), a
closed stdout, a full disk, a missing directory or a directory as ``-o`` all exit 1 with one ``mcp-memory: ...``
line on stderr, no traceback (a cut-off export used to exit 0, as if it were a backup). Real CLI subprocesses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from tests.transfer_helpers import cli_source

pytestmark = pytest.mark.anyio


@pytest.fixture
async def source(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The export command of a small project in a SQLite file, and the environment that points it there."""
    project, env = await cli_source(tmp_path)
    return [sys.executable, "-m", "mcp_memory.cli", "export", "--project", str(project)], env


def one_error_line(stderr: bytes, *fragments: str) -> None:
    text = stderr.decode()
    assert "Traceback" not in text and text.startswith("mcp-memory: ") and text.count("\n") == 1, text
    assert all(f in text for f in fragments), text


async def test_a_reader_that_went_away_exits_1(source: tuple[list[str], dict[str, str]]) -> None:
    cli, env = source
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head -1` once it has its line
    try:
        done = await anyio.run_process(cli, env=env, stdout=write_end, check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 1
    one_error_line(done.stderr, "went away", "cut off")


async def test_a_closed_stdout_exits_1(source: tuple[list[str], dict[str, str]]) -> None:
    cli, env = source
    done = await anyio.run_process(["sh", "-c", 'exec "$@" >&-', "sh", *cli], env=env, check=False)
    assert done.returncode == 1
    one_error_line(done.stderr, "stdout is closed")


async def test_a_full_disk_exits_1(source: tuple[list[str], dict[str, str]]) -> None:
    cli, env = source
    with open("/dev/full", "wb") as full:  # noqa: ASYNC230 (a shell's `> /dev/full`)
        done = await anyio.run_process(cli, env=env, stdout=full, check=False)
    assert done.returncode == 1
    one_error_line(done.stderr, "No space left")


async def test_an_output_in_a_missing_directory_or_a_directory_exits_1(
    source: tuple[list[str], dict[str, str]], tmp_path: Path
) -> None:
    cli, env = source
    missing = await anyio.run_process([*cli, "-o", str(tmp_path / "no" / "x.jsonl")], env=env, check=False)
    assert missing.returncode == 1
    one_error_line(missing.stderr, "No such file or directory")
    directory = tmp_path / "dir"
    directory.mkdir()
    into_dir = await anyio.run_process([*cli, "-o", str(directory)], env=env, check=False)
    assert into_dir.returncode == 1
    one_error_line(into_dir.stderr, "Is a directory")
    assert directory.is_dir() and not os.listdir(directory)
