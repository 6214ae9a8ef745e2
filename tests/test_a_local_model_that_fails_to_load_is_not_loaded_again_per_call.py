"""A local model that cannot work as configured (here: its vectors are not ``embedding_dimension`` wide) is loaded
once; every call then fails at once with that error (a backfill pass stops at its first batch, searches go on with
full text) until ``LOAD_RETRY_SECONDS`` have passed, instead of loading the model again for each call."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every sentence-transformers model loaded during the test."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    loaded: list[str] = []
    real = sentence_transformers.SentenceTransformer

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            loaded.append(str(args[0]))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", Counted)
    return loaded


async def test_a_model_of_another_dimension_is_loaded_once(loads: list[str], db_url: str) -> None:
    from mcp_memory.embeddings import SentenceTransformerEmbedding
    from mcp_memory.embeddings.local import LOAD_RETRY_SECONDS, bundled_model_path

    project = uuid.uuid4()
    async with MemoryRuntime(Settings(database_url=db_url)) as rt:  # no provider: episodes without vectors
        for i in range(8):
            await rt.episodic.record_episode(
                project_id=project,
                agent_instance_id=uuid.uuid4(),
                task_type="t",
                task_description=f"episode {i}",
                outcome="success",
            )
    settings = Settings(
        database_url=db_url,
        embedding_provider="sentence-transformers",
        embedding_model=str(bundled_model_path()),  # a directory: its dimension is known only once loaded
        embedding_dimension=256,
        embedding_batch_size=8,
    )
    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        assert rt.backfill is not None
        report = await rt.backfill.run_once()
        assert (report.embedded, report.failed, report.errors) == (0, 8, [])
        assert report.stopped and "MCP_MEMORY_EMBEDDING_DIMENSION=384" in report.stopped
        assert len(loads) == 1  # not once more per episode of the batch
        for _ in range(2):
            assert len(await rt.episodic.search(project, "episode 3")) > 0  # full text
            rt.episodic.provider_recovered()
        assert len(loads) == 1
        local = rt.embedder
        assert isinstance(local, SentenceTransformerEmbedding) and local._load_failure is not None
        failed_at, message = local._load_failure
        local._load_failure = (failed_at - LOAD_RETRY_SECONDS, message)  # as if that long had passed
        await rt.episodic.search(project, "episode 3")
        assert len(loads) == 2
