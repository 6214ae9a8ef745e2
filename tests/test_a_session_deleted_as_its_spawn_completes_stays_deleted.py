"""With working memory in Redis, a spawn completes the session durably and then commits its staged initial state in
Redis. A ``delete_session`` of another server in between deletes the session (its durable record and the staged
state, which are its Redis keys); the spawn's commit then finds nothing staged and writes the initial state again, as
it does when Redis lost it (a restart): that must not bring the deleted session back, readable and writable, while a
session whose staged state Redis lost still comes with its initial state. Redis + SQLite and Redis + Postgres
(``two_servers``)."""

from __future__ import annotations

import uuid

import pytest
import redis

from mcp_memory import faults
from mcp_memory.errors import NotFound
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.redis_servers import shared_redis_url

pytestmark = pytest.mark.anyio


async def test_a_session_deleted_between_its_spawns_durable_completion_and_its_commit_stays_deleted(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    spawner, server = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)

    async def delete_in_the_window(point: str) -> None:
        if point == "spawn.completed":
            await server.control.delete_session(*ids)

    with faults.on_fault(delete_in_the_window):
        await spawner.lifecycle.spawn(*ids, initial_state={"secret": "pii"})
    assert await server.store.get_session(scope) is None
    for rt in (spawner, server):
        for read_back in (rt.working.list_keys(scope), rt.working.get(scope, "secret")):
            with pytest.raises(NotFound):
                await read_back
        with pytest.raises(NotFound):
            await rt.working.set(scope, "later", 1)
    store = server.working_store
    assert isinstance(store, RedisWorkingStore)
    base = store.keys(scope)[0].removesuffix(":m")
    assert [key async for key in store.client.scan_iter(match=f"{base}:*")] == []


async def test_a_spawn_whose_staged_state_redis_lost_before_its_commit_comes_with_its_initial_state(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    spawner, server = two_servers
    store = spawner.working_store
    assert isinstance(store, RedisWorkingStore)
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)

    async def lose_the_staged_state(point: str) -> None:
        if point == "spawn.completed":  # a restart without persistence
            with redis.Redis.from_url(shared_redis_url()) as admin:
                assert admin.delete(*store.keys(scope)) > 0

    with faults.on_fault(lose_the_staged_state):
        await spawner.lifecycle.spawn(*ids, initial_state={"goal": "kept"})
    assert await server.working.get(scope, "goal") == "kept"
    await server.working.set(scope, "later", 1)
