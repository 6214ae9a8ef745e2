"""Without Redis (working memory in SQLite or Postgres), a pause is one transaction of the store, under the session's
lock (SQLite's write lock, Postgres's row lock). Its checkpoint's time and id must not come from before that lock: a
pause of server A that read the clock, then waited (for the lock, or a connection) while a pause of server B took a
later time and committed, would record the newer state under the older time, so the newest checkpoint by time (the
one a resume takes by default) was not the latest state. Ids sort as creation times, and creation times as the
content's order. Two runtimes on one store stand for two servers: one pause held between its start and the store
(deterministic), and pauses of both racing."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.json_values import decode_value
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sqlite.store import SqliteStore
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    async with settings_for(request.param, tmp_path, checkpoint_retention_count=0) as settings:
        yield settings


def held_at_the_store(rt: MemoryRuntime, arrived: anyio.Event, go: anyio.Event) -> None:
    """Make the next call of ``rt``'s store into its write path wait for ``go`` (after setting ``arrived``), as a call
    waiting for the store's lock or a connection does: the pause has started, the store has not seen it."""
    store = rt.store
    if isinstance(store, SqliteStore):
        write = store._write_direct

        async def held_write(fn: Callable[[Any], Any]) -> Any:
            store._write_direct = write  # type: ignore[method-assign]
            arrived.set()
            await go.wait()
            return await write(fn)

        store._write_direct = held_write  # type: ignore[method-assign]
        return
    assert isinstance(store, PostgresStore)
    driver = store._driver

    def held_driver(*args: Any) -> AbstractAsyncContextManager[Any]:
        store._driver = driver  # type: ignore[method-assign]

        @asynccontextmanager
        async def held() -> AsyncIterator[Any]:
            arrived.set()
            await go.wait()
            async with driver(*args) as conn:
                yield conn

        return held()

    store._driver = held_driver  # type: ignore[method-assign]


async def test_a_pause_that_waited_for_the_store_is_dated_after_the_pause_that_went_first(settings: Settings) -> None:
    async with MemoryRuntime(settings) as a, MemoryRuntime(settings) as b:
        scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
        ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
        await a.lifecycle.spawn(*ids, initial_state={"v": 0})
        arrived, go = anyio.Event(), anyio.Event()
        held_at_the_store(a, arrived, go)
        made: dict[str, str] = {}

        async def pause_a() -> None:
            made["a"] = (await a.lifecycle.pause(*ids)).data["checkpoint_id"]

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(pause_a)
                await arrived.wait()  # A has started its pause; B pauses after it, and is done first
                await b.working.set(scope, "v", 1)
                made["b"] = (await b.lifecycle.pause(*ids)).data["checkpoint_id"]
                await b.working.set(scope, "v", 2)  # A's pause, still to come, snapshots this
                go.set()
        listed = await a.store.list_checkpoints(scope, 10, None)
        newest = await a.store.get_checkpoint(scope, None)
    assert [c.checkpoint_id for c in listed] == [made["a"], made["b"]]  # newest first: A's, taken last
    assert listed[0].created_at > listed[1].created_at and made["a"] > made["b"]
    assert newest is not None and decode_value(newest.items["v"].value) == 2


async def test_racing_pauses_of_two_servers_are_dated_in_the_order_of_their_content(settings: Settings) -> None:
    rounds = 40
    async with MemoryRuntime(settings) as a, MemoryRuntime(settings) as b:
        scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
        ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
        await a.lifecycle.spawn(*ids)

        async def pauses(rt: MemoryRuntime, name: str) -> None:
            for i in range(rounds):
                await rt.working.set(scope, f"{name}{i:03d}", i)  # each pause sees one key more of its own
                await rt.lifecycle.pause(*ids)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(pauses, a, "a")
                tg.start_soon(pauses, b, "b")
        listed = await a.store.list_checkpoints(scope, 2 * rounds + 1, None)
        states = {c.checkpoint_id: await a.store.get_checkpoint(scope, c.checkpoint_id) for c in listed}
    oldest_first = listed[::-1]
    assert len(oldest_first) == 2 * rounds
    assert [c.checkpoint_id for c in oldest_first] == sorted(c.checkpoint_id for c in oldest_first)
    # In creation order, each checkpoint holds every key of the one before it (the content only grows).
    keys = [set(data.items) for data in (states[c.checkpoint_id] for c in oldest_first) if data is not None]
    assert all(before <= after for before, after in itertools.pairwise(keys)), [len(k) for k in keys]
    assert len(keys[-1]) == 2 * rounds
