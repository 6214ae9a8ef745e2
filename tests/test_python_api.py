"""The Python API keeps the seed project's names: a session-bound working memory (``for_session``) and
``record_episode`` taking an ``EpisodeCreate``."""

from __future__ import annotations

import pytest

from mcp_memory.models import EpisodeCreate, Outcome, Scope
from mcp_memory.services.runtime import MemoryRuntime

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
