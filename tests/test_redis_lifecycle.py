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

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import NotFound, Unavailable
from mcp_memory.models import Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime
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
    record_pause, session_lock = rt.store.record_pause, rt.lifecycle._ctx.session_lock
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
    rt.lifecycle._ctx.session_lock = spied_lock  # type: ignore[method-assign]

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
    """Another server cannot terminate a session whose spawn has not completed (it does not exist yet for anyone
    else: ``not_found``, nothing recorded), so a spawn that then fails discards only its own incomplete record,
    and a retried spawn succeeds."""
    settings = Settings(database_url=db_url, redis_url=own_redis.url, redis_key_prefix="spawn-compensation")
    scope = new_scope()
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        refused: list[str] = []

        async def terminate_then_fail(point: str) -> None:
            if point == "spawn.staged":
                # Between the durable begin and completion, server B tries to terminate the session; then A's
                # next step fails (a Redis timeout).
                with pytest.raises(NotFound):
                    await b.lifecycle.terminate(*ids(scope))
                refused.append(point)
                raise Unavailable("injected: Redis timed out")

        with faults.on_fault(terminate_then_fail), pytest.raises(Unavailable):
            await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
        assert refused == ["spawn.staged"]
        assert await a.store.get_session(scope) is None, "the failed spawn left its incomplete record behind"
        assert (await b.lifecycle.spawn(*ids(scope), initial_state={"k": 2})).data["initial_items"] == 1
        assert await b.working.state(scope) == {"k": 2}
        events = [(e.event_type, e.outcome) for e in await b.store.list_events(scope, 100)]
        assert ("terminate", "ok") not in events
