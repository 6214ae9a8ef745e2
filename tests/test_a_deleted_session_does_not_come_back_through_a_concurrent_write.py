"""A session deleted while a call re-opens it from the durable store stays deleted. ``delete_session`` erases the
session's Redis keys, deletes its durable record, and erases Redis again; a ``memory_set`` arriving after the first
erase finds the session missing in Redis and re-opens it from the durable record it reads, and its Redis write can
land after the second erase. It then reads the record again and drops its re-open: the call answers ``not_found``
and nothing of the deleted session (its checkpoint's secret included) is readable or writable after. The order is
forced with the named fault points (mcp_memory.faults). Nor does it come back when the re-opening call stops (its
store fails, its deadline is spent, its process dies) right after its Redis write, before it could look at the
durable record again. On Redis + SQLite and Redis + Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import redis

from mcp_memory import faults
from mcp_memory.errors import NotFound
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.redis_servers import shared_redis_url
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MemoryRuntime]:
    """Working memory in Redis, the durable store on SQLite or Postgres."""
    async with settings_for(f"redis+{request.param}", tmp_path) as settings, MemoryRuntime(settings) as rt:
        yield rt


async def test_a_write_racing_delete_session_does_not_bring_the_session_back(runtime: MemoryRuntime) -> None:
    assert isinstance(runtime.working_store, RedisWorkingStore)
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await runtime.lifecycle.spawn(*ids, initial_state={"secret": "pii"})
    await runtime.lifecycle.pause(*ids)
    erased, read, deleted = anyio.Event(), anyio.Event(), anyio.Event()

    async def order(point: str) -> None:
        if point == "delete.working_erased":  # the deletion waits until the write has read the durable record
            erased.set()
            await read.wait()
        elif point == "recover.read":  # the write waits until the deletion is over before it writes Redis
            read.set()
            await deleted.wait()

    answers: list[str] = []

    async def delete() -> None:
        await runtime.control.delete_session(*ids)
        deleted.set()

    async def write() -> None:
        await erased.wait()
        try:
            await runtime.working.set(scope, "late", 1)
            answers.append("ok")
        except NotFound:
            answers.append("not_found")

    with faults.on_fault(order), anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(delete)
            tg.start_soon(write)
    assert answers == ["not_found"]
    assert await runtime.store.get_session(scope) is None
    for read_back in (runtime.working.list_keys(scope), runtime.working.get(scope, "secret")):
        with pytest.raises(NotFound):
            await read_back
    with pytest.raises(NotFound):
        await runtime.working.set(scope, "later", 2)


class Stopped(Exception):
    """Stands for a call that stopped at a fault point (its store failed, its deadline was spent, its process died)."""


async def assert_gone(runtime: MemoryRuntime, scope: Scope) -> None:
    """Nothing of the deleted session is readable or writable, and Redis holds no key of it."""
    assert await runtime.store.get_session(scope) is None
    for read_back in (runtime.working.list_keys(scope), runtime.working.get(scope, "secret")):
        with pytest.raises(NotFound):
            await read_back
    with pytest.raises(NotFound):
        await runtime.working.set(scope, "later", 2)
    store = runtime.working_store
    assert isinstance(store, RedisWorkingStore)
    base = store.keys(scope)[0].removesuffix(":m")
    assert [key async for key in store.client.scan_iter(match=f"{base}:*")] == []


async def test_a_reopen_that_stops_after_its_write_does_not_keep_a_session_deleted_meanwhile(
    runtime: MemoryRuntime,
) -> None:
    """Redis has lost the session; a write reads its durable record to re-open it, a whole ``delete_session`` runs
    before the write's Redis step lands, and the write stops right after that step."""
    store = runtime.working_store
    assert isinstance(store, RedisWorkingStore)
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await runtime.lifecycle.spawn(*ids, initial_state={"secret": "pii"})
    await runtime.lifecycle.pause(*ids)
    with redis.Redis.from_url(shared_redis_url()) as admin:
        assert admin.delete(*store.all_keys(scope)) > 0  # Redis lost it (a restart without persistence)
    deleted: list[bool] = []

    async def delete_then_stop(point: str) -> None:
        if point == "recover.read" and not deleted:
            await runtime.control.delete_session(*ids)
            deleted.append(True)
        elif point == "recover.written":
            raise Stopped

    with faults.on_fault(delete_then_stop), anyio.fail_after(30):
        try:
            await runtime.working.set(scope, "late", 1)
        except (NotFound, Stopped):
            pass
    assert deleted == [True]
    await assert_gone(runtime, scope)
