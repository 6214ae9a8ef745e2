"""The local model answers a repeated one-text call (a search query) from a bounded cache, with the same vector."""

from __future__ import annotations

import pytest

from mcp_memory.embeddings import SentenceTransformerEmbedding
from mcp_memory.embeddings.local import QUERY_CACHE_SIZE

pytestmark = pytest.mark.anyio


async def test_a_repeated_query_gets_the_same_vector_and_a_batch_is_not_cached(
    minilm: SentenceTransformerEmbedding,
) -> None:
    (first,) = await minilm.embed(["where did I go on holiday in June?"])
    (again,) = await minilm.embed(["where did I go on holiday in June?"])
    assert again == first
    again[0] = 42.0  # a caller changing its list does not change what the next caller gets
    (third,) = await minilm.embed(["where did I go on holiday in June?"])
    assert third == first
    batch = await minilm.embed(["a text embedded in a batch", "another one"])
    assert len(batch) == 2
    assert "a text embedded in a batch" not in minilm._cache


async def test_the_cache_keeps_only_the_most_recent_queries(minilm: SentenceTransformerEmbedding) -> None:
    for n in range(QUERY_CACHE_SIZE + 5):
        await minilm.embed([f"query number {n}"])
    assert len(minilm._cache) == QUERY_CACHE_SIZE
    assert "query number 0" not in minilm._cache
    assert f"query number {QUERY_CACHE_SIZE + 4}" in minilm._cache
