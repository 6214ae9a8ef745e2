"""Search with vectors on finds nothing for a query unrelated to every episode (no nearest neighbour is returned
for its own sake), and still finds a related one worded differently."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio


async def test_unrelated_query_finds_nothing_with_vectors_on(make_settings: Callable[..., Settings]) -> None:
    async with MemoryRuntime(make_settings(embedding_provider="hash")) as rt:
        p, a = uuid.uuid4(), uuid.uuid4()
        await rt.episodic.record_episode(
            project_id=p,
            agent_instance_id=a,
            task_type="deployment",
            task_description="Deploy the web app to the staging cluster",
            outcome="success",
        )
        assert await rt.episodic.search(p, "zebra unicorn") == []
        hits = await rt.episodic.search(p, "deploying the web application")
        assert [h.task_type for h in hits] == ["deployment"] and hits[0].score > 0
