"""Two terminates of one session on two servers at nearly the same moment. Server A's records the session terminated
and has not yet cleared it (its last step, held back here) when server B's comes: B's answers as a repeated terminate
does (A's result, marked ``repeat``, nothing recorded, no hook run), whether B read the session after A's record or
before it (its seal then landing on a session terminated already); the hooks run once, for A's call. Whereas if A's
last step failed, B finishes A's job at once, hooks included. On every pair of stores (one SQL store; Redis with
SQLite or Postgres)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Unavailable
from mcp_memory.models import LifecycleEvent, LifecycleResult, Scope, SessionInfo
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock, new_scope
from tests.held_back import HeldBack
from tests.waiting import until

pytestmark = pytest.mark.anyio


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def hooked_on(runtimes: tuple[MemoryRuntime, ...]) -> list[LifecycleEvent]:
    """The terminate hook events of every runtime, in the order they ran."""
    seen: list[LifecycleEvent] = []

    async def on_terminate(event: LifecycleEvent) -> None:
        seen.append(event)

    for rt in runtimes:
        rt.lifecycle.hooks.on_terminate(on_terminate)
    return seen


async def terminate_events(rt: MemoryRuntime, scope: Scope) -> list[str]:
    return [e.outcome for e in await rt.store.list_events(scope, 100) if e.event_type == "terminate"]


async def test_a_terminate_arriving_while_the_first_clears_answers_as_a_repeat(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    scope = new_scope()
    async with (
        MemoryRuntime(settings_on_every_store, clock=clock) as a,
        MemoryRuntime(settings_on_every_store, clock=clock) as b,
    ):
        hooked = hooked_on((a, b))
        await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1, "j": 2})
        held = HeldBack()
        held.hold(a.working_store)
        answers: dict[str, LifecycleResult] = {}

        async def first() -> None:
            answers["a"] = await a.lifecycle.terminate(*ids(scope), task_description="the task")

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await held.reached()
            answers["b"] = await b.lifecycle.terminate(*ids(scope), task_description="the task")
            held.go_on.set()
        assert not answers["a"].repeat and answers["a"].data["items_cleared"] == 2
        assert answers["b"].repeat and answers["b"].data == answers["a"].data
        assert [e.episode_id for e in hooked] == [UUID(answers["a"].data["episode_id"])]
        assert await terminate_events(a, scope) == ["ok"]
        assert await b.working.list_keys(scope) == []


async def test_a_terminate_whose_seal_lands_after_the_others_record_answers_as_a_repeat(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    """B read the session as running, then A recorded it terminated, then B sealed: B's seal finds the session
    terminated (without consolidation both calls would make the same result, so only where it came from tells B's
    own record from A's)."""
    scope = new_scope()
    async with (
        MemoryRuntime(settings_on_every_store, clock=clock) as a,
        MemoryRuntime(settings_on_every_store, clock=clock) as b,
    ):
        hooked = hooked_on((a, b))
        await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
        held = HeldBack()
        held.hold(a.working_store)
        b_read, b_go_on = anyio.Event(), anyio.Event()
        real_get = b.store.get_session

        async def read_then_wait(s: Scope) -> SessionInfo | None:
            info = await real_get(s)
            if not b_read.is_set():  # B's terminate has read the session (running); A's comes now
                b_read.set()
                with anyio.fail_after(10):
                    await b_go_on.wait()
            return info

        b.store.get_session = read_then_wait  # type: ignore[method-assign]
        answers: dict[str, Any] = {}

        async def terminate(name: str, rt: MemoryRuntime) -> None:
            try:
                answers[name] = await rt.lifecycle.terminate(*ids(scope), consolidate_to_episodic=False)
            except Exception as exc:
                answers[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate, "b", b)
            with anyio.fail_after(10):
                await b_read.wait()
            tg.start_soon(terminate, "a", a)
            await held.reached()
            b_go_on.set()
            # B runs whole while A is still held at its clear.
            await until(lambda: "b" in answers, what="B's terminate answered")
            held.go_on.set()
        assert isinstance(answers["a"], LifecycleResult) and not answers["a"].repeat
        assert isinstance(answers["b"], LifecycleResult), f"B's terminate failed: {answers['b']!r}"
        assert answers["b"].repeat and answers["b"].data == answers["a"].data
        assert len(hooked) == 1
        assert await terminate_events(a, scope) == ["ok"]
        assert await b.working.list_keys(scope) == []


async def test_a_terminate_after_the_first_failed_to_clear_finishes_its_job_at_once(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    """A's last step fails (the store did not answer): A ends its lease, so B, within what would have been that
    lease, does not take A for still at work; it clears, runs the hooks A never ran, and answers as A would have."""
    scope = new_scope()
    async with (
        MemoryRuntime(settings_on_every_store, clock=clock) as a,
        MemoryRuntime(settings_on_every_store, clock=clock) as b,
    ):
        hooked = hooked_on((a, b))
        await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})

        async def unanswered(*args: Any, **kwargs: Any) -> int:
            raise Unavailable("injected: the store did not answer A's clear")

        a.working_store.mark_terminated = unanswered  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await a.lifecycle.terminate(*ids(scope))
        assert hooked == []
        again = await b.lifecycle.terminate(*ids(scope))
        assert not again.repeat and again.data["items_cleared"] == 1
        assert [e.episode_id for e in hooked] == [UUID(again.data["episode_id"])]
        assert await b.working.list_keys(scope) == []
        assert (await b.lifecycle.terminate(*ids(scope))).repeat
        assert len(hooked) == 1
        assert await terminate_events(a, scope) == ["ok"]
