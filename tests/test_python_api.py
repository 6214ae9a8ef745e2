"""The Python API keeps the seed project's names: a session-bound working memory (``for_session``) and
``record_episode`` taking an ``EpisodeCreate``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import EpisodeCreate, Outcome, Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis")]


async def test_seed_style_api(runtime: MemoryRuntime, scope: Scope) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s)
    working = await runtime.working.for_session(session_id=s, project_id=str(p), agent_instance_id=str(a))
    await working.set("k", {"v": 1}, ttl_seconds=60)
    assert await working.get("k") == {"v": 1}
    assert await working.get("missing") is None
    assert await working.list_keys() == ["k"]
    assert await working.delete("k") is True
    episode = await runtime.episodic.record_episode(
        EpisodeCreate(
            project_id=p,
            agent_instance_id=a,
            session_id=s,
            task_type="t",
            task_description="seed style",
            outcome=Outcome.PARTIAL,
            lessons_learned=["x"],
        )
    )
    stored = await runtime.episodic.get(p, episode.episode_id)
    assert stored.outcome == Outcome.PARTIAL and stored.lessons_learned == ["x"]


@pytest.mark.backends("sqlite", "postgres")
@pytest.mark.parametrize("action", ["report", "merge"])
async def test_record_episode_recognises_repeats_and_near_duplicates_as_the_tool_does(
    make_settings: Callable[..., Settings], clock: FakeClock, action: str
) -> None:
    settings = make_settings(embedding_provider="hash", duplicate_similarity=0.9, duplicate_action=action)
    p, a = uuid.uuid4(), uuid.uuid4()
    desc = "rotate the signing keys of the payment gateway before the certificate expires next week"
    fields: dict[str, Any] = {"project_id": p, "agent_instance_id": a, "task_type": "coding", "outcome": "success"}
    async with MemoryRuntime(settings, clock=clock) as rt:
        first = await rt.episodic.record_episode(task_description=desc, lessons_learned=["check expiry"], **fields)
        again = await rt.episodic.record_episode(task_description=desc, lessons_learned=["check expiry"], **fields)
        assert again.episode_id == first.episode_id
        near = await rt.episodic.record_episode(
            task_description=desc + " again", lessons_learned=["check expiry", "automate it"], **fields
        )
        stored = await rt.episodic.recent(p)
        if action == "merge":
            assert near.episode_id == first.episode_id and [e.episode_id for e in stored] == [first.episode_id]
            assert stored[0].lessons_learned == ["check expiry", "automate it"]
        else:
            assert near.episode_id != first.episode_id and len(stored) == 2
