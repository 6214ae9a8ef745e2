"""Nothing is lost when the embedding provider fails: the episode is stored at once (found by full-text
search), marked as not embedded, and gets its vector later from ``mcp-memory reembed`` or the background
retry once the provider is back. The provider is a real HTTP server on a loopback port (tests/embedding_api.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_memory.cli import main
from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from tests import pg_servers
from tests.conftest import DURABLE_ADAPTERS, FakeClock, made_sqlite_file
from tests.embedding_api import FakeEmbeddingAPI, running_api
from tests.waiting import until

pytestmark = pytest.mark.anyio


@pytest.fixture
def api() -> Iterator[FakeEmbeddingAPI]:
    with running_api() as served:
        yield served


@pytest.fixture(params=DURABLE_ADAPTERS)
async def durable_url(request: pytest.FixtureRequest, db_url: str) -> str:
    """The test's database on each durable adapter (Postgres: a fresh database with 64-dimensional vectors)."""
    if request.param == "postgres":
        return pg_servers.database_url(await pg_servers.migrated_database(64))
    return db_url


def api_settings(api: FakeEmbeddingAPI, db_url: str, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "database_url": db_url,
        "embedding_provider": "openai",
        "embedding_base_url": api.url,
        "embedding_model": "fake-embed",
        "embedding_dimension": 64,
        "embedding_max_retries": 0,
        "embedding_timeout_seconds": 2.0,
        "embedding_deadline_seconds": 3.0,
        "embedding_retry_interval_seconds": 3600.0,
    }
    options.update(overrides)
    return Settings(**options)


EPISODE = {
    "task_type": "incident_response",
    "task_description": "Production Postgres went read-only after the disk filled with WAL files",
    "outcome": "success",
    "lessons_learned": ["Drop replication slots of decommissioned replicas"],
}
QUERY = "postgres disk filled with WAL"


async def record_while_failing(rt: MemoryRuntime, api: FakeEmbeddingAPI, project: uuid.UUID) -> uuid.UUID:
    api.failing(503)
    episode = await rt.episodic.record_episode(project_id=project, agent_instance_id=uuid.uuid4(), **EPISODE)
    assert not episode.embedded
    stored = await rt.episodic.get(project, episode.episode_id)
    assert not stored.embedded
    # Found at once by full-text search (and by hybrid search, which falls back to it), not by vectors.
    assert [s.episode_id for s in await rt.episodic.search(project, QUERY, mode="text")] == [episode.episode_id]
    assert [s.episode_id for s in await rt.episodic.search(project, QUERY)] == [episode.episode_id]
    api.healthy()
    assert await rt.episodic.search(project, QUERY, mode="vector") == []
    return episode.episode_id


async def test_episode_recorded_during_an_outage_is_embedded_by_a_backfill_pass(
    api: FakeEmbeddingAPI, durable_url: str
) -> None:
    async with MemoryRuntime(api_settings(api, durable_url), clock=FakeClock()) as rt:
        project = uuid.uuid4()
        episode_id = await record_while_failing(rt, api, project)
        assert rt.backfill is not None
        report = await rt.backfill.run_once()
        assert (report.embedded, report.failed, report.stopped) == (1, 0, None)
        found = await rt.episodic.search(project, QUERY, mode="vector")
        assert [s.episode_id for s in found] == [episode_id] and found[0].embedded
        assert (await rt.backfill.run_once()).embedded == 0  # nothing left to do


async def test_after_a_failure_calls_do_not_wait_for_the_provider_until_it_is_back(
    api: FakeEmbeddingAPI, db_url: str
) -> None:
    async with MemoryRuntime(api_settings(api, db_url), clock=FakeClock()) as rt:
        project = uuid.uuid4()
        api.failing(503)
        first = await rt.episodic.record_episode(project_id=project, agent_instance_id=uuid.uuid4(), **EPISODE)
        asked = len(api.requests)
        api.set(delay=5.0, dimension=64)  # it would stall now; nobody asks it
        second = await rt.episodic.record_episode(project_id=project, agent_instance_id=uuid.uuid4(), **EPISODE)
        assert [s.episode_id for s in await rt.episodic.search(project, QUERY)] != []
        assert len(api.requests) == asked and not first.embedded and not second.embedded
        api.healthy()
        assert rt.backfill is not None and (await rt.backfill.run_once()).embedded == 2
        third = await rt.episodic.record_episode(project_id=project, agent_instance_id=uuid.uuid4(), **EPISODE)
        assert third.embedded  # the backfill saw the provider answer: calls use it again at once


async def test_background_retry_embeds_once_the_provider_recovers(api: FakeEmbeddingAPI, db_url: str) -> None:
    settings = api_settings(api, db_url, embedding_retry_interval_seconds=0.1)
    async with MemoryRuntime(settings) as rt:
        project = uuid.uuid4()
        api.failing(500)
        episode = await rt.episodic.record_episode(project_id=project, agent_instance_id=uuid.uuid4(), **EPISODE)
        assert not episode.embedded
        # A few passes against the failing provider (each asks it once and stops at its first error).
        asked = len(api.requests)
        await until(lambda: len(api.requests) >= asked + 3, what="three background passes")
        assert not (await rt.episodic.get(project, episode.episode_id)).embedded
        api.healthy()

        async def embedded() -> bool:
            return (await rt.episodic.get(project, episode.episode_id)).embedded

        await until(embedded)
        assert rt.backfill is not None and rt.backfill.running
        found = await rt.episodic.search(project, QUERY, mode="vector")
        assert [s.episode_id for s in found] == [episode.episode_id]
    assert not rt.backfill.running  # stopped with the runtime


async def test_a_slow_provider_does_not_hold_up_recording(api: FakeEmbeddingAPI, db_url: str) -> None:
    settings = api_settings(api, db_url, embedding_deadline_seconds=0.3, embedding_max_retries=0)
    async with MemoryRuntime(settings) as rt:
        api.set(delay=2.0, dimension=64)
        started = time.monotonic()
        episode = await rt.episodic.record_episode(project_id=uuid.uuid4(), agent_instance_id=uuid.uuid4(), **EPISODE)
        assert time.monotonic() - started < 2.0
        assert not episode.embedded


async def test_terminate_during_an_outage_stores_the_episode_and_embeds_it_later(
    api: FakeEmbeddingAPI, durable_url: str
) -> None:
    async with MemoryRuntime(api_settings(api, durable_url), clock=FakeClock()) as rt:
        project, agent = uuid.uuid4(), uuid.uuid4()
        await rt.lifecycle.spawn(project, agent, "s1", initial_state={"db": "orders-primary", "step": "vacuum"})
        api.failing(502)
        result = await rt.lifecycle.terminate(
            project, agent, "s1", task_description="Reclaim disk space on the orders database", outcome="success"
        )
        episode_id = uuid.UUID(result.data["episode_id"])
        assert not (await rt.episodic.get(project, episode_id)).embedded
        assert [s.episode_id for s in await rt.episodic.search(project, "orders database disk")] == [episode_id]
        api.healthy()
        assert rt.backfill is not None
        assert (await rt.backfill.run_once()).embedded == 1
        assert (await rt.episodic.get(project, episode_id)).embedded
        found = await rt.episodic.search(project, "reclaim disk space orders database", mode="vector")
        assert found[0].episode_id == episode_id


async def test_a_refused_episode_does_not_block_the_others(api: FakeEmbeddingAPI, db_url: str) -> None:
    async with MemoryRuntime(api_settings(api, db_url, embedding_batch_size=4), clock=FakeClock()) as rt:
        project = uuid.uuid4()
        api.failing(503)
        for i in range(3):
            await rt.episodic.record_episode(
                project_id=project, agent_instance_id=uuid.uuid4(), **{**EPISODE, "task_description": f"task {i}"}
            )
        # The provider now refuses any batch holding "task 0" (e.g. too long for its model), and only those.
        api.set(refuse="task 0", dimension=64)
        assert rt.backfill is not None
        report = await rt.backfill.run_once()
        assert (report.embedded, report.failed) == (2, 1) and len(report.errors) == 1
        assert (await rt.backfill.run_once()).failed == 0  # remembered: not tried again by this process


async def test_a_rate_limit_during_the_one_by_one_retry_stops_the_pass_and_blames_no_episode(
    api: FakeEmbeddingAPI, db_url: str
) -> None:
    """A batch is refused for one episode's sake; while its episodes are tried one by one (after the provider
    embedded a short test text) it starts answering 429: the pass stops there (no more requests), and only the
    episode the provider refused is remembered as refused. The next pass embeds the others."""
    async with MemoryRuntime(api_settings(api, db_url, embedding_batch_size=8), clock=FakeClock()) as rt:
        project = uuid.uuid4()
        api.failing(503)
        for i in range(5):
            await rt.episodic.record_episode(
                project_id=project, agent_instance_id=uuid.uuid4(), **{**EPISODE, "task_description": f"task {i}"}
            )
        # The batch (refused for "task 0"), the test text, "task 0" alone (refused), "task 1" (embedded), then 429.
        api.set(refuse="task 0", answers=4, status=429, retry_after="120", dimension=64)
        before = len(api.requests)
        assert rt.backfill is not None
        report = await rt.backfill.run_once()
        assert report.embedded == 1 and report.stopped and "429" in report.stopped
        assert len(api.requests) - before == 5  # the first 429 ends the pass
        assert [e.split(":")[0] for e in report.errors] == [f"episode {(await episode_of(rt, project, 'task 0'))}"]
        api.set(refuse="task 0", dimension=64)
        assert (await rt.backfill.run_once()).embedded == 3  # tasks 2-4; task 0 stays refused


async def episode_of(rt: MemoryRuntime, project: uuid.UUID, description: str) -> uuid.UUID:
    found = [ep for ep in await rt.store.recent_episodes([project], 100) if ep.task_description == description]
    assert len(found) == 1
    return found[0].episode_id


async def test_a_provider_refusing_its_key_stops_the_pass_at_once(api: FakeEmbeddingAPI, db_url: str) -> None:
    async with MemoryRuntime(api_settings(api, db_url, embedding_batch_size=2), clock=FakeClock()) as rt:
        api.failing(503)
        for i in range(3):
            await rt.episodic.record_episode(
                project_id=uuid.uuid4(), agent_instance_id=uuid.uuid4(), **{**EPISODE, "task_description": f"t {i}"}
            )
        api.failing(401)
        before = len(api.requests)
        assert rt.backfill is not None
        report = await rt.backfill.run_once()
        assert report.embedded == 0 and report.stopped and "401" in report.stopped
        assert len(api.requests) - before == 1  # a 401 is the configuration's: no episode is tried on its own
        assert report.errors == []  # nothing remembered as the episodes' fault


# -- mcp-memory reembed ----------------------------------------------------------------------------------
@pytest.fixture
def cli_env(api: FakeEmbeddingAPI, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MCP_MEMORY_CONFIG", "")
    for name, value in {
        "DATABASE_URL": db_url,
        "EMBEDDING_PROVIDER": "openai",
        "EMBEDDING_BASE_URL": api.url,
        "EMBEDDING_MODEL": "fake-embed",
        "EMBEDDING_DIMENSION": "64",
        "EMBEDDING_MAX_RETRIES": "0",
        "EMBEDDING_BATCH_SIZE": "2",
        "EMBEDDING_DEADLINE_SECONDS": "3",
    }.items():
        monkeypatch.setenv(f"MCP_MEMORY_{name}", value)
    return db_url


def record_episodes(settings: Settings, count: int) -> list[uuid.UUID]:
    async def run() -> list[uuid.UUID]:
        async with MemoryRuntime(settings, embedding_retry=False) as rt:
            return [
                (
                    await rt.episodic.record_episode(
                        project_id=uuid.uuid4(),
                        agent_instance_id=uuid.uuid4(),
                        **{**EPISODE, "task_description": f"t{i}"},
                    )
                ).episode_id
                for i in range(count)
            ]

    return anyio.run(run)


def test_reembed_command(api: FakeEmbeddingAPI, cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    api.failing(500)
    record_episodes(Settings(), 5)
    assert main(["reembed"]) == 1  # still failing: exit 1, counts printed
    out = capsys.readouterr().out
    assert "embedded 0, failed 2, still without a vector 5" in out and "stopped early" in out
    api.healthy()
    assert main(["reembed"]) == 0
    assert "embedded 5, failed 0, still without a vector 0" in capsys.readouterr().out
    assert main(["reembed"]) == 0
    assert "embedded 0, failed 0" in capsys.readouterr().out


def test_reembed_all_replaces_vectors_of_another_model(
    api: FakeEmbeddingAPI, cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record_episodes(Settings(), 3)  # embedded by fake-embed@64
    monkeypatch.setenv("MCP_MEMORY_EMBEDDING_MODEL", "fake-embed-v2")
    monkeypatch.setenv("MCP_MEMORY_EMBEDDING_DIMENSION", "32")
    api.set(dimension=32)
    assert main(["reembed"]) == 0  # none is missing a vector
    assert "embedded 0" in capsys.readouterr().out

    async def vector_hits() -> int:
        async with MemoryRuntime(Settings(), embedding_retry=False) as rt:
            projectless = await rt.store.recent_episodes(None, 10)
            hits = 0
            for ep in projectless:
                hits += len(await rt.episodic.search(ep.project_id, ep.lessons_learned[0], mode="vector"))
            return hits

    assert anyio.run(vector_hits) == 0  # the old model's vectors are never compared with the new model's
    assert main(["reembed", "--all"]) == 0
    assert "embedded 3, failed 0, still without a vector 0" in capsys.readouterr().out
    assert anyio.run(vector_hits) == 3


def test_reembed_all_on_postgres_replaces_another_models_vectors_but_not_their_width(
    api: FakeEmbeddingAPI, cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Postgres's vector(64) column holds another model of 64 dimensions; a model of 32 needs a new schema, and
    reembed says so (exit 2) instead of writing anything."""
    monkeypatch.setenv("MCP_MEMORY_DATABASE_URL", pg_servers.database_url(anyio.run(pg_servers.migrated_database, 64)))
    record_episodes(Settings(), 3)  # embedded by fake-embed@64
    monkeypatch.setenv("MCP_MEMORY_EMBEDDING_MODEL", "fake-embed-v2")
    assert main(["reembed"]) == 0
    assert "embedded 0, failed 0, still without a vector 0" in capsys.readouterr().out
    assert main(["reembed", "--all"]) == 0
    assert "model fake-embed-v2@64: embedded 3, failed 0, still without a vector 0" in capsys.readouterr().out
    monkeypatch.setenv("MCP_MEMORY_EMBEDDING_DIMENSION", "32")
    api.set(dimension=32)
    asked = len(api.requests)
    assert main(["reembed", "--all"]) == 2
    err = capsys.readouterr().err
    assert "stores 64-dimensional embeddings but embedding_dimension is 32" in err, err
    assert "new database" in err and "Traceback" not in err
    assert len(api.requests) == asked


def test_reembed_without_a_provider_is_a_configuration_error(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MCP_MEMORY_EMBEDDING_PROVIDER", "none")
    assert main(["reembed"]) == 2
    assert "no embedding provider" in capsys.readouterr().err


def test_doctor_checks_the_embedding_provider(
    api: FakeEmbeddingAPI, cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    made_sqlite_file(cli_env)
    assert main(["doctor"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["embedding"] == {"ok": True, "dimension": 64} and report["episodes_without_vector"] == 0
    assert report["embedding_provider"] == "fake-embed@64"
    api.set(dimension=32)  # the model is not what the settings say
    assert main(["doctor"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["embedding"]["ok"] and "EMBEDDING_DIMENSION=32" in report["embedding"]["error"]
