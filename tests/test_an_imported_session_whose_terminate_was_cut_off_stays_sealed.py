"""A session whose terminate was cut off (sealed, still running) is exported sealed and imported sealed on every
store: writes to it stay refused, as in the source, and a terminate still ends it. Targets: SQLite, SQLite + Redis
(the import switches the session's working memory in sealed), Postgres."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to, records

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def test_a_session_sealed_by_a_cut_off_terminate_stays_sealed_after_an_import(
    runtime: MemoryRuntime, tmp_path: Path
) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    scope = Scope(project, agent, "cut-off")
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(project, agent, "cut-off", initial_state={"a": 1})
        await rt.lifecycle.spawn(project, agent, "open", initial_state={"b": 2})
        await rt.store.seal(scope, "a-terminate-that-never-ended", rt.clock(), 60.0)
        path = await export_to(rt, Selection(project), tmp_path / "sealed.jsonl")
    assert [r["sealed"] for r in records(path) if r["kind"] == "session"] == [True, False]
    assert runtime.transfer is not None
    await runtime.transfer.import_file(path)
    assert await runtime.working.get(scope, "a") == 1
    with pytest.raises(Conflict):
        await runtime.working.set(scope, "after", 1)
    await runtime.working.set(Scope(project, agent, "open"), "after", 1)  # the other session is open
    await runtime.lifecycle.terminate(project, agent, "cut-off")
    session = await runtime.store.get_session(scope)
    assert session is not None and session.status == "terminated"


async def test_an_imported_terminated_session_refuses_writes_from_the_moment_it_is_switched_in(
    runtime: MemoryRuntime, tmp_path: Path
) -> None:
    """A terminated session that kept its keys comes into Redis terminated in the import's switch itself: a write
    landing before the import closes it as terminate does (or when that step fails) is refused."""
    project, agent = uuid.uuid4(), uuid.uuid4()
    scope = Scope(project, agent, "done")
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(project, agent, "done", initial_state={"k": 1})
        await rt.lifecycle.terminate(project, agent, "done", cleanup_working=False)
        path = await export_to(rt, Selection(project), tmp_path / "terminated.jsonl")
    refused: list[bool] = []

    async def write_in_the_window(point: str) -> None:
        if point == "import.switched":
            try:
                await runtime.working.set(scope, "written_after_terminate", 1)
                refused.append(False)
            except Conflict:
                refused.append(True)

    assert runtime.transfer is not None
    with faults.on_fault(write_in_the_window):
        await runtime.transfer.import_file(path)
    assert refused == ([True] if isinstance(runtime.working_store, RedisWorkingStore) else [])
    assert await runtime.working.get(scope, "k") == 1
    with pytest.raises(Conflict):
        await runtime.working.set(scope, "written_after_terminate", 1)
