"""A text the embedding provider refuses on its own (an API's 400: too long for the model, say) is stored without a
vector, and the next caller still gets vectors: only a provider that is down, too slow or unusable as configured
makes callers go without it for a while."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mcp_memory.services.runtime import MemoryRuntime
from tests.embedding_api import FakeEmbeddingAPI, running_api
from tests.test_backfill import EPISODE, api_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def api() -> Iterator[FakeEmbeddingAPI]:
    with running_api() as served:
        yield served


async def test_the_next_caller_gets_vectors_after_one_text_is_refused(api: FakeEmbeddingAPI, db_url: str) -> None:
    async with MemoryRuntime(api_settings(api, db_url)) as rt:
        project = uuid.uuid4()
        api.set(refuse="LONGTEXT", dimension=64)
        fields = {**EPISODE, "task_description": "LONGTEXT the model will not take"}
        refused = await rt.episodic.record_episode(project_id=project, agent_instance_id=uuid.uuid4(), **fields)
        assert not refused.embedded
        asked = len(api.requests)
        fields = {**EPISODE, "task_description": "Rotated the TLS certificates of the ingress"}
        normal = await rt.episodic.record_episode(project_id=project, agent_instance_id=uuid.uuid4(), **fields)
        assert normal.embedded and len(api.requests) == asked + 1
        found = await rt.episodic.search(project, "rotated TLS certificates ingress", mode="vector")
        assert normal.episode_id in [s.episode_id for s in found]


async def test_a_refusal_of_the_configuration_still_pauses_callers(api: FakeEmbeddingAPI, db_url: str) -> None:
    async with MemoryRuntime(api_settings(api, db_url)) as rt:
        project = uuid.uuid4()
        api.failing(401)  # a bad key: no text can pass
        first = await rt.episodic.record_episode(project_id=project, agent_instance_id=uuid.uuid4(), **EPISODE)
        asked = len(api.requests)
        api.healthy()
        fields = {**EPISODE, "task_description": "Rotated the TLS certificates of the ingress"}
        second = await rt.episodic.record_episode(project_id=project, agent_instance_id=uuid.uuid4(), **fields)
        assert not first.embedded and not second.embedded and len(api.requests) == asked
