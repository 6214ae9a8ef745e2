"""The two-step lifecycle with working memory in Redis: what only that path has to get right.

Every lifecycle guarantee, MCP session and hook test also runs on Redis through the ``backends`` marker of its own
module (tests/test_lifecycle.py, tests/test_mcp_session.py, tests/test_hooks.py ...); the tests here are about the
window between the Redis step and the durable step.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Unavailable
from mcp_memory.models import Scope, SessionStatus
from mcp_memory.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.backends("redis")]


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def test_runtime_uses_redis(settings: Settings) -> None:
    rt = MemoryRuntime(settings)
    assert isinstance(rt.working_store, RedisWorkingStore)
    assert rt.working_store.durable is rt.store


async def test_a_pause_overtaken_by_a_resume_does_not_mark_the_session_paused(runtime: MemoryRuntime) -> None:
    """On the two-step path a pause snapshots Redis, then records the checkpoint (and status `paused`). A resume
    that ran in between restored and marked the session running: the pause must not then mark it paused (the
    session lock makes the resume wait for the pause)."""
    rt = runtime
    scope = new_scope()
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await rt.lifecycle.spawn(*ids, initial_state={"a": 1})
    await rt.lifecycle.pause(*ids, checkpoint_id="first")
    record_pause, session_lock = rt.store.record_pause, rt.lifecycle._session_lock
    snapshotted = anyio.Event()  # the pause has its snapshot and is about to record it
    overtaken = anyio.Event()  # the resume has run, or is waiting for the pause

    async def held_record_pause(*args: Any, **kwargs: Any) -> None:
        snapshotted.set()
        await overtaken.wait()
        await record_pause(*args, **kwargs)

    def spied_lock(s: Scope) -> Any:
        if snapshotted.is_set():
            overtaken.set()
        return session_lock(s)

    rt.store.record_pause = held_record_pause  # type: ignore[method-assign]
    rt.lifecycle._session_lock = spied_lock  # type: ignore[method-assign]

    async def resume() -> None:
        await rt.lifecycle.resume(*ids, checkpoint_id="first")
        overtaken.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(rt.lifecycle.pause, *ids, checkpoint_id="second"))
        await snapshotted.wait()
        tg.start_soon(resume)

    session = await rt.store.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING
    kinds = [e.event_type for e in await rt.store.list_events(scope, 100)]
    assert kinds[-2:] == ["pause", "resume"]


async def test_failed_spawn_does_not_discard_a_session_terminated_meanwhile(
    db_url: str, clock: FakeClock, own_redis: RedisServer
) -> None:
    settings = Settings(database_url=db_url, redis_url=own_redis.url, redis_key_prefix="spawn-compensation")
    scope = new_scope()
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        open_ = a.working_store.open
        ended: list[dict[str, Any]] = []

        async def open_after_terminate(*args: Any, **kwargs: Any) -> Any:
            # Between the durable create and the Redis open, server B terminates the session (Redis re-opens it
            # from the durable record); then A's open fails (a Redis timeout).
            ended.append((await b.lifecycle.terminate(*ids(scope))).data)
            raise Unavailable("injected: Redis timed out")

        a.working_store.open = open_after_terminate  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
        a.working_store.open = open_  # type: ignore[method-assign]
        assert ended and ended[0]["episode_id"]
        info = await a.store.get_session(scope)
        assert info is not None and info.status == SessionStatus.TERMINATED, "the terminated session's record is gone"
        events = [(e.event_type, e.outcome) for e in await a.store.list_events(scope, 100)]
        assert ("terminate", "ok") in events
