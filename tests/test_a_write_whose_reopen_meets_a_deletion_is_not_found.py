"""A write (or restore) on a session Redis lost re-opens it from the durable store and runs again. A deletion by
another server that lands between the re-open's read of the record and that second run erases the re-opened
session: the write then answers ``not_found``, as it would have a moment later, not ``unavailable`` (which says
Redis lost the session and a retry may help), and nothing of the session is left. A deletion still under way (its
seal on the durable record, Redis erased, the record not yet deleted) makes it ``conflict``, as any write to a
sealed session. Redis with SQLite and with Postgres records, two runtimes standing for two servers, the deletion
forced right after the re-open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, NotFound
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import new_scope
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["redis+sqlite", "redis+postgres"])
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    async with settings_for(request.param, tmp_path) as settings:
        yield settings


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


async def lost_after_a_pause(a: MemoryRuntime, settings: Settings) -> tuple[Scope, RedisWorkingStore]:
    """A session spawned and paused on ``a``, whose keys Redis then lost (a restart without persistence)."""
    scope = new_scope()
    await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
    await a.lifecycle.pause(*ids(scope))
    store = a.working_store
    assert isinstance(store, RedisWorkingStore)
    admin = redis.Redis.from_url(str(settings.redis_url))
    try:
        admin.delete(*store.keys(scope))
    finally:
        admin.close()
    return scope, store


async def make(a: MemoryRuntime, call: str, scope: Scope) -> None:
    if call == "memory_set":
        await a.working.set(scope, "k", 2)
    else:
        await a.lifecycle.resume(*ids(scope))


@pytest.mark.parametrize("call", ["memory_set", "resume"])
async def test_a_call_whose_reopen_meets_another_servers_deletion_is_not_found(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    async with MemoryRuntime(settings) as a, MemoryRuntime(settings) as b:
        scope, store = await lost_after_a_pause(a, settings)
        reopen = store._recover
        deleted: list[bool] = []

        async def reopened_then_deleted(*args: Any, **kwargs: Any) -> Any:
            found = await reopen(*args, **kwargs)
            if not deleted:
                deleted.append(True)
                await b.control.delete_session(*ids(scope), keep_episodes=False)
            return found

        monkeypatch.setattr(store, "_recover", reopened_then_deleted)
        with pytest.raises(NotFound, match="does not exist"):
            await make(a, call, scope)
        assert deleted and await b.store.get_session(scope) is None
        await b.lifecycle.spawn(*ids(scope))  # the id starts clean: nothing of the deleted session came back
        assert await b.working.state(scope) == {}
        assert await b.lifecycle.list_checkpoints(*ids(scope)) == []


@pytest.mark.parametrize("call", ["memory_set", "resume"])
async def test_a_call_whose_reopen_meets_a_deletion_under_way_is_conflict(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    async with MemoryRuntime(settings) as a, MemoryRuntime(settings) as b:
        scope, store = await lost_after_a_pause(a, settings)
        erased, finish = anyio.Event(), anyio.Event()

        async def hold_the_deletion(point: str) -> None:
            if point == "delete.working_erased":  # sealed, Redis erased, the record not deleted yet
                erased.set()
                await finish.wait()

        reopen = store._recover
        async with anyio.create_task_group() as tg:

            async def reopened_then_deletion_begun(*args: Any, **kwargs: Any) -> Any:
                found = await reopen(*args, **kwargs)
                if not erased.is_set():
                    tg.start_soon(b.control.delete_session, *ids(scope))
                    await erased.wait()
                return found

            monkeypatch.setattr(store, "_recover", reopened_then_deletion_begun)
            with faults.on_fault(hold_the_deletion):
                try:
                    with pytest.raises(Conflict, match=r"accepts no writes|cannot resume"):
                        await make(a, call, scope)
                finally:
                    finish.set()
        assert await b.store.get_session(scope) is None
