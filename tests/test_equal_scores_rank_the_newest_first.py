"""Episodes that score exactly alike rank newest row first, on every store (Postgres orders by score, then id; SQLite
took them in whatever order its rows came)."""

from __future__ import annotations

import uuid

import pytest

from mcp_memory.services.runtime import MemoryRuntime

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def test_equal_scores_rank_the_newest_first(runtime: MemoryRuntime) -> None:
    p = uuid.uuid4()
    recorded = []
    for _ in range(4):  # the same text by four agents at the same time: four episodes that score alike
        ep = await runtime.episodic.record_episode(
            project_id=p,
            agent_instance_id=uuid.uuid4(),
            task_type="ops",
            task_description="rotate the signing keys",
            outcome="success",
        )
        recorded.append(ep.episode_id)
    hits = await runtime.episodic.search(p, "rotate signing keys", limit=4)
    assert len({h.score for h in hits}) == 1
    assert [h.episode_id for h in hits] == recorded[::-1]
