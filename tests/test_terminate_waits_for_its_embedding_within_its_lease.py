"""A terminate waits for its episode's embedding while it holds its seal, whose lease (``terminate_lease_seconds``)
must not run out before the episode is recorded: an embedding wait as long as the lease is refused at configuration
load, and a terminate cuts its embedding short to record within the lease (the episode is stored without a vector,
embedded later) rather than answer ``conflict`` and store nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from mcp_memory import faults
from mcp_memory.cli_common import load_settings
from mcp_memory.config import Settings
from mcp_memory.embeddings import HashEmbedding
from mcp_memory.errors import ConfigurationError
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import configure


@pytest.mark.parametrize("where", ["env", "file"])
@pytest.mark.parametrize("deadline", ["20", "30"])
def test_an_embedding_deadline_not_below_the_terminate_lease_is_a_configuration_error(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, where: str, deadline: str
) -> None:
    configure(
        clean_env,
        tmp_path,
        where,
        embedding_provider="hash",
        embedding_deadline_seconds=deadline,
        terminate_lease_seconds="20",
    )
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "embedding_deadline_seconds" in str(caught.value) and "terminate_lease_seconds" in str(caught.value)


@pytest.mark.parametrize("where", ["env", "file"])
def test_without_a_provider_nothing_waits_so_the_pair_is_accepted(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    configure(clean_env, tmp_path, where, embedding_deadline_seconds="30", terminate_lease_seconds="2")
    assert load_settings().terminate_lease_seconds == 2
    configure(
        clean_env,
        tmp_path,
        where,
        embedding_provider="hash",
        embedding_deadline_seconds="19.5",
        terminate_lease_seconds="20",
    )
    assert load_settings().embedding_deadline_seconds == 19.5


LEASE = 4.0
DEADLINE = 3.0
STALL = 1.5
"""The store stalls this long at the seal (before the snapshot): with the whole embedding deadline after it, the
terminate would overrun its lease."""


class NeverAnswers(HashEmbedding):
    """A provider slower than any deadline here."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        await anyio.sleep(60)
        return await super().embed(texts)


@pytest.mark.anyio
async def test_a_terminate_records_its_episode_within_its_lease_whatever_the_provider_takes(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        database_url=db_url,
        embedding_provider="hash",
        embedding_deadline_seconds=DEADLINE,
        terminate_lease_seconds=LEASE,
    )

    async def stall(point: str) -> None:
        if point == "terminate.sealed":
            await anyio.sleep(STALL)

    project, agent = uuid.uuid4(), uuid.uuid4()
    async with MemoryRuntime(settings, embedder=NeverAnswers(256), embedding_retry=False) as rt:
        await rt.lifecycle.spawn(project, agent, "s1", initial_state={"plan": "ship it"})
        with faults.on_fault(stall), caplog.at_level(logging.WARNING):
            with anyio.fail_after(LEASE + 5):
                done = await rt.lifecycle.terminate(project, agent, "s1", task_description="deploy", outcome="success")
        assert done.success and done.data["episode_id"] is not None
        episode = await rt.episodic.get(project, uuid.UUID(done.data["episode_id"]))
        assert episode is not None and not episode.embedded  # embedded later by the background retry
    assert "within terminate_lease_seconds" in caplog.text
