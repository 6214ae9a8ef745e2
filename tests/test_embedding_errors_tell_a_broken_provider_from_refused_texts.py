"""What an OpenAI-compatible API's failure says about the provider: a refusal no text can avoid (key, URL, model,
dimension) is ``provider_wide``; another 4xx may be the texts' own; a timeout (ours, or a gateway's 504) is
``timed_out``, which may be the request's size, unlike a connection that did not open."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from mcp_memory.embeddings import EmbeddingError, OpenAIEmbedding
from tests.embedding_api import FakeEmbeddingAPI, running_api

pytestmark = pytest.mark.anyio


@pytest.fixture
def api() -> Iterator[FakeEmbeddingAPI]:
    with running_api() as served:
        yield served


async def failure(url: str, request_seconds: float = 2.0) -> EmbeddingError:
    provider = OpenAIEmbedding(base_url=url, model="m", dimension=64, timeout=request_seconds, max_retries=0)
    try:
        with pytest.raises(EmbeddingError) as caught:
            await provider.embed(["x"])
    finally:
        await provider.aclose()
    return caught.value


@pytest.mark.parametrize("status", [401, 403, 404, 405])
async def test_a_refusal_of_the_configuration_is_provider_wide(api: FakeEmbeddingAPI, status: int) -> None:
    api.failing(status)
    error = await failure(api.url)
    assert not error.transient and error.provider_wide and not error.timed_out


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_another_refusal_may_be_the_texts(api: FakeEmbeddingAPI, status: int) -> None:
    api.failing(status)
    error = await failure(api.url)
    assert not error.transient and not error.provider_wide


async def test_vectors_of_another_dimension_are_provider_wide(api: FakeEmbeddingAPI) -> None:
    api.set(dimension=32)
    error = await failure(api.url)
    assert not error.transient and error.provider_wide


async def test_a_timeout_is_timed_out_and_transient(api: FakeEmbeddingAPI) -> None:
    api.set(delay=3.0)
    error = await failure(api.url, request_seconds=0.3)
    assert error.transient and error.provider_wide and error.timed_out


async def test_a_gateway_timeout_is_timed_out(api: FakeEmbeddingAPI) -> None:
    api.failing(504)
    error = await failure(api.url)
    assert error.transient and error.timed_out
    api.failing(503)
    error = await failure(api.url)
    assert error.transient and not error.timed_out


async def test_a_connection_refused_is_not_timed_out() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await failure(f"http://127.0.0.1:{port}/v1")
    assert error.transient and error.provider_wide and not error.timed_out
