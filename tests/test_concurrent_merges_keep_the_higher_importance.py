"""Two near-duplicate merges into one episode that overlap keep the higher importance, as merges one after the other
do: each merge decides the importance from the episode as it read it, so a merge that read it before another merge
raised it must not write its own lower value over the raised one (its lessons being the same, its text does not
change, and the check that the episode is still as read covered the text only). On every store."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

MERGING = {"embedding_provider": "hash", "duplicate_action": "merge", "duplicate_similarity": 0.5}


async def test_a_merge_that_read_the_episode_before_another_raised_its_importance_keeps_the_higher(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    async with MemoryRuntime(make_settings(**MERGING), clock=clock, embedding_retry=False) as rt:
        p, a = uuid.uuid4(), uuid.uuid4()
        base = {
            "project_id": p,
            "agent_instance_id": a,
            "task_type": "ops",
            "task_description": "rotate the signing keys",
            "outcome": "success",
            "lessons_learned": ["one"],
        }
        older = (await rt.episode_control.record(**base, session_id="s1", importance_score=0.5)).episode
        raised: list[bool] = []

        async def merge_a_higher_one_meanwhile(point: str) -> None:
            # The first merge has read the older episode (importance 0.5); another one raises it to 0.9 first.
            if point == "record.merging" and not raised:
                raised.append(True)
                done = await rt.episode_control.record(**base, session_id="s3", importance_score=0.9)
                assert done.merged and done.episode.importance_score == 0.9

        with faults.on_fault(merge_a_higher_one_meanwhile):
            done = await rt.episode_control.record(**base, session_id="s2", importance_score=0.7)

        assert raised and done.merged and done.episode.episode_id == older.episode_id
        stored = await rt.episodic.get(p, older.episode_id)
        assert stored.importance_score == 0.9
        assert done.episode.importance_score == 0.9
