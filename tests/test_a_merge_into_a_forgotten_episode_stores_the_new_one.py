"""``record_episode`` with ``duplicate_action = "merge"`` whose older episode is forgotten while it merges stores the
new episode as a new one, a duplicate of nothing: it was answered ``not_found`` naming the older episode (an id the
caller never gave) and nothing was kept. Forgotten between the search that found it and the merge's read, the
new episode was stored but reported as a duplicate of the forgotten one. On every store."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

MERGING = {"embedding_provider": "hash", "duplicate_action": "merge", "duplicate_similarity": 0.5}


def fields(project: uuid.UUID, agent: uuid.UUID) -> dict[str, Any]:
    return {
        "project_id": project,
        "agent_instance_id": agent,
        "task_type": "ops",
        "task_description": "rotate the signing keys",
        "outcome": "success",
    }


async def test_an_older_episode_forgotten_as_the_merge_begins_leaves_the_new_one_stored(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    async with MemoryRuntime(make_settings(**MERGING), clock=clock, embedding_retry=False) as rt:
        p, a = uuid.uuid4(), uuid.uuid4()
        older = (await rt.episode_control.record(**fields(p, a), session_id="s1", lessons_learned=["one"])).episode

        async def forget_the_older(point: str) -> None:
            if point == "record.merging":
                assert (await rt.episode_control.forget(p, episode_ids=[str(older.episode_id)])).episode_ids

        with faults.on_fault(forget_the_older):
            done = await rt.episode_control.record(**fields(p, a), session_id="s2", lessons_learned=["two"])

        assert done.as_result() == {"episode_id": str(done.episode.episode_id)}  # new, merged into nothing
        assert done.episode.episode_id != older.episode_id
        (kept,) = await rt.store.recent_episodes([p], 10)
        assert kept.episode_id == done.episode.episode_id
        assert kept.lessons_learned == ["two"] and kept.session_id == "s2" and kept.embedded


async def test_an_older_episode_forgotten_before_the_merge_reads_it_is_no_duplicate(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    async with MemoryRuntime(make_settings(**MERGING), clock=clock, embedding_retry=False) as rt:
        p, a = uuid.uuid4(), uuid.uuid4()
        older = (await rt.episode_control.record(**fields(p, a), session_id="s1", lessons_learned=["one"])).episode
        nearest = rt.store.nearest_episode

        async def found_then_forgotten(*args: Any, **kwargs: Any) -> tuple[uuid.UUID, float] | None:
            """Timing only: another caller forgets the episode the search has just found."""
            found = await nearest(*args, **kwargs)
            assert found is not None and found[0] == older.episode_id
            await rt.episode_control.forget(p, episode_ids=[str(older.episode_id)])
            return found

        rt.store.nearest_episode = found_then_forgotten  # type: ignore[method-assign]
        try:
            done = await rt.episode_control.record(**fields(p, a), session_id="s2", lessons_learned=["two"])
        finally:
            rt.store.nearest_episode = nearest  # type: ignore[method-assign]

        assert done.as_result() == {"episode_id": str(done.episode.episode_id)}
        assert [e.episode_id for e in await rt.store.recent_episodes([p], 10)] == [done.episode.episode_id]


async def test_a_merge_whose_older_episode_stays_still_merges(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    """The fault point is inert otherwise: the merge goes on into the older episode."""
    async with MemoryRuntime(make_settings(**MERGING), clock=clock, embedding_retry=False) as rt:
        p, a = uuid.uuid4(), uuid.uuid4()
        older = (await rt.episode_control.record(**fields(p, a), session_id="s1", lessons_learned=["one"])).episode
        reached: list[str] = []

        async def note(point: str) -> None:
            reached.append(point)

        with faults.on_fault(note):
            done = await rt.episode_control.record(**fields(p, a), session_id="s2", lessons_learned=["two"])
        assert reached == ["record.merging"]
        assert done.merged and done.episode.episode_id == older.episode_id
        assert done.episode.lessons_learned == ["one", "two"]
