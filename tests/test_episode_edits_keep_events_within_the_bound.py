"""update_episode, a merge into an older episode and forget_episodes each record an event on the episode's session,
and that record applies the session's event bounds as a pause, a resume or a failed call does: on a session that is
never paused or resumed again (a terminated one), any number of them leaves the newest ``event_retention_count``
events and the protected spawn and terminate, on SQLite and Postgres (whose per-session event count stays exact:
tests/conftest.py checks it after every test). They used to add events without bound: 40 updates, 52 events."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "postgres")]
BOUND = 5
CALLS = 20
TASK = "rotate the signing keys"


async def terminated(rt: MemoryRuntime, scope: Scope) -> UUID:
    """A session spawned, given an episode, and terminated (its events: spawn, terminate); the episode's id."""
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await rt.lifecycle.spawn(p, a, s, initial_state={"k": 1})
    episode = await rt.episodic.record_episode(
        project_id=p, agent_instance_id=a, session_id=s, task_type="ops", task_description=TASK, outcome="success"
    )
    await rt.lifecycle.terminate(p, a, s, consolidate_to_episodic=False)
    return episode.episode_id


async def kinds_of(rt: MemoryRuntime, scope: Scope) -> list[str]:
    return [e.event_type for e in await rt.store.list_events(scope, 1000)]


async def test_updates_of_a_terminated_sessions_episode_keep_its_events_within_the_bound(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    async with MemoryRuntime(make_settings(event_retention_count=BOUND), clock=clock) as rt:
        episode_id = await terminated(rt, scope)
        for i in range(CALLS):
            clock.advance(1)
            await rt.episode_control.update(scope.project_id, episode_id, importance_score=i / CALLS)
        events = await rt.store.list_events(scope, 1000)
    assert [e.event_type for e in events] == ["spawn", "terminate"] + ["update_episode"] * BOUND
    assert events[-1].at == pytest.approx(clock.now, abs=1e-3)  # the newest kept, the older ones gone


async def test_merges_into_a_terminated_sessions_episode_keep_its_events_within_the_bound(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    settings = make_settings(event_retention_count=BOUND, embedding_provider="hash", duplicate_action="merge")
    async with MemoryRuntime(settings, clock=clock) as rt:
        episode_id = await terminated(rt, scope)
        for i in range(CALLS):
            clock.advance(1)
            merged = await rt.episodic.record_episode(  # the same text, outside the session: merged into its episode
                project_id=scope.project_id,
                agent_instance_id=scope.agent_instance_id,
                task_type="ops",
                task_description=TASK,
                outcome="success",
                importance_score=(i + 1) / (CALLS + 1),  # higher each time: each merge writes
            )
            assert merged.episode_id == episode_id
        kinds = await kinds_of(rt, scope)
    assert kinds == ["spawn", "terminate"] + ["merge_episode"] * BOUND


async def test_forgets_of_a_terminated_sessions_episodes_keep_its_events_within_the_bound(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    async with MemoryRuntime(make_settings(event_retention_count=BOUND), clock=clock) as rt:
        await terminated(rt, scope)
        recorded = [
            await rt.episodic.record_episode(
                project_id=scope.project_id,
                agent_instance_id=scope.agent_instance_id,
                session_id=scope.session_id,
                task_type="ops",
                task_description=f"task {i}",
                outcome="success",
            )
            for i in range(CALLS)
        ]
        for ep in recorded:
            clock.advance(1)
            assert (await rt.episode_control.forget(scope.project_id, episode_ids=[ep.episode_id])).episode_ids
        kinds = await kinds_of(rt, scope)
    assert kinds == ["spawn", "terminate"] + ["forget_episodes"] * BOUND
