"""A provider too slow to embed a whole backfill batch within one request's timeout (a CPU model server, long texts)
still gets the backlog embedded: a batch that times out while one of its episodes alone does not is halved, and the
smaller size kept for a while (``GROW_BACK_SECONDS``), after which each pass doubles it again up to the configured
size. Only when one episode alone times out too is the provider down and the pass stopped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mcp_memory.services import backfill
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock
from tests.embedding_api import FakeEmbeddingAPI, running_api
from tests.test_backfill import EPISODE, api_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def api() -> Iterator[FakeEmbeddingAPI]:
    with running_api() as served:
        yield served


async def record_during_an_outage(rt: MemoryRuntime, api: FakeEmbeddingAPI, clock: FakeClock, count: int) -> None:
    api.failing(503)
    for i in range(count):
        clock.advance(1)
        episode = await rt.episodic.record_episode(
            project_id=uuid.uuid4(), agent_instance_id=uuid.uuid4(), **{**EPISODE, "task_description": f"task {i}"}
        )
        assert not episode.embedded


def sizes(api: FakeEmbeddingAPI, since: int) -> list[int]:
    return [len(request["body"]["input"]) for request in api.requests[since:]]


async def test_a_batch_too_slow_for_one_request_is_halved_until_it_fits(api: FakeEmbeddingAPI, db_url: str) -> None:
    clock = FakeClock()
    settings = api_settings(api, db_url, embedding_batch_size=8, embedding_timeout_seconds=0.5)
    async with MemoryRuntime(settings, clock=clock) as rt:
        await record_during_an_outage(rt, api, clock, 12)
        api.set(delay=3.0, slow_over=2, dimension=64)  # more than two texts in one request: past the timeout
        before = len(api.requests)
        assert rt.backfill is not None
        report = await rt.backfill.run_once()
        assert (report.embedded, report.failed, report.stopped) == (12, 0, None)
        # 8 time out, the first alone answers: 4; 4 time out, the next alone answers: 2, which fit.
        assert sizes(api, before) == [8, 1, 4, 1, 2, 2, 2, 2, 2]
        await record_during_an_outage(rt, api, clock, 3)
        api.set(delay=3.0, slow_over=2, dimension=64)
        before = len(api.requests)
        assert (await rt.backfill.run_once()).embedded == 3
        assert sizes(api, before) == [2, 1]  # the smaller size is kept


async def test_halved_batches_grow_back_to_the_configured_size_once_the_provider_keeps_up(
    api: FakeEmbeddingAPI, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    settings = api_settings(api, db_url, embedding_batch_size=8, embedding_timeout_seconds=0.5)
    async with MemoryRuntime(settings, clock=clock) as rt:
        assert rt.backfill is not None
        await record_during_an_outage(rt, api, clock, 6)
        api.set(delay=3.0, slow_over=3, dimension=64)
        before = len(api.requests)
        assert (await rt.backfill.run_once()).embedded == 6
        assert sizes(api, before) == [6, 1, 3, 2]  # halved within the pass, and not grown back within it
        monkeypatch.setattr(backfill, "GROW_BACK_SECONDS", 0.0)  # the spell has passed
        for expected in ([6, 6], [8, 4], [8, 4]):  # doubled once per pass, up to the configured 8
            await record_during_an_outage(rt, api, clock, 12)
            api.healthy()
            before = len(api.requests)
            assert (await rt.backfill.run_once()).embedded == 12
            assert sizes(api, before) == expected


async def test_a_provider_that_answers_not_even_one_text_in_time_is_down(api: FakeEmbeddingAPI, db_url: str) -> None:
    clock = FakeClock()
    settings = api_settings(api, db_url, embedding_batch_size=8, embedding_timeout_seconds=0.5)
    async with MemoryRuntime(settings, clock=clock) as rt:
        await record_during_an_outage(rt, api, clock, 5)
        api.set(delay=3.0, dimension=64)  # every request stalls
        before = len(api.requests)
        assert rt.backfill is not None
        report = await rt.backfill.run_once()
        assert (report.embedded, report.failed) == (0, 5) and report.stopped and "Timeout" in report.stopped
        assert sizes(api, before) == [5, 1]  # the batch, then one episode alone: down, the pass stops
        api.healthy()
        report = await rt.backfill.run_once()
        assert (report.embedded, sizes(api, before + 2)) == (5, [5])  # a timeout of the provider shrank nothing
