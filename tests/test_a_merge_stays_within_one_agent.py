"""``record_episode`` with ``duplicate_action = "merge"`` merges a near-duplicate only into an episode of the same
agent. Merged into another agent's episode, the new agent's lessons outlived its erasure (``forget_episodes`` by
agent, ``delete_session`` without keeping episodes, ``mcp-memory forget --agent``): forgetting an agent did not forget
what it wrote. Another agent's near-duplicate is now stored as its own episode and reported as ``duplicate_of``. On
every store."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

MERGING = {"embedding_provider": "hash", "duplicate_action": "merge", "duplicate_similarity": 0.5}
TASK = {"task_type": "ops", "task_description": "rotate the signing keys", "outcome": "success"}


async def erase_agent(rt: MemoryRuntime, how: str, project: uuid.UUID, agent: uuid.UUID, session: str) -> None:
    if how == "forget_episodes":
        await rt.episode_control.forget(project, True, agent_instance_id=agent)
    elif how == "delete_session":
        await rt.control.delete_session(project, agent, session, keep_episodes=False)
    else:  # what mcp-memory forget --project P --agent B runs
        await rt.control.forget(project, agent, None, dry_run=False)


@pytest.mark.parametrize("how", ["forget_episodes", "delete_session", "mcp-memory forget"])
async def test_forgetting_an_agent_forgets_the_lessons_of_its_near_duplicate_of_another_agents_episode(
    make_settings: Callable[..., Settings], clock: FakeClock, how: str
) -> None:
    async with MemoryRuntime(make_settings(**MERGING), clock=clock, embedding_retry=False) as rt:
        p, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await rt.lifecycle.spawn(p, b, "b1")
        kept = await rt.episode_control.record(
            project_id=p, agent_instance_id=a, session_id="a1", lessons_learned=["check expiry"], **TASK
        )
        theirs = await rt.episode_control.record(
            project_id=p,
            agent_instance_id=b,
            session_id="b1",
            lessons_learned=["check expiry", "b's own lesson"],
            importance_score=0.9,
            **TASK,
        )

        await erase_agent(rt, how, p, b, "b1")

        (left,) = await rt.store.recent_episodes([p], 10)
        assert left.episode_id == kept.episode.episode_id and left.agent_instance_id == a
        assert left.lessons_learned == ["check expiry"] and left.importance_score == kept.episode.importance_score
        # B's episode was its own, reported as a near-duplicate of A's.
        assert not theirs.merged and theirs.episode.agent_instance_id == b
        assert theirs.duplicate_of == kept.episode.episode_id and theirs.episode.episode_id != left.episode_id


async def test_a_near_duplicate_merges_into_its_agents_own_episode_though_anothers_is_nearer(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    async with MemoryRuntime(make_settings(**MERGING), clock=clock, embedding_retry=False) as rt:
        p, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        fields: dict[str, Any] = {"project_id": p, **TASK}
        own = await rt.episode_control.record(**fields, agent_instance_id=b, lessons_learned=["an older lesson"])
        # A's text is the new episode's exactly: the project's nearest, at cosine 1.
        anothers = await rt.episode_control.record(**fields, agent_instance_id=a, lessons_learned=["new lesson"])

        done = await rt.episode_control.record(**fields, agent_instance_id=b, lessons_learned=["new lesson"])

        assert done.merged and done.duplicate_of == own.episode.episode_id
        assert done.episode.lessons_learned == ["an older lesson", "new lesson"]
        untouched = await rt.store.get_episode(p, anothers.episode.episode_id)
        assert untouched is not None and untouched.lessons_learned == ["new lesson"]
        assert len(await rt.store.recent_episodes([p], 10)) == 2
