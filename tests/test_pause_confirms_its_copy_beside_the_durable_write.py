"""A pause with a generated checkpoint id confirms its Redis copy while its durable write is in flight (one wait for
the two, services/pause_copies.py); a copy so confirmed is used only for that checkpoint, and a pause whose durable
write fails leaves a copy that no resume takes. A caller-given id is confirmed only after its durable write
(pinned in test_redis_resume_takes_the_pause_copy.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
import redis

from mcp_memory.config import Settings
from mcp_memory.errors import MemoryServiceError, Unavailable
from mcp_memory.models import Scope, encode_value
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix

pytestmark = pytest.mark.anyio


@pytest.fixture
def prefix() -> Iterator[str]:
    name = unique_prefix()
    yield name
    delete_keys(shared_redis_url(), name)


@pytest.fixture
def admin() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(shared_redis_url(), decode_responses=True)
    yield client
    client.close()


@pytest.fixture
async def rt(db_url: str, clock: FakeClock, prefix: str) -> AsyncIterator[MemoryRuntime]:
    settings = Settings(database_url=db_url, redis_url=shared_redis_url(), redis_key_prefix=prefix)
    async with MemoryRuntime(settings, clock=clock) as runtime:
        store(runtime).copy_min_keys = 1  # every state is copied here
        yield runtime


def store(rt: MemoryRuntime) -> RedisWorkingStore:
    working = rt.working_store
    assert isinstance(working, RedisWorkingStore)
    return working


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def tamper(rt: MemoryRuntime, admin: redis.Redis, scope: Scope) -> None:
    """Change the copy's value of "a" behind the store's back: a resume that took the copy shows it."""
    cv = store(rt).copy_keys(scope)[0]
    assert admin.hexists(cv, "a")
    admin.hset(cv, "a", encode_value("from the copy"))


async def test_the_confirmation_does_not_wait_for_the_durable_write(
    rt: MemoryRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The durable write here finishes only once the copy is confirmed: one after the other, the pause would hang."""
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
    confirmed = anyio.Event()
    confirm, record = store(rt).confirm_copy, rt.store.record_pause

    async def confirm_then_signal(*args: Any) -> None:
        await confirm(*args)
        confirmed.set()

    async def record_after_confirmation(*args: Any) -> None:
        with anyio.fail_after(10):
            await confirmed.wait()
        await record(*args)

    monkeypatch.setattr(store(rt), "confirm_copy", confirm_then_signal)
    monkeypatch.setattr(rt.store, "record_pause", record_after_confirmation)
    result = await rt.lifecycle.pause(*ids(scope))
    assert confirmed.is_set()
    assert await rt.store.get_checkpoint(scope, result.data["checkpoint_id"]) is not None


async def test_a_resume_takes_the_copy_of_a_generated_id(rt: MemoryRuntime, admin: redis.Redis) -> None:
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
    paused = await rt.lifecycle.pause(*ids(scope))
    await rt.working.set(scope, "a", 2)
    tamper(rt, admin, scope)
    result = await rt.lifecycle.resume(*ids(scope))
    assert result.data["checkpoint_id"] == paused.data["checkpoint_id"]
    assert await rt.working.get(scope, "a") == "from the copy"  # taken, not restored from the text


async def test_a_failed_pause_leaves_a_copy_that_no_resume_takes(
    rt: MemoryRuntime, admin: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failed pause's copy may be confirmed (beside the write), but under an id no checkpoint has: the resume
    of the newest checkpoint restores that checkpoint's text."""
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
    first = await rt.lifecycle.pause(*ids(scope))
    await rt.working.set(scope, "a", 2)

    async def refused(*_args: Any) -> None:
        await anyio.sleep(0.05)  # the confirmation lands first
        raise Unavailable("the durable store went away")

    monkeypatch.setattr(rt.store, "record_pause", refused)
    with pytest.raises(MemoryServiceError):
        await rt.lifecycle.pause(*ids(scope))
    monkeypatch.undo()
    tag = admin.hgetall(store(rt).copy_keys(scope)[2])
    assert tag["id"] != first.data["checkpoint_id"]  # the failed pause's copy, bound to its own id
    result = await rt.lifecycle.resume(*ids(scope))
    assert result.data["checkpoint_id"] == first.data["checkpoint_id"]
    assert await rt.working.get(scope, "a") == 1  # the first checkpoint's text, not the failed pause's a == 2
