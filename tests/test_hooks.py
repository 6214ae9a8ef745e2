"""Lifecycle hooks: run after the core operation, each with a timeout; a failing hook never fails or undoes it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.models import LifecycleEvent, Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime
from tests import hooks_for_tests
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis")]


def sid(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def register_all(rt: MemoryRuntime, hook: Callable[[LifecycleEvent], Any]) -> None:
    hooks = rt.lifecycle.hooks
    for register in (hooks.on_spawn, hooks.on_pause, hooks.on_resume, hooks.on_terminate):
        register(hook)


async def test_failing_hook_does_not_fail_or_undo_the_operation(
    runtime: MemoryRuntime, scope: Scope, caplog: pytest.LogCaptureFixture
) -> None:
    rt = runtime
    after: list[str] = []

    async def explode(event: LifecycleEvent) -> None:
        raise RuntimeError(f"boom in {event.event_type}")

    async def later(event: LifecycleEvent) -> None:
        after.append(event.event_type)

    register_all(rt, explode)
    register_all(rt, later)

    with caplog.at_level(logging.WARNING, logger="mcp_memory.services.hooks"):
        r = await rt.lifecycle.spawn(*sid(scope), initial_state={"a": 1})
        assert r.success and r.data["initial_items"] == 1
        assert await rt.working.state(scope) == {"a": 1}

        p = await rt.lifecycle.pause(*sid(scope))
        cp = p.data["checkpoint_id"]
        assert [c["checkpoint_id"] for c in await rt.lifecycle.list_checkpoints(*sid(scope))] == [cp]

        await rt.working.set(scope, "b", 2)
        r = await rt.lifecycle.resume(*sid(scope))
        assert r.data["checkpoint_id"] == cp
        assert await rt.working.state(scope) == {"a": 1}

        t = await rt.lifecycle.terminate(*sid(scope))
        assert t.data["episode_id"] is not None
        session = await rt.store.get_session(scope)
        assert session is not None and session.status == SessionStatus.TERMINATED
        assert await rt.working.list_keys(scope) == []

    events = await rt.store.list_events(scope, 100)
    assert [(e.event_type, e.outcome) for e in events] == [
        ("spawn", "ok"),
        ("pause", "ok"),
        ("resume", "ok"),
        ("terminate", "ok"),
    ]
    # Each failure is logged, and the hooks after the failing one still run.
    boom = [r for r in caplog.records if r.levelno == logging.WARNING and "hook" in r.getMessage()]
    assert len(boom) == 4
    assert after == ["spawn", "pause", "resume", "terminate"]


async def test_hanging_hook_is_cancelled_after_the_timeout(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    cancelled: list[str] = []
    after: list[str] = []

    async def hang(event: LifecycleEvent) -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(event.event_type)
            raise

    async def later(event: LifecycleEvent) -> None:
        after.append(event.event_type)

    async with MemoryRuntime(make_settings(hook_timeout_seconds=0.2), clock=clock) as rt:
        rt.lifecycle.hooks.on_pause(hang)
        rt.lifecycle.hooks.on_pause(later)
        await rt.lifecycle.spawn(*sid(scope), initial_state={"a": 1})
        t0 = time.monotonic()
        with anyio.fail_after(5):
            p = await rt.lifecycle.pause(*sid(scope))
        elapsed = time.monotonic() - t0
        assert 0.15 <= elapsed < 2.0
        assert cancelled == ["pause"] and after == ["pause"]
        assert p.data["items_saved"] == 1
        assert await rt.store.get_checkpoint(scope, p.data["checkpoint_id"]) is not None
        assert [e.event_type for e in await rt.store.list_events(scope, 10)] == ["spawn", "pause"]


async def test_a_hook_that_ignores_its_cancellation_past_the_timeout_is_logged(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope, caplog: pytest.LogCaptureFixture
) -> None:
    async def stubborn(event: LifecycleEvent) -> None:
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:  # each cancellation swallowed, until it is done by itself
            try:
                await anyio.sleep(0.05)
            except anyio.get_cancelled_exc_class():
                pass

    async with MemoryRuntime(make_settings(hook_timeout_seconds=0.2), clock=clock) as rt:
        rt.lifecycle.hooks.on_pause(stubborn)
        await rt.lifecycle.spawn(*sid(scope), initial_state={"a": 1})
        with caplog.at_level(logging.WARNING, logger="mcp_memory.services.hooks"):
            paused = await rt.lifecycle.pause(*sid(scope))
        assert paused.data["items_saved"] == 1
        overran = [r.getMessage() for r in caplog.records if "ignored its cancellation" in r.getMessage()]
        assert len(overran) == 1 and "stubborn" in overran[0], caplog.records


async def test_hooks_run_after_the_core_operation(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    seen: dict[str, Any] = {}

    async def on_spawn(event: LifecycleEvent) -> None:
        session = await rt.store.get_session(scope)
        seen["spawn"] = (session is not None, await rt.working.state(scope))

    async def on_pause(event: LifecycleEvent) -> None:
        cp_id = event.checkpoint_id
        assert cp_id is not None
        listed = [c["checkpoint_id"] for c in await rt.lifecycle.list_checkpoints(*sid(scope))]
        data = await rt.store.get_checkpoint(scope, cp_id)
        seen["pause"] = (cp_id in listed, data.state() if data else None)

    async def on_resume(event: LifecycleEvent) -> None:
        seen["resume"] = await rt.working.state(scope)

    async def on_terminate(event: LifecycleEvent) -> None:
        session = await rt.store.get_session(scope)
        assert session is not None
        episode = await rt.store.get_episode(scope.project_id, session.episode_id) if session.episode_id else None
        seen["terminate"] = (
            session.status,
            session.episode_id == event.episode_id,
            episode is not None,
            await rt.working.list_keys(scope),
        )

    hooks = rt.lifecycle.hooks
    hooks.on_spawn(on_spawn)
    hooks.on_pause(on_pause)
    hooks.on_resume(on_resume)
    hooks.on_terminate(on_terminate)

    await rt.lifecycle.spawn(*sid(scope), initial_state={"a": 1})
    assert seen["spawn"] == (True, {"a": 1})
    await rt.lifecycle.pause(*sid(scope))
    assert seen["pause"] == (True, {"a": 1})
    await rt.working.set(scope, "a", 2)
    await rt.working.set(scope, "b", 3)
    await rt.lifecycle.resume(*sid(scope))
    assert seen["resume"] == {"a": 1}
    await rt.lifecycle.terminate(*sid(scope))
    assert seen["terminate"] == (SessionStatus.TERMINATED, True, True, [])


async def test_hooks_do_not_run_when_the_operation_fails(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    calls: list[str] = []

    async def record(event: LifecycleEvent) -> None:
        calls.append(event.event_type)

    register_all(rt, record)
    await rt.lifecycle.spawn(*sid(scope))
    with pytest.raises(Exception, match="not_found"):
        await rt.lifecycle.resume(*sid(scope), checkpoint_id="nope")
    await rt.lifecycle.pause(*sid(scope), checkpoint_id="cp")
    with pytest.raises(Exception, match="conflict"):
        await rt.lifecycle.pause(*sid(scope), checkpoint_id="cp")
    assert calls == ["spawn", "pause"]


async def test_hooks_loaded_from_settings(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    hooks_for_tests.RECORDED.clear()
    settings = make_settings(
        hooks={
            "pause": ["tests.hooks_for_tests:record"],
            "terminate": ["tests.hooks_for_tests:explode", "tests.hooks_for_tests:record"],
        }
    )
    async with MemoryRuntime(settings, clock=clock) as rt:
        await rt.lifecycle.spawn(*sid(scope), initial_state={"a": 1})
        assert hooks_for_tests.RECORDED == []
        p = await rt.lifecycle.pause(*sid(scope), metadata={"why": "test"})
        t = await rt.lifecycle.terminate(*sid(scope))
    recorded = hooks_for_tests.RECORDED
    assert [e.event_type for e in recorded] == ["pause", "terminate"]
    assert recorded[0].project_id == scope.project_id
    assert recorded[0].agent_instance_id == scope.agent_instance_id
    assert recorded[0].session_id == scope.session_id
    assert recorded[0].checkpoint_id == p.data["checkpoint_id"]
    assert recorded[0].metadata == {"why": "test"}
    assert str(recorded[1].episode_id) == t.data["episode_id"]
    hooks_for_tests.RECORDED.clear()


async def test_a_hook_calling_sys_exit_or_raising_keyboard_interrupt_fails_nothing(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope, caplog: pytest.LogCaptureFixture
) -> None:
    """SystemExit and KeyboardInterrupt are BaseExceptions: a hook raising one of its own is a failing hook like any
    other (logged), it neither stops the server nor fails the call, and the hooks after it run."""
    hooks_for_tests.RECORDED.clear()
    failing = ["tests.hooks_for_tests:exit_process", "tests.hooks_for_tests:interrupt", "tests.hooks_for_tests:record"]
    settings = make_settings(hooks={event: failing for event in ("spawn", "pause", "resume", "terminate")})
    with caplog.at_level(logging.WARNING, logger="mcp_memory.services.hooks"):
        async with MemoryRuntime(settings, clock=clock) as rt:
            spawned = await rt.lifecycle.spawn(*sid(scope), initial_state={"a": 1})
            paused = await rt.lifecycle.pause(*sid(scope))
            resumed = await rt.lifecycle.resume(*sid(scope))
            terminated = await rt.lifecycle.terminate(*sid(scope))
            events = await rt.store.list_events(scope, 100)
    assert spawned.success and paused.success and resumed.success and terminated.success
    assert resumed.data["checkpoint_id"] == paused.data["checkpoint_id"]
    assert [(e.event_type, e.outcome) for e in events] == [
        ("spawn", "ok"),
        ("pause", "ok"),
        ("resume", "ok"),
        ("terminate", "ok"),
    ]
    assert [e.event_type for e in hooks_for_tests.RECORDED] == ["spawn", "pause", "resume", "terminate"]
    failed = [r for r in caplog.records if "failed; the operation stands" in r.getMessage()]
    assert [r.exc_info[0] for r in failed if r.exc_info] == [SystemExit, KeyboardInterrupt] * 4
    hooks_for_tests.RECORDED.clear()


@pytest.mark.parametrize(
    "spec",
    [
        "tests.no_such_module_here:record",
        "tests.hooks_for_tests:no_such_function",
        "tests.hooks_for_tests:NOT_CALLABLE",
        "tests.hooks_for_tests:synchronous",
        "tests.hooks_for_tests.record",
        ":record",
        "tests.hooks_for_tests:",
    ],
)
def test_bad_hook_spec_fails_at_start_up(make_settings: Callable[..., Settings], clock: FakeClock, spec: str) -> None:
    with pytest.raises(ValueError, match="hook") as excinfo:
        MemoryRuntime(make_settings(hooks={"resume": ["tests.hooks_for_tests:record", spec]}), clock=clock)
    assert spec in str(excinfo.value)


def test_an_object_with_an_async_call_is_a_hook(make_settings: Callable[..., Settings], clock: FakeClock) -> None:
    MemoryRuntime(make_settings(hooks={"pause": ["tests.hooks_for_tests:ASYNC_CALLABLE"]}), clock=clock)


async def test_a_hook_raising_cancelled_error_by_itself_fails_nothing(
    runtime: MemoryRuntime, scope: Scope, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises CancelledError of its own (nothing cancelled the call) is a failing hook like any other:
    the operation, which has succeeded, answers as such and the hooks after it run."""
    after: list[str] = []

    async def cancelled(event: LifecycleEvent) -> None:
        raise asyncio.CancelledError()

    async def later(event: LifecycleEvent) -> None:
        after.append(event.event_type)

    register_all(runtime, cancelled)
    register_all(runtime, later)
    with caplog.at_level(logging.WARNING, logger="mcp_memory.services.hooks"):
        await runtime.lifecycle.spawn(*sid(scope), initial_state={"a": 1})
        paused = await runtime.lifecycle.pause(*sid(scope))
        resumed = await runtime.lifecycle.resume(*sid(scope))
        await runtime.lifecycle.terminate(*sid(scope))
    assert resumed.data["checkpoint_id"] == paused.data["checkpoint_id"]
    assert after == ["spawn", "pause", "resume", "terminate"]
    assert sum("CancelledError" in r.getMessage() for r in caplog.records) == 4


async def test_a_cancelled_call_is_still_cancelled_while_its_hook_runs(runtime: MemoryRuntime, scope: Scope) -> None:
    reached = anyio.Event()

    async def slow(event: LifecycleEvent) -> None:
        reached.set()
        await anyio.sleep_forever()

    runtime.lifecycle.hooks.on_pause(slow)
    await runtime.lifecycle.spawn(*sid(scope))
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.lifecycle.pause, *sid(scope))
        await reached.wait()
        tg.cancel_scope.cancel()
    assert tg.cancel_scope.cancelled_caught


async def test_each_hook_gets_its_own_event_with_the_sessions_agent_type(runtime: MemoryRuntime, scope: Scope) -> None:
    """A hook that changes its event changes nothing for the next hook nor the caller's metadata; every event of a
    session carries the agent type its spawn named."""
    seen: list[LifecycleEvent] = []
    agent_type = uuid.uuid4()

    async def tamper(event: LifecycleEvent) -> None:
        event.session_id = "other-session"
        event.checkpoint_id = "forged"
        event.metadata.setdefault("tags", []).append("x")

    async def look(event: LifecycleEvent) -> None:
        seen.append(event)

    register_all(runtime, tamper)
    register_all(runtime, look)
    meta: dict[str, Any] = {"tags": ["a"]}
    await runtime.lifecycle.spawn(*sid(scope), agent_type_id=str(agent_type), metadata=meta)
    paused = await runtime.lifecycle.pause(*sid(scope), metadata=meta)
    await runtime.lifecycle.resume(*sid(scope), metadata=meta)
    await runtime.lifecycle.terminate(*sid(scope), metadata=meta)
    assert meta == {"tags": ["a"]}
    assert [e.event_type for e in seen] == ["spawn", "pause", "resume", "terminate"]
    assert all(e.session_id == scope.session_id and e.metadata["tags"] == ["a"] for e in seen)
    assert seen[1].checkpoint_id == paused.data["checkpoint_id"]
    assert [e.agent_type_id for e in seen] == [agent_type] * 4


async def test_a_hook_gets_the_callers_metadata_unchanged_and_the_operations_ids_beside_it(
    runtime: MemoryRuntime, scope: Scope
) -> None:
    """A caller's metadata key named like an id the operation makes (``checkpoint_id``, ``episode_id``) reaches
    the hook as given; the ids the operation made are the event's own fields."""
    seen: list[LifecycleEvent] = []

    async def look(event: LifecycleEvent) -> None:
        seen.append(event)

    register_all(runtime, look)
    meta: dict[str, Any] = {"checkpoint_id": "the caller's", "episode_id": "also the caller's", "session_id": "x"}
    await runtime.lifecycle.spawn(*sid(scope), initial_state={"a": 1}, metadata=meta)
    paused = await runtime.lifecycle.pause(*sid(scope), metadata=meta)
    resumed = await runtime.lifecycle.resume(*sid(scope), metadata=meta)
    ended = await runtime.lifecycle.terminate(*sid(scope), metadata=meta)
    assert [e.event_type for e in seen] == ["spawn", "pause", "resume", "terminate"]
    assert [e.metadata for e in seen] == [meta] * 4
    assert [e.checkpoint_id for e in seen] == [
        None,
        paused.data["checkpoint_id"],
        resumed.data["checkpoint_id"],
        None,
    ]
    assert [e.episode_id for e in seen] == [None, None, None, uuid.UUID(ended.data["episode_id"])]
