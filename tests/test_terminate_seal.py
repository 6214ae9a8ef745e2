"""Terminate's seal: while a terminate runs, its session accepts no write, pause or resume; the seal has an owner
and a lease, so one left by a crashed terminate is taken over once the lease runs out, and a terminate that fails
(and unseals) or whose seal another server took over loses no acknowledged write and re-opens no session another
server has terminated meanwhile. Several servers are several runtimes on one store (and, for the two-step path, one
private Redis)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, Unavailable
from mcp_memory.models import Item, Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.anyio


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


@pytest.mark.backends("sqlite", "redis")
async def test_a_session_mid_terminate_says_so(runtime: MemoryRuntime, scope: Scope, clock: FakeClock) -> None:
    await runtime.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)
    # As if a terminate had been interrupted right after sealing: its seal stands until its lease runs out.
    lease = runtime.settings.terminate_lease_seconds
    await runtime.store.seal(scope, "interrupted", clock(), lease)  # the durable record first, as terminate does
    if runtime.working_store is not runtime.store:
        await runtime.working_store.seal(scope, "interrupted", clock(), lease)
    with pytest.raises(Conflict, match="call terminate again"):
        await runtime.working.set(scope, "k", 1)
    with pytest.raises(Conflict, match="already in progress"):
        await runtime.lifecycle.terminate(scope.project_id, scope.agent_instance_id, scope.session_id)
    clock.advance(lease)
    result = await runtime.lifecycle.terminate(scope.project_id, scope.agent_instance_id, scope.session_id)
    assert result.data["episode_id"] is not None


# -- two servers on one SQLite file: the seal is fenced by its owner's token -----------------------------------------
async def test_terminate_whose_seal_was_taken_over_does_not_lose_an_acknowledged_write(db_url: str) -> None:
    settings = Settings(database_url=db_url)
    lease = settings.terminate_lease_seconds
    clock_a = FakeClock(1_800_000_000.0)
    clock_b = FakeClock(clock_a() + lease + 1)  # server B's clock runs ahead of A's by more than the lease
    scope = new_scope()
    async with MemoryRuntime(settings, clock=clock_a) as a, MemoryRuntime(settings, clock=clock_b) as b:
        await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
        a_snapshotted, go_on = anyio.Event(), anyio.Event()
        snapshot = a.working_store.snapshot

        async def held_snapshot(s: Scope, now: float) -> dict[str, Item]:
            items = await snapshot(s, now)
            a_snapshotted.set()
            with anyio.fail_after(5):
                await go_on.wait()  # e.g. a slow embedding; by A's own clock no time passes
            return items

        async def failing_record_terminate(*args: Any, **kwargs: Any) -> Any:
            raise Unavailable("injected: B's store call times out")

        a.working_store.snapshot = held_snapshot  # type: ignore[method-assign]
        b.store.record_terminate = failing_record_terminate  # type: ignore[method-assign]
        outcome: list[Any] = []

        async def terminate_a() -> None:
            try:
                outcome.append((await a.lifecycle.terminate(*ids(scope))).data)
            except Conflict as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate_a)
            with anyio.fail_after(5):
                await a_snapshotted.wait()
            # B sees A's seal as lapsed (its clock), takes it over, fails and unseals its own seal: open again.
            with pytest.raises(Unavailable):
                await b.lifecycle.terminate(*ids(scope))
            written = True
            try:
                await b.working.set(scope, "late", "acknowledged")
            except Conflict:
                written = False
            go_on.set()

        if not written:
            return  # refused: nothing acknowledged, nothing lost
        info = await a.store.get_session(scope)
        assert info is not None
        if info.status == SessionStatus.TERMINATED:
            episode = await a.episodic.get(scope.project_id, info.terminate_result["episode_id"])
            assert "late" in episode.metadata["state_keys"], (
                f"acknowledged write 'late' neither consolidated nor kept: episode has {episode.metadata['state_keys']}"
            )
        else:
            assert await a.working.get(scope, "late") is not None


# -- two servers on one Redis (the two-step path) --------------------------------------------------------------------
async def test_failed_terminate_does_not_reopen_a_session_another_server_terminated(
    db_url: str, clock: FakeClock, own_redis: RedisServer
) -> None:
    settings = Settings(database_url=db_url, redis_url=own_redis.url, redis_key_prefix="failed-terminate")
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        scope = new_scope()
        await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})

        async def failing_record_terminate(*args: Any, **kwargs: Any) -> Any:
            raise Unavailable("the store is busy; retry later")  # e.g. a timeout on server A

        a.store.record_terminate = failing_record_terminate  # type: ignore[method-assign]
        store = a.working_store
        real_eval = store._eval
        done: list[dict[str, Any]] = []

        async def eval_(name: str, keys: Any, args: Any) -> Any:
            if name == "seal" and args[0] == "o" and not done:
                # A's unseal has checked the durable record (not terminated); server B's terminate (the client's
                # retry, once A's seal has lapsed: it takes the seal over) runs to completion right now, before A's
                # unseal lands in Redis (which leaves alone a seal that is no longer A's, and a terminated session).
                clock.advance(settings.terminate_lease_seconds)
                done.append((await b.lifecycle.terminate(*ids(scope))).data)
            return await real_eval(name, keys, args)

        store._eval = eval_  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await a.lifecycle.terminate(*ids(scope))
        assert done and done[0]["state_items_consolidated"] == 1
        info = await a.store.get_session(scope)
        assert info is not None and info.status == SessionStatus.TERMINATED
        store._eval = real_eval  # type: ignore[method-assign]
        # docs/contract.md: "A terminated session accepts no writes".
        with pytest.raises(Conflict):
            await b.working.set(scope, "late", "written after terminate")


async def test_resume_between_durable_seal_and_redis_seal_is_conflict(
    db_url: str, clock: FakeClock, own_redis: RedisServer
) -> None:
    settings = Settings(database_url=db_url, redis_url=own_redis.url, redis_key_prefix="resume-during-seal")
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        scope = new_scope()
        await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
        await a.lifecycle.pause(*ids(scope), checkpoint_id="c1")
        await a.working.set(scope, "k", 2)
        store = a.working_store
        real_seal = store.seal
        outcome: list[Any] = []

        async def seal(s: Scope, *args: Any) -> bool:
            # Server A's terminate has sealed the durable record; server B's resume comes now.
            try:
                outcome.append(await b.lifecycle.resume(*ids(scope), checkpoint_id="c1"))
            except Conflict as exc:
                outcome.append(exc)
            return await real_seal(s, *args)

        store.seal = seal  # type: ignore[method-assign]
        await a.lifecycle.terminate(*ids(scope))
        assert len(outcome) == 1
        assert isinstance(outcome[0], Conflict), f"resume of a session being terminated returned {outcome[0]!r}"
