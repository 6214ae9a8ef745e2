"""A lifecycle call that waits for its session's lock (behind a slow pause of the same session, say) reads the time
after the wait: a key whose TTL runs out meanwhile is neither consolidated by terminate (its episode's keys, summary
and counts) nor restored or counted by resume. On every store kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import anyio
import pytest

from mcp_memory.models import LifecycleResult, Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock
from tests.waiting import until

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def behind_the_lock(
    rt: MemoryRuntime, scope: Scope, clock: FakeClock, call: Callable[[], Awaitable[LifecycleResult]]
) -> dict[str, Any]:
    """``call`` started while another call holds the session's lock; the clock moves 10 s before it is released."""
    lock = rt.lifecycle.session_lock(scope)
    done: dict[str, Any] = {}

    async def run() -> None:
        done.update((await call()).data)

    await lock.acquire()
    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await until(lambda: lock.statistics().tasks_waiting == 1, what="the call waits for the session's lock")
        clock.advance(10)
        lock.release()
    return done


async def test_terminate_leaves_out_a_key_that_expired_while_it_waited(
    runtime: MemoryRuntime, scope: Scope, clock: FakeClock
) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s, initial_state={"keep": 1})
    await runtime.working.set(scope, "secret", "gone soon", ttl_seconds=5)
    result = await behind_the_lock(runtime, scope, clock, lambda: runtime.lifecycle.terminate(p, a, s))
    assert result["state_items_consolidated"] == 1 and result["items_cleared"] == 1
    episode = await runtime.store.get_episode(p, UUID(result["episode_id"]))
    assert episode is not None and episode.metadata["state_keys"] == ["keep"]


async def test_resume_leaves_out_a_key_that_expired_while_it_waited(
    runtime: MemoryRuntime, scope: Scope, clock: FakeClock
) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s, initial_state={"keep": 1})
    await runtime.working.set(scope, "secret", "gone soon", ttl_seconds=5)
    await runtime.lifecycle.pause(p, a, s)
    result = await behind_the_lock(runtime, scope, clock, lambda: runtime.lifecycle.resume(p, a, s))
    assert result["items_restored"] == 1
    assert await runtime.working.list_keys(scope) == ["keep"]
