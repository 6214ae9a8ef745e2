"""An export taken while agents work is a file the import takes: a session that appears after the export has written
its session lines (spawned meanwhile, or whose spawn completes meanwhile) is left out whole, with its working
memory, checkpoints and events, so every record of the file belongs to a session listed before it. The interleaving
is fixed: the writes happen right after the export's session pass. Sources: SQLite, SQLite + Redis, Postgres."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import records

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def import_into_fresh_store(path: Path, tmp_path: Path) -> dict[str, int]:
    fresh = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / f'{uuid.uuid4()}.db'}")
    async with MemoryRuntime(fresh, embedding_retry=False) as rt:
        assert rt.transfer is not None
        report = await rt.transfer.import_file(path)
    return report.counts


async def test_a_session_spawned_after_the_session_pass_is_left_out_and_the_file_imports(
    runtime: MemoryRuntime, tmp_path: Path
) -> None:
    assert runtime.transfer is not None
    project, agent = uuid.uuid4(), uuid.uuid4()
    await runtime.lifecycle.spawn(project, agent, "old", initial_state={"a": 1})
    await runtime.lifecycle.pause(project, agent, "old")
    path = tmp_path / "during.jsonl"
    with path.open("wb") as out:
        written = False
        async for line in runtime.transfer.export(Selection(project)):
            out.write(line)
            if not written and b'"kind":"working"' in line:
                # Another agent of the project at work while the export runs.
                await runtime.lifecycle.spawn(project, agent, "new", initial_state={"b": 2})
                await runtime.lifecycle.pause(project, agent, "new")
                written = True
    assert written
    assert {r.get("session_id") for r in records(path)[1:-1]} == {"old"}
    counts = await import_into_fresh_store(path, tmp_path)
    assert (counts["sessions"], counts["working"], counts["checkpoints"]) == (1, 1, 1)


@pytest.mark.backends("redis")
async def test_a_session_whose_spawn_completes_during_the_export_is_left_out_and_the_file_imports(
    runtime: MemoryRuntime, tmp_path: Path
) -> None:
    """With Redis a spawn creates its durable row first and completes it later: a row older than sessions the file
    lists, completed (and paused) once the export has passed the sessions, is not in the file."""
    assert runtime.transfer is not None
    project, agent = uuid.uuid4(), uuid.uuid4()
    await runtime.lifecycle.spawn(project, agent, "old", initial_state={"a": 1})
    begun, release, done = anyio.Event(), anyio.Event(), anyio.Event()

    async def hold(point: str) -> None:
        if point == "spawn.begun" and not begun.is_set():
            begun.set()
            await release.wait()

    async def slow_spawn() -> None:
        with faults.on_fault(hold):
            await runtime.lifecycle.spawn(project, agent, "late", initial_state={"c": 3})
        await runtime.lifecycle.pause(project, agent, "late")
        done.set()

    path = tmp_path / "during.jsonl"
    async with anyio.create_task_group() as tg:
        tg.start_soon(slow_spawn)
        await begun.wait()
        await runtime.lifecycle.spawn(project, agent, "after", initial_state={"d": 4})  # a newer row, complete
        with path.open("wb") as out:
            async for line in runtime.transfer.export(Selection(project)):
                out.write(line)
                if not release.is_set() and b'"kind":"working"' in line:
                    release.set()
                    await done.wait()
    assert {r.get("session_id") for r in records(path)[1:-1]} == {"old", "after"}
    counts = await import_into_fresh_store(path, tmp_path)
    assert (counts["sessions"], counts["working"]) == (2, 2)
