"""Age-based retention (``checkpoint_retention_seconds``, ``event_retention_seconds``) reaches sessions no pause or
resume writes any more: the runtime's periodic sweep (called directly here, at a fake clock's time) deletes a
terminated session's checkpoints and events past their age, sparing what a pause's prune spares (the session's
newest checkpoint, kept checkpoints, its successful spawn and terminate), on every store pair. Postgres' per-session
counts are checked against the rows after each test by the autouse fixture of tests/conftest.py."""

from __future__ import annotations

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.retention_sweep import SweepReport
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock, new_scope

pytestmark = pytest.mark.anyio
AGE = 100.0
NO_COUNT_BOUND = {"checkpoint_retention_count": 0, "event_retention_count": 0}
"""Count bounds off, so that only the ages prune."""


async def terminated_session(rt: MemoryRuntime, clock: FakeClock) -> Scope:
    """Spawn, pause kept, then two more pauses (each resumed), terminate: one second apart."""
    scope = new_scope("old")
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    assert (await rt.lifecycle.spawn(p, a, s, initial_state={"k": 1})).success
    for checkpoint_id in ("kept", "a", "b"):
        clock.advance(1)
        assert (await rt.lifecycle.pause(p, a, s, checkpoint_id=checkpoint_id, keep=checkpoint_id == "kept")).success
        clock.advance(1)
        assert (await rt.lifecycle.resume(p, a, s)).success
    clock.advance(1)
    assert (await rt.lifecycle.terminate(p, a, s, consolidate_to_episodic=False)).success
    return scope


async def checkpoints(rt: MemoryRuntime, scope: Scope) -> list[str]:
    return [c.checkpoint_id for c in await rt.store.list_checkpoints(scope, 1000, None)]


async def events(rt: MemoryRuntime, scope: Scope) -> list[str]:
    return [e.event_type for e in await rt.store.list_events(scope, 1000)]


async def test_a_sweep_prunes_a_terminated_sessions_rows_past_their_age(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    settings = settings_on_every_store.model_copy(
        update={**NO_COUNT_BOUND, "checkpoint_retention_seconds": AGE, "event_retention_seconds": AGE}
    )
    async with MemoryRuntime(settings, clock=clock) as rt:
        assert rt.retention_sweep is not None
        old = await terminated_session(rt, clock)
        assert await checkpoints(rt, old) == ["b", "a", "kept"]
        clock.advance(AGE * 5)
        fresh = new_scope("fresh")
        p, a, s = fresh.project_id, fresh.agent_instance_id, fresh.session_id
        assert (await rt.lifecycle.spawn(p, a, s, initial_state={"k": 1})).success
        for checkpoint_id in ("f1", "f2"):
            clock.advance(1)
            assert (await rt.lifecycle.pause(p, a, s, checkpoint_id=checkpoint_id)).success
            clock.advance(1)
            assert (await rt.lifecycle.resume(p, a, s)).success

        # Batches of two: the pass goes on until a batch finds fewer.
        report = await rt.retention_sweep.run_once(batch=2)

        assert report == SweepReport(checkpoints=1, events=6)
        assert await checkpoints(rt, old) == ["b", "kept"]
        assert await events(rt, old) == ["spawn", "terminate"]
        assert await checkpoints(rt, fresh) == ["f2", "f1"]
        assert await events(rt, fresh) == ["spawn", "pause", "resume", "pause", "resume"]
        # The session the sweep spared goes on as before: its pause and resume, and listing, after the sweep.
        clock.advance(1)
        assert (await rt.lifecycle.pause(p, a, s, checkpoint_id="f3")).success
        clock.advance(1)
        assert (await rt.lifecycle.resume(p, a, s, checkpoint_id="f1")).success
        assert await checkpoints(rt, fresh) == ["f3", "f2", "f1"]
        assert await rt.retention_sweep.run_once() == SweepReport()


async def test_a_sweep_with_only_the_event_age_keeps_every_checkpoint(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    settings = settings_on_every_store.model_copy(update={**NO_COUNT_BOUND, "event_retention_seconds": AGE})
    async with MemoryRuntime(settings, clock=clock) as rt:
        assert rt.retention_sweep is not None
        old = await terminated_session(rt, clock)
        clock.advance(AGE * 5)
        assert await rt.retention_sweep.run_once() == SweepReport(checkpoints=0, events=6)
        assert await checkpoints(rt, old) == ["b", "a", "kept"]
        assert await events(rt, old) == ["spawn", "terminate"]


async def test_without_an_age_a_sweep_deletes_nothing(settings_on_every_store: Settings, clock: FakeClock) -> None:
    settings = settings_on_every_store.model_copy(update=NO_COUNT_BOUND)
    async with MemoryRuntime(settings, clock=clock) as rt:
        assert rt.retention_sweep is not None
        assert not rt.retention_sweep.configured
        old = await terminated_session(rt, clock)
        clock.advance(AGE * 1000)
        assert await rt.retention_sweep.run_once() == SweepReport()
        assert await checkpoints(rt, old) == ["b", "a", "kept"]
        assert len(await events(rt, old)) == 8
