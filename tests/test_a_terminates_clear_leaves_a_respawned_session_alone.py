"""terminate clears working memory after it has recorded the session terminated (and, with working memory in Redis,
marks it terminated there). Between the two another server may delete the terminated session (allowed:
docs/contract.md, delete_session) and spawn the same session_id afresh; the late clear must not erase that new
session's acknowledged writes, nor close it; and the terminate, whose session is gone, answers ``conflict`` (its
episode, recorded before the deletion, is kept by it)."""

from __future__ import annotations

import anyio
import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import NotFound, Respawned
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock
from tests.held_back import HeldBack

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "postgres")]


async def terminate_respawned(rt: MemoryRuntime, scope: Scope) -> None:
    """``rt`` terminates the session, which is deleted and spawned again before the terminate's last steps: its answer
    is ``conflict`` (the session it recorded is gone)."""
    with pytest.raises(Respawned):
        await rt.lifecycle.terminate(scope.project_id, scope.agent_instance_id, scope.session_id)


async def terminate_while_respawning(rt: MemoryRuntime, scope: Scope) -> None:
    """As :func:`terminate_respawned`, with the new spawn maybe still under way when the terminate reads the record
    again before its hooks: ``conflict`` if that spawn has completed by then, ``not_found`` if not (an incomplete
    session exists for no other call)."""
    with pytest.raises((Respawned, NotFound)):
        await rt.lifecycle.terminate(scope.project_id, scope.agent_instance_id, scope.session_id)


async def test_a_late_clear_of_a_terminated_session_does_not_erase_its_successor(
    settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    async with MemoryRuntime(settings, clock=clock) as rt_a, MemoryRuntime(settings, clock=clock) as rt_b:
        await rt_a.lifecycle.spawn(p, a, s, initial_state={"old": 1})
        held = HeldBack()
        held.hold(rt_a.store)
        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate_respawned, rt_a, scope)
            await held.reached()
            # Server B: the session is terminated; delete it and start it afresh under the same id.
            await rt_b.control.delete_session(p, a, s)
            await rt_b.lifecycle.spawn(p, a, s, initial_state={"fresh": 1})
            await rt_b.working.set(scope, "acknowledged", "written by B")
            held.go_on.set()
        episodes = await rt_b.store.recent_episodes([p], 10)
        assert [e.metadata["state_keys"] for e in episodes] == [["old"]]
        assert (await rt_b.store.get_session(scope)).status.value == "running"  # type: ignore[union-attr]
        assert await rt_b.working.list_keys(scope) == ["acknowledged", "fresh"]


@pytest.mark.backends("redis")
async def test_a_late_close_in_redis_leaves_the_successor_writable_with_its_items(
    settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    """Working memory in Redis: terminate's last step marks the session terminated there and clears it. Landing after
    the session was deleted and spawned again (later: another incarnation), it must neither erase the new session's
    items nor close it to writes."""
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    async with MemoryRuntime(settings, clock=clock) as rt_a, MemoryRuntime(settings, clock=clock) as rt_b:
        await rt_a.lifecycle.spawn(p, a, s, initial_state={"old": 1})
        held = HeldBack()
        held.hold(rt_a.working_store)
        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate_respawned, rt_a, scope)
            await held.reached()
            await rt_b.control.delete_session(p, a, s)
            clock.advance(1)
            await rt_b.lifecycle.spawn(p, a, s, initial_state={"fresh": 1})
            await rt_b.working.set(scope, "acknowledged", "written by B")
            held.go_on.set()
        assert await rt_b.working.list_keys(scope) == ["acknowledged", "fresh"]
        await rt_b.working.set(scope, "later", "still writable")
        assert await rt_a.working.list_keys(scope) == ["acknowledged", "fresh", "later"]


@pytest.mark.backends("redis")
async def test_a_late_close_in_redis_leaves_a_spawn_staged_meanwhile_alone(
    settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    """As above, with the close landing while the new spawn has staged its initial state in Redis and not yet
    committed it: the spawn completes with its initial state, writable."""
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    async with MemoryRuntime(settings, clock=clock) as rt_a, MemoryRuntime(settings, clock=clock) as rt_b:
        await rt_a.lifecycle.spawn(p, a, s, initial_state={"old": 1})
        held = HeldBack()

        async def at_staged(point: str) -> None:
            if point == "spawn.staged":
                held.go_on.set()
                with anyio.fail_after(10):
                    await held.closed.wait()

        held.hold(rt_a.working_store)
        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate_while_respawning, rt_a, scope)
            await held.reached()
            await rt_b.control.delete_session(p, a, s)
            clock.advance(1)
            with faults.on_fault(at_staged):
                await rt_b.lifecycle.spawn(p, a, s, initial_state={"fresh": 1})
        assert await rt_b.working.list_keys(scope) == ["fresh"]
        await rt_b.working.set(scope, "acknowledged", "written by B")
        assert await rt_a.working.list_keys(scope) == ["acknowledged", "fresh"]
