"""``forget`` erases the working-memory keys a crashed import left staged in Redis (``...}:import:<token>:*``,
which would otherwise wait a day for their expiry), but counts only sessions: a session with a crashed import's
leftovers is one Redis session with its own live keys, in the dry run and in the erase alike. Before, each staged
set was counted as one more session, and its keys as working keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from mcp_memory.config import Settings
from mcp_memory.models import Item, Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.records import Limits
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix

pytestmark = pytest.mark.anyio


@pytest.fixture
async def runtime(db_url: str) -> AsyncIterator[MemoryRuntime]:
    prefix = unique_prefix()
    try:
        async with MemoryRuntime(
            Settings(database_url=db_url, redis_url=shared_redis_url(), redis_key_prefix=prefix)
        ) as rt:
            yield rt
    finally:
        delete_keys(shared_redis_url(), prefix)


async def test_staged_import_keys_are_erased_but_not_counted(runtime: MemoryRuntime) -> None:
    rt = runtime
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    project, agent = uuid.uuid4(), uuid.uuid4()
    await rt.lifecycle.spawn(str(project), str(agent), "s1", initial_state={"a": 1, "b": 2})
    # What an import that crashed after staging leaves behind (services/transfer.py stages, then switches).
    staged = {"x": Item('"1"'), "y": Item('"2"'), "z": Item('"3"')}
    await store.stage_import(Scope.parse(project, agent, "s1"), staged, time.time(), Limits(10_000), "tok123")

    dry = await rt.control.forget(project, None, None, True)
    assert (dry["redis_sessions"], dry["working_keys"]) == (1, 2), dry
    done = await rt.control.forget(project, None, None, False)
    assert (done["redis_sessions"], done["working_keys"]) == (1, 2), done
    with redis.Redis.from_url(shared_redis_url()) as admin:
        assert list(admin.scan_iter(match=f"{store.key_prefix}:{{{project}/*")) == []  # staged keys erased too


async def test_a_session_order_key_alone_is_erased_but_not_counted(runtime: MemoryRuntime) -> None:
    """A terminated session's tombstone expires before the order of its transitions (``g``, kept a day so a late
    record still ranks): what is left then is no session, and forget erases it without counting one."""
    rt = runtime
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    project, agent = uuid.uuid4(), uuid.uuid4()
    await rt.lifecycle.spawn(str(project), str(agent), "s1", initial_state={"a": 1})
    await rt.lifecycle.pause(str(project), str(agent), "s1")
    keys = store.all_keys(Scope.parse(project, agent, "s1"))
    order_key = next(k for k in keys if k.endswith(":g"))
    with redis.Redis.from_url(shared_redis_url()) as admin:
        assert admin.exists(order_key)
        admin.delete(*(k for k in keys if k != order_key))  # what the tombstone's and copy's expiries leave

    done = await rt.control.forget(project, None, None, False)
    assert (done["redis_sessions"], done["working_keys"]) == (0, 0), done
    with redis.Redis.from_url(shared_redis_url()) as admin:
        assert not admin.exists(order_key)
