"""Import writes the file it validated: every pass reads the one file it opened, so a file renamed over the path
after the validation (as ``mcp-memory export -o SAME`` does) is not read, and a file edited in place meanwhile fails
the import whole (each pass checks the checksum again), with nothing written. Targets: SQLite, SQLite + Redis."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
import redis

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import InvalidArgument
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis")]

AGENT = uuid.uuid4()


@pytest.fixture
async def two_exports(tmp_path: Path) -> tuple[uuid.UUID, uuid.UUID, Path, Path]:
    """Project A (session 'alpha') and project B (session 'bravo'), each exported to its own file."""
    pa, pb = uuid.uuid4(), uuid.uuid4()
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(pa, AGENT, "alpha", initial_state={"a": 1})
        await rt.lifecycle.spawn(pb, AGENT, "bravo", initial_state={"b": "project B's data"})
        return (
            pa,
            pb,
            await export_to(rt, Selection(pa), tmp_path / "a.jsonl"),
            await export_to(rt, Selection(pb), tmp_path / "b.jsonl"),
        )


async def occupied(rt: MemoryRuntime, project: uuid.UUID) -> bool:
    return bool(await rt.store.selection_occupied(Selection(project)))  # type: ignore[attr-defined]


async def test_a_file_renamed_over_the_path_after_validation_is_not_what_is_imported(
    runtime: MemoryRuntime, two_exports: tuple[uuid.UUID, uuid.UUID, Path, Path], tmp_path: Path
) -> None:
    pa, pb, a, b = two_exports
    assert runtime.transfer is not None
    target = tmp_path / "backup.jsonl"
    shutil.copy(a, target)

    async def replace(point: str) -> None:
        if point == "import.validated":
            os.replace(b, target)

    with faults.on_fault(replace):
        report = await runtime.transfer.import_file(target)
    assert report.project_id == pa and report.counts["sessions"] == 1
    assert [s["session_id"] for s in (await runtime.sessions.list_sessions(pa))["sessions"]] == ["alpha"]
    assert await runtime.working.get(Scope(pa, AGENT, "alpha"), "a") == 1
    assert not await occupied(runtime, pb)


async def test_a_file_edited_in_place_after_validation_fails_the_import_with_nothing_written(
    runtime: MemoryRuntime, two_exports: tuple[uuid.UUID, uuid.UUID, Path, Path], tmp_path: Path
) -> None:
    pa, pb, a, b = two_exports
    assert runtime.transfer is not None
    target = tmp_path / "backup.jsonl"
    shutil.copy(a, target)

    async def overwrite(point: str) -> None:
        if point == "import.validated":
            with target.open("r+b") as same_file:
                same_file.write(b.read_bytes())
                same_file.truncate()

    with faults.on_fault(overwrite), pytest.raises(InvalidArgument, match="changed while it was imported"):
        await runtime.transfer.import_file(target)
    assert not await occupied(runtime, pa) and not await occupied(runtime, pb)
    if runtime.settings.redis_url is not None:  # nothing staged is left either
        client = redis.Redis.from_url(runtime.settings.redis_url)
        assert list(client.scan_iter(f"{runtime.settings.redis_key_prefix}*")) == []
