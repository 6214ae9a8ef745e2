"""A terminate whose session is deleted (``delete_session``, or the operator's ``forget``, by another server or, once
the terminate has let go of the session lock, by its own) while it is under way runs no terminate hook and answers
``not_found`` (``conflict`` if the id was spawned again meanwhile: the new session is left as it is), and leaves
nothing of the session behind: no record, episode (the deletion here drops episodes), event or Redis key. Before, it
ran its hooks for the session that no longer existed and answered as if it had terminated it. A deletion that meets
the terminate's seal (before its record) is ``conflict`` and the terminate goes on whole, hooks included.

Each deletion is forced at a fault point of the terminate (mcp_memory.faults): ``terminate.sealed`` (only the
operator's forget goes through the seal), ``terminate.recorded``, ``terminate.closed`` and ``terminate.completing``;
also in a retried terminate and a sweep pass that finish a cut-off terminate's job. On every pair of stores (one SQL
store; Redis with SQLite or Postgres); time moves on a fake clock.
"""

from __future__ import annotations

import pytest
import redis

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, NotFound, Respawned
from mcp_memory.models import LifecycleEvent, Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.terminate_sweep import SWEEP_MARGIN_SECONDS
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import shared_redis_url

pytestmark = pytest.mark.anyio

STATE = {"goal": "ship", "step": 3}
AFTER_THE_SEAL = ("terminate.recorded", "terminate.closed", "terminate.completing")
"""The points at which a deletion goes through: the session is recorded terminated, and its seal no longer holds a
deletion off."""


class ServerDied(BaseException):
    """The server stops dead at a fault point: none of the call's own cleanup runs."""


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def recording(*runtimes: MemoryRuntime) -> list[LifecycleEvent]:
    """The terminate hooks' events, of every runtime given."""
    seen: list[LifecycleEvent] = []

    async def on_terminate(event: LifecycleEvent) -> None:
        seen.append(event)

    for rt in runtimes:
        rt.lifecycle.hooks.on_terminate(on_terminate)
    return seen


async def delete(rt: MemoryRuntime, how: str, scope: Scope) -> None:
    """``rt`` deletes the session, and its episodes: by ``delete_session`` or by the operator's ``forget``."""
    if how == "delete_session":
        await rt.control.delete_session(*ids(scope), keep_episodes=False)
    else:
        await rt.control.forget(scope.project_id, scope.agent_instance_id, scope.session_id, dry_run=False)


def deleted_at(
    point: str, rt: MemoryRuntime, how: str, scope: Scope, respawn_at: FakeClock | None = None
) -> faults.FaultHook:
    """A fault hook: ``rt`` deletes the session the first time a call reaches ``point`` (and, with ``respawn_at``,
    spawns its id again a second later on that clock: another incarnation)."""
    done: list[str] = []

    async def hook(reached: str) -> None:
        if reached == point and not done:
            done.append(reached)
            await delete(rt, how, scope)
            if respawn_at is not None:
                respawn_at.advance(1)
                await rt.lifecycle.spawn(*ids(scope), initial_state={"goal": "again"})

    return hook


def redis_keys(rt: MemoryRuntime, scope: Scope) -> list[str]:
    """The Redis keys that name the session's project ([] without Redis)."""
    if not isinstance(rt.working_store, RedisWorkingStore):
        return []
    admin = redis.Redis.from_url(shared_redis_url(), decode_responses=True)
    try:
        named = [k for k in admin.scan_iter(match=f"{rt.settings.redis_key_prefix}*") if str(scope.project_id) in k]
        return named + [k for k in rt.working_store.all_keys(scope) if admin.exists(k) and k not in named]
    finally:
        admin.close()


async def assert_nothing_left(a: MemoryRuntime, b: MemoryRuntime, scope: Scope) -> None:
    assert await a.store.get_session(scope) is None
    assert await a.store.recent_episodes([scope.project_id], 10) == []
    assert await a.store.list_events(scope, 100) == []
    assert redis_keys(a, scope) == []
    for rt in (a, b):
        with pytest.raises(NotFound):
            await rt.working.set(scope, "k", 1)
        with pytest.raises(NotFound):
            await rt.lifecycle.terminate(*ids(scope))
    assert redis_keys(a, scope) == []


@pytest.mark.parametrize(
    ("point", "how"),
    [("terminate.sealed", "forget")]
    + [(point, how) for point in AFTER_THE_SEAL for how in ("delete_session", "forget")],
)
async def test_a_terminate_whose_session_another_server_deletes_runs_no_hook_and_is_not_found(
    settings_on_every_store: Settings, clock: FakeClock, point: str, how: str
) -> None:
    settings = settings_on_every_store
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        hooked = recording(a, b)
        scope = new_scope()
        await a.lifecycle.spawn(*ids(scope), initial_state=STATE)
        with faults.on_fault(deleted_at(point, b, how, scope)), pytest.raises(NotFound) as answer:
            await a.lifecycle.terminate(*ids(scope), metadata={"run": 7})
        assert not isinstance(answer.value, Conflict)
        assert hooked == []
        await assert_nothing_left(a, b, scope)
        assert hooked == []


async def test_a_terminate_whose_session_its_own_server_deletes_before_the_hooks_runs_none(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    """The terminate has let go of the session lock at ``terminate.completing``: a deletion of its own server comes in
    there."""
    async with MemoryRuntime(settings_on_every_store, clock=clock) as a:
        hooked = recording(a)
        scope = new_scope()
        await a.lifecycle.spawn(*ids(scope), initial_state=STATE)
        with faults.on_fault(deleted_at("terminate.completing", a, "delete_session", scope)), pytest.raises(NotFound):
            await a.lifecycle.terminate(*ids(scope))
        assert hooked == []
        await assert_nothing_left(a, a, scope)


@pytest.mark.parametrize("point", AFTER_THE_SEAL)
async def test_a_terminate_whose_session_is_deleted_and_spawned_again_runs_no_hook_and_leaves_the_new_one(
    settings_on_every_store: Settings, clock: FakeClock, point: str
) -> None:
    settings = settings_on_every_store
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        hooked = recording(a, b)
        scope = new_scope()
        await a.lifecycle.spawn(*ids(scope), initial_state=STATE)
        with faults.on_fault(deleted_at(point, b, "delete_session", scope, respawn_at=clock)), pytest.raises(Respawned):
            await a.lifecycle.terminate(*ids(scope))
        assert hooked == []
        info = await a.store.get_session(scope)
        assert info is not None and info.status == SessionStatus.RUNNING and not info.sealed
        assert await a.store.recent_episodes([scope.project_id], 10) == []
        for rt in (a, b):
            assert await rt.working.state(scope) == {"goal": "again"}
        await a.working.set(scope, "step", 4)
        assert await b.working.get(scope, "step") == 4
        # The new session is not the deleted one's: a terminate ends it as any other, hooks and all.
        ended = await a.lifecycle.terminate(*ids(scope))
        assert ended.data["state_items_consolidated"] == 2 and not ended.repeat
        assert [str(e.episode_id) for e in hooked] == [ended.data["episode_id"]]


async def test_a_deletion_meeting_the_terminates_seal_is_conflict_and_the_terminate_runs_its_hooks(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    settings = settings_on_every_store
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        hooked = recording(a, b)
        scope = new_scope()
        await a.lifecycle.spawn(*ids(scope), initial_state=STATE)
        refused: list[Exception] = []

        async def hook(reached: str) -> None:
            if reached == "terminate.sealed" and not refused:
                with pytest.raises(Conflict) as answer:
                    await b.control.delete_session(*ids(scope), keep_episodes=False)
                refused.append(answer.value)

        with faults.on_fault(hook):
            ended = await a.lifecycle.terminate(*ids(scope), metadata={"run": 7})
        assert len(refused) == 1
        info = await a.store.get_session(scope)
        assert info is not None and info.status == SessionStatus.TERMINATED and not info.terminate_unfinished
        assert ended.data["episode_id"] == str(info.episode_id)
        assert [(e.episode_id, e.metadata) for e in hooked] == [(info.episode_id, {"run": 7})]
        # Terminated, it may be deleted now: nothing of it is left.
        await b.control.delete_session(*ids(scope), keep_episodes=False)
        await assert_nothing_left(a, b, scope)
        assert len(hooked) == 1


async def cut_off_after_its_record(rt: MemoryRuntime, scope: Scope) -> None:
    """``rt`` spawns the session and its terminate dies just after the durable record."""
    await rt.lifecycle.spawn(*ids(scope), initial_state=STATE)

    async def die(point: str) -> None:
        if point == "terminate.recorded":
            raise ServerDied(point)

    with faults.on_fault(die), pytest.raises(ServerDied):
        await rt.lifecycle.terminate(*ids(scope), metadata={"run": 7})


@pytest.mark.parametrize("point", ("terminate.closed", "terminate.completing"))
async def test_a_retry_finishing_a_cut_off_terminate_of_a_session_deleted_after_its_claim_runs_no_hook(
    settings_on_every_store: Settings, clock: FakeClock, point: str
) -> None:
    settings = settings_on_every_store
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        hooked = recording(a, b)
        scope = new_scope()
        await cut_off_after_its_record(a, scope)
        clock.advance(settings.terminate_lease_seconds + 1)
        with faults.on_fault(deleted_at(point, b, "delete_session", scope)), pytest.raises(NotFound):
            await a.lifecycle.terminate(*ids(scope))
        assert hooked == []
        await assert_nothing_left(a, b, scope)


@pytest.mark.parametrize("point", ("terminate.closed", "terminate.completing"))
async def test_a_sweep_pass_finishing_a_terminate_of_a_session_deleted_after_its_claim_runs_no_hook(
    settings_on_every_store: Settings, clock: FakeClock, point: str
) -> None:
    settings = settings_on_every_store
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        hooked = recording(a, b)
        scope = new_scope()
        await cut_off_after_its_record(a, scope)
        clock.advance(settings.terminate_lease_seconds + SWEEP_MARGIN_SECONDS + 1)
        with faults.on_fault(deleted_at(point, b, "delete_session", scope)):
            assert await a.terminate_sweep.run_once() == 0
        assert hooked == []
        await assert_nothing_left(a, b, scope)
        assert await a.terminate_sweep.run_once() == 0
        assert hooked == []
