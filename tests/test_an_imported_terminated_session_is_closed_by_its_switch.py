"""With working memory in Redis, an import switches a terminated session that kept its keys in closed, as terminate
closes one: its marker (``:m``) and the durable record it notes (``:i``) last as long as its keys, then a day. The
close was a step of its own after the switch, so an import that stopped between the two (an error, a crash) left
both in Redis for good once the keys expired; and a session deleted between the two was marked terminated again, in
Redis for a day: writes to it ``conflict`` where they are ``not_found``, and a key naming its project after the
deletion. Redis + SQLite, and Redis + Postgres (``two_servers``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, NotFound, Unavailable
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.scripts import TOMBSTONE_MS
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio

TTL_SECONDS = 3600


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


async def exported_terminated_session(tmp_path: Path, scope: Scope) -> Path:
    """An export of the one session ``scope``, terminated keeping its one key, which has a TTL (so Redis lets the
    key go by itself: only the marker's own expiry can end the marker)."""
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(*ids(scope))
        await rt.working.set(scope, "kept", "until its TTL", ttl_seconds=TTL_SECONDS)
        await rt.lifecycle.terminate(*ids(scope), cleanup_working=False)
        selection = Selection(scope.project_id, scope.agent_instance_id, scope.session_id)
        return await export_to(rt, selection, tmp_path / "session.jsonl")


async def redis_keys_of(rt: MemoryRuntime, scope: Scope) -> dict[str, int]:
    """Every Redis key under the session's name (its own, a staging's, its notes), with its PTTL (-1: none)."""
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    base = store.keys(scope)[0].removesuffix(":m")
    return {str(key): int(await store.client.pttl(key)) async for key in store.client.scan_iter(match=f"{base}:*")}


@pytest.mark.parametrize(
    "stop",
    [RuntimeError("injected: the importing process dies"), Unavailable("injected: Redis fails")],
    ids=["crash", "redis-error"],
)
async def test_an_import_stopped_right_after_its_switch_leaves_the_terminated_sessions_marker_an_end(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path, stop: Exception
) -> None:
    runtime, _ = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "done")
    path = await exported_terminated_session(tmp_path, scope)

    async def stop_after_the_switch(point: str) -> None:
        if point == "import.switched":
            raise stop

    assert runtime.transfer is not None
    with faults.on_fault(stop_after_the_switch), pytest.raises(type(stop), match="injected"):
        await runtime.transfer.import_file(path)

    def closed_for_a_bounded_time(keys: dict[str, int]) -> None:
        store = runtime.working_store
        assert isinstance(store, RedisWorkingStore)
        m, v, x, i = store.keys(scope)
        assert set(keys) == {m, v, x, i}  # nothing staged is left
        for marker in (m, i):  # the tombstone past the last key's expiry, as terminate gives them
            assert 0 < keys[marker] <= TOMBSTONE_MS + TTL_SECONDS * 1000

    closed_for_a_bounded_time(await redis_keys_of(runtime, scope))
    assert await runtime.working.get(scope, "kept") == "until its TTL"
    with pytest.raises(Conflict, match="is terminated"):
        await runtime.working.set(scope, "late", 1)
    # The import run again is refused whole (the session exists), and leaves the session as it found it.
    with pytest.raises(Conflict, match="nothing was imported"):
        await runtime.transfer.import_file(path)
    closed_for_a_bounded_time(await redis_keys_of(runtime, scope))
    assert await runtime.working.get(scope, "kept") == "until its TTL"


async def test_a_terminated_session_deleted_right_after_its_imports_switch_leaves_nothing_in_redis(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path
) -> None:
    importer, server = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "done")
    path = await exported_terminated_session(tmp_path, scope)

    async def delete_after_the_switch(point: str) -> None:
        if point == "import.switched":
            await server.control.delete_session(*ids(scope))

    assert importer.transfer is not None
    with faults.on_fault(delete_after_the_switch):
        report = await importer.transfer.import_file(path)
    assert (report.working_sessions_written, report.working_sessions) == (1, 1)  # gone after its switch
    assert await server.store.get_session(scope) is None
    for rt in (importer, server):
        with pytest.raises(NotFound):
            await rt.working.set(scope, "later", 1)
        with pytest.raises(NotFound):
            await rt.working.get(scope, "kept")
    assert await redis_keys_of(server, scope) == {}
