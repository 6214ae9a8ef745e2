"""The OpenAI-compatible provider decodes and checks a large answer (a batch: 64 vectors of 1536 dimensions is
about 2 MB of JSON, tens to hundreds of milliseconds) in a worker thread, so that the event loop serves other calls
meanwhile; a query's small answer is parsed at once, where a thread hop would cost more than it saves."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from mcp_memory.embeddings import HashEmbedding, OpenAIEmbedding
from tests.embedding_api import running_api

pytestmark = pytest.mark.anyio


async def test_a_batchs_answer_is_parsed_in_a_worker_thread_and_a_querys_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[int] = []
    parse = OpenAIEmbedding._parse

    def recorded(self: OpenAIEmbedding, *args: Any) -> list[list[float]]:
        threads.append(threading.get_ident())
        return parse(self, *args)

    monkeypatch.setattr(OpenAIEmbedding, "_parse", recorded)
    loop_thread = threading.get_ident()
    texts = [f"deploy the billing service, attempt {i}" for i in range(64)]
    with running_api() as api:
        api.set(dimension=1536)
        provider = OpenAIEmbedding(base_url=api.url, model="m", dimension=1536, batch_size=64)
        try:
            batch = await provider.embed(texts)
            query = await provider.embed(["billing"])
        finally:
            await provider.aclose()
    hasher = HashEmbedding(1536)
    assert batch == [hasher.embed_one(t) for t in texts] and query == [hasher.embed_one("billing")]
    assert threads[0] != loop_thread
    assert threads[1] == loop_thread
