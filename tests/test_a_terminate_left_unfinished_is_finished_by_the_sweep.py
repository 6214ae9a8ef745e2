"""A terminate left unfinished after its record (its last step, the clear of working memory, failed on a Redis error;
or its server died between the record and the end of its job) and never retried is finished by the terminate sweep
(mcp_memory.services.terminate_sweep): its hooks run once with the terminate's metadata, and, with Redis, the sealed
working memory it left, which had no expiry, goes (only the terminated mark stays, with its expiry). Before, those keys
stayed until a later terminate, delete_session or forget of the session, and the hooks never ran.

At once for a terminate whose clear failed (it ended its lease); for one whose server died, only once its lease has
been over for the sweep's margin. A retry that meets the sweep finishing the job answers as a repeat and leaves the
hooks to it. On every pair of stores (one SQL store; Redis with SQLite or Postgres); time moves on a fake clock.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import redis

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Unavailable
from mcp_memory.models import LifecycleEvent, Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.terminate_sweep import SWEEP_MARGIN_SECONDS
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import shared_redis_url

pytestmark = pytest.mark.anyio

STATE = {"goal": "ship", "step": 3, "notes": ["a", "b"]}


class ServerDied(BaseException):
    """The server stops dead at a fault point: nothing of the call's own cleanup runs (not an ``Exception``, which
    a finisher might catch)."""


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def recording(rt: MemoryRuntime) -> list[LifecycleEvent]:
    seen: list[LifecycleEvent] = []

    async def on_terminate(event: LifecycleEvent) -> None:
        seen.append(event)

    rt.lifecycle.hooks.on_terminate(on_terminate)
    return seen


def redis_ttls(rt: MemoryRuntime, scope: Scope) -> dict[str, int]:
    """The session's Redis keys that exist, by suffix, each with its TTL (-1: none); {} without Redis."""
    if not isinstance(rt.working_store, RedisWorkingStore):
        return {}
    admin = redis.Redis.from_url(shared_redis_url())
    try:
        return {k.rsplit(":", 1)[1]: int(admin.ttl(k)) for k in rt.working_store.keys(scope) if admin.exists(k)}
    finally:
        admin.close()


def terminated_and_gone(rt: MemoryRuntime, scope: Scope) -> bool:
    """With Redis: the session's working memory is gone, and what is left (its terminated mark and the incarnation
    it guards) expires."""
    left = redis_ttls(rt, scope)
    return not isinstance(rt.working_store, RedisWorkingStore) or (
        left.keys() <= {"m", "i"} and "m" in left and all(ttl > 0 for ttl in left.values())
    )


async def unfinished(rt: MemoryRuntime, scope: Scope) -> bool:
    record = await rt.store.get_session(scope)
    assert record is not None
    return record.terminate_unfinished


async def test_the_sweep_finishes_a_terminate_whose_clear_failed_at_its_next_pass(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    async with MemoryRuntime(settings_on_every_store, clock=clock) as rt:
        hooked = recording(rt)
        scope = new_scope()
        await rt.lifecycle.spawn(*ids(scope), initial_state=STATE)
        real_mark = rt.working_store.mark_terminated

        async def redis_error(*args: Any, **kwargs: Any) -> int:
            raise Unavailable("unavailable: the working store did not answer terminate's clear")

        rt.working_store.mark_terminated = redis_error  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await rt.lifecycle.terminate(*ids(scope), task_description="ship it", metadata={"run": 7})
        rt.working_store.mark_terminated = real_mark  # type: ignore[method-assign]
        if isinstance(rt.working_store, RedisWorkingStore):  # sealed, in full, with no expiry
            assert set(redis_ttls(rt, scope).values()) == {-1} and {"m", "v"} <= redis_ttls(rt, scope).keys()
        assert hooked == [] and await unfinished(rt, scope)

        # The failed call ended its lease: the next pass finishes it, with no wait.
        assert await rt.terminate_sweep.run_once() == 1
        record = await rt.store.get_session(scope)
        assert record is not None and record.episode_id is not None
        assert [(e.episode_id, e.metadata) for e in hooked] == [(record.episode_id, {"run": 7})]
        assert terminated_and_gone(rt, scope), redis_ttls(rt, scope)
        assert await rt.working.list_keys(scope) == []
        assert not await unfinished(rt, scope)
        assert await rt.terminate_sweep.run_once() == 0
        again = await rt.lifecycle.terminate(*ids(scope))
        assert again.repeat and not again.unfinished and again.data["items_cleared"] == len(STATE)
        assert len(hooked) == 1


@pytest.mark.parametrize("point", faults.TERMINATE_POINTS)
async def test_the_sweep_finishes_a_dead_servers_terminate_once_its_lease_and_margin_are_over(
    settings_on_every_store: Settings, clock: FakeClock, point: str
) -> None:
    async with MemoryRuntime(settings_on_every_store, clock=clock) as rt:
        hooked = recording(rt)
        scope = new_scope()
        await rt.lifecycle.spawn(*ids(scope), initial_state=STATE)

        async def die(reached: str) -> None:
            if reached == point:
                raise ServerDied(point)

        with faults.on_fault(die), pytest.raises(ServerDied):
            await rt.lifecycle.terminate(*ids(scope), metadata={"run": 7})
        assert hooked == [] and await unfinished(rt, scope)

        # The dead call's lease is over, but not by the margin: a call slow to finish is left alone.
        clock.advance(rt.settings.terminate_lease_seconds + 1)
        assert await rt.terminate_sweep.run_once() == 0
        assert hooked == [] and await unfinished(rt, scope)
        clock.advance(SWEEP_MARGIN_SECONDS)
        assert await rt.terminate_sweep.run_once(batch=1) == 1
        assert [e.metadata for e in hooked] == [{"run": 7}]
        assert terminated_and_gone(rt, scope), redis_ttls(rt, scope)
        assert await rt.working.list_keys(scope) == [] and not await unfinished(rt, scope)
        assert await rt.terminate_sweep.run_once() == 0
        assert len(hooked) == 1


async def test_a_retry_meeting_the_sweep_at_work_answers_as_a_repeat_and_the_hooks_run_once(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    """The sweep of server S has claimed a dead terminate's job and cleared its working memory; server B's retry comes
    then: S holds the job's lease, so B takes it for at work (a repeat, announced, no hook) and S runs the hooks."""
    async with (
        MemoryRuntime(settings_on_every_store, clock=clock) as sweeping,
        MemoryRuntime(settings_on_every_store, clock=clock) as b,
    ):
        on_sweeper, on_b = recording(sweeping), recording(b)
        scope = new_scope()
        await b.lifecycle.spawn(*ids(scope), initial_state=STATE)

        async def die(reached: str) -> None:
            if reached == "terminate.recorded":
                raise ServerDied(reached)

        with faults.on_fault(die), pytest.raises(ServerDied):
            await b.lifecycle.terminate(*ids(scope))
        clock.advance(b.settings.terminate_lease_seconds + SWEEP_MARGIN_SECONDS + 1)
        closed, go_on = anyio.Event(), anyio.Event()

        async def hold(reached: str) -> None:
            if reached == "terminate.closed" and not closed.is_set():
                closed.set()
                await go_on.wait()

        finished: list[int] = []

        async def sweep() -> None:
            finished.append(await sweeping.terminate_sweep.run_once())

        with faults.on_fault(hold), anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sweep)
                await closed.wait()
                retry = await b.lifecycle.terminate(*ids(scope))
                assert retry.repeat and retry.unfinished
                assert on_b == []
                go_on.set()
        assert finished == [1]
        assert len(on_sweeper) == 1 and on_b == []
        assert not await unfinished(b, scope)
        assert not (await b.lifecycle.terminate(*ids(scope))).unfinished
