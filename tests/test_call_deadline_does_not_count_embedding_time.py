"""The tool call's store deadline (``call_timeout_seconds``) is not spent by the embedding request: a terminate whose
embedding takes longer than the whole deadline still finishes its store steps (Redis snapshot, durable record, Redis
mark) and succeeds, with its vector. The embedding has its own deadline (``embedding_deadline_seconds``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import anyio
import pytest
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.embeddings import HashEmbedding
from mcp_memory.server import create_server
from mcp_memory.services.runtime import MemoryRuntime
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix
from tests.stalled_stores import timed_call

pytestmark = pytest.mark.anyio

CALL_TIMEOUT = 0.3
EMBEDDING_TAKES = 0.8


class SlowEmbedding(HashEmbedding):
    """A healthy provider that is slower than the call's whole store deadline (a remote API on a bad day)."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        await anyio.sleep(EMBEDDING_TAKES)
        return await super().embed(texts)


async def test_a_slow_embedding_does_not_fail_the_store_steps_after_it(db_url: str) -> None:
    prefix = unique_prefix()
    settings = Settings(
        database_url=db_url,
        redis_url=shared_redis_url(),
        redis_key_prefix=prefix,
        embedding_provider="hash",
        call_timeout_seconds=CALL_TIMEOUT,
    )
    ids = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s"}
    try:
        app = create_server(runtime=MemoryRuntime(settings, embedder=SlowEmbedding(256), embedding_retry=False))
        async with Client(app) as c:
            good, data, _ = await timed_call(c, "spawn", **ids, initial_state={"plan": "ship it"})
            assert good, data
            good, data, elapsed = await timed_call(c, "terminate", **ids, task_description="deploy the service")
            assert good, data
            assert elapsed > EMBEDDING_TAKES  # the provider really was slower than the store deadline
            assert data["state_items_consolidated"] == 1
            found = await app.runtime.store.get_episode(uuid.UUID(ids["project_id"]), uuid.UUID(data["episode_id"]))
            assert found is not None and found.embedded
            # Working memory was marked terminated after the embedding: the session takes no writes.
            good, text, _ = await timed_call(c, "memory_set", **ids, key="k", value=1)
            assert not good and text.startswith("conflict: "), text
    finally:
        delete_keys(shared_redis_url(), prefix)
