"""With working memory in Redis, an import commits its durable records and then switches each session's staged
working memory in. A ``delete_session`` of another server in between deletes the imported session (its durable record
and its Redis keys); the switch must then leave it deleted, rather than bring the imported working memory back for a
session the durable store no longer has (readable, and writable if it was running). A running and a terminated
session (which keeps its keys); Redis + SQLite and Redis + Postgres (``two_servers``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import NotFound
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


async def exported_session(tmp_path: Path, scope: Scope, *, terminated: bool) -> Path:
    """An export of the one session ``scope`` holding ``{"secret": "pii"}`` (terminated keeping it, if asked)."""
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(*ids(scope), initial_state={"secret": "pii"})
        if terminated:
            await rt.lifecycle.terminate(*ids(scope), cleanup_working=False)
        selection = Selection(scope.project_id, scope.agent_instance_id, scope.session_id)
        return await export_to(rt, selection, tmp_path / "session.jsonl")


async def redis_keys_of(rt: MemoryRuntime, scope: Scope) -> list[str]:
    """Every Redis key under the session's name (its own, a staging's, its notes)."""
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    base = store.keys(scope)[0].removesuffix(":m")
    return sorted([str(key) async for key in store.client.scan_iter(match=f"{base}:*")])


@pytest.mark.parametrize("terminated", [False, True], ids=["running", "terminated"])
async def test_a_session_deleted_between_an_imports_durable_commit_and_its_switch_stays_deleted(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path, terminated: bool
) -> None:
    importer, server = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "imported")
    path = await exported_session(tmp_path, scope, terminated=terminated)

    async def delete_in_the_window(point: str) -> None:
        if point == "import.durable_committed":
            await server.control.delete_session(*ids(scope))

    assert importer.transfer is not None
    with faults.on_fault(delete_in_the_window):
        report = await importer.transfer.import_file(path)
    assert await server.store.get_session(scope) is None
    for rt in (importer, server):
        for read_back in (rt.working.list_keys(scope), rt.working.get(scope, "secret")):
            with pytest.raises(NotFound):
                await read_back
        with pytest.raises(NotFound):
            await rt.working.set(scope, "later", 1)
    assert await redis_keys_of(server, scope) == []
    assert (report.working_sessions_written, report.working_sessions) == (0, 1)  # the one imported is gone
