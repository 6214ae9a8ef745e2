"""Episodes whose texts the embedding provider refuses (an API's 400: too long for the model, say) are told apart
from a provider that refuses everything by asking it for a short test text: refused episodes are remembered and
skipped until restart, so that an oldest batch refused whole neither blocks the newer episodes nor is sent again
every pass; a provider that refuses the test text too stops the pass without blaming any episode."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mcp_memory.services.backfill import PROBE_TEXT
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock
from tests.embedding_api import FakeEmbeddingAPI, running_api
from tests.test_backfill import EPISODE, api_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def api() -> Iterator[FakeEmbeddingAPI]:
    with running_api() as served:
        yield served


async def record(rt: MemoryRuntime, clock: FakeClock, project: uuid.UUID, description: str) -> uuid.UUID:
    clock.advance(1)  # recorded in this order: the backfill takes the oldest first
    episode = await rt.episodic.record_episode(
        project_id=project, agent_instance_id=uuid.uuid4(), **{**EPISODE, "task_description": description}
    )
    return episode.episode_id


async def test_an_oldest_batch_refused_whole_does_not_hold_up_newer_episodes(
    api: FakeEmbeddingAPI, db_url: str
) -> None:
    clock = FakeClock()
    async with MemoryRuntime(api_settings(api, db_url, embedding_batch_size=4), clock=clock) as rt:
        project = uuid.uuid4()
        api.failing(503)
        refused = [await record(rt, clock, project, f"LONGTEXT episode {i}") for i in range(4)]
        good = await record(rt, clock, project, "short good episode")
        api.set(refuse="LONGTEXT", dimension=64)  # the model takes none of the oldest four, and only those
        assert rt.backfill is not None
        report = await rt.backfill.run_once()
        assert (report.embedded, report.failed, report.stopped) == (1, 4, None)
        assert sorted(e.split(":")[0] for e in report.errors) == sorted(f"episode {i}" for i in refused)
        assert (await rt.episodic.get(project, good)).embedded
        asked = len(api.requests)
        report = await rt.backfill.run_once()
        assert (report.embedded, report.failed, report.stopped) == (0, 0, None)
        assert len(api.requests) == asked  # remembered: not sent again


async def test_a_lone_refused_episode_is_remembered(api: FakeEmbeddingAPI, db_url: str) -> None:
    clock = FakeClock()
    async with MemoryRuntime(api_settings(api, db_url), clock=clock) as rt:
        api.failing(503)
        await record(rt, clock, uuid.uuid4(), "LONGTEXT alone")
        api.set(refuse="LONGTEXT", dimension=64)
        assert rt.backfill is not None
        report = await rt.backfill.run_once()
        assert (report.embedded, report.failed, report.stopped, len(report.errors)) == (0, 1, None, 1)
        asked = len(api.requests)
        assert (await rt.backfill.run_once()).failed == 0 and len(api.requests) == asked


async def test_a_provider_refusing_even_a_short_text_stops_the_pass_and_blames_no_episode(
    api: FakeEmbeddingAPI, db_url: str
) -> None:
    clock = FakeClock()
    async with MemoryRuntime(api_settings(api, db_url, embedding_batch_size=2), clock=clock) as rt:
        api.failing(503)
        for i in range(3):
            await record(rt, clock, uuid.uuid4(), f"t {i}")
        api.failing(400)  # e.g. a parameter the model does not take: every request is refused
        before = len(api.requests)
        assert rt.backfill is not None
        report = await rt.backfill.run_once()
        assert report.embedded == 0 and report.stopped and "400" in report.stopped and report.errors == []
        assert [r["body"]["input"] for r in api.requests[before:]][1] == [PROBE_TEXT]
        assert len(api.requests) - before == 2  # the batch, the test text: then it stops
        api.healthy()
        assert (await rt.backfill.run_once()).embedded == 3  # nothing was remembered as refused
