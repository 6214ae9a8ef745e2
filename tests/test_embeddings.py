"""Embedding providers: the OpenAI-compatible HTTP client against a real local server, the local
sentence-transformers model, and configuration checked at start-up."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from mcp_memory.config import Settings
from mcp_memory.embeddings import (
    DEFAULT_LOCAL_DIMENSION,
    EmbeddingError,
    HashEmbedding,
    OpenAIEmbedding,
    SentenceTransformerEmbedding,
    parse_retry_after,
    provider_from_settings,
    vector_dimension,
)
from mcp_memory.errors import ConfigurationError
from mcp_memory.services.runtime import MemoryRuntime
from tests.embedding_api import FakeEmbeddingAPI, running_api
from tests.waiting import until

pytestmark = pytest.mark.anyio


@pytest.fixture
def api() -> Iterator[FakeEmbeddingAPI]:
    with running_api() as served:
        yield served


class Sleeps:
    """Records the backoff delays instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client(api: FakeEmbeddingAPI, sleeps: Sleeps | None = None, **overrides: Any) -> OpenAIEmbedding:
    options: dict[str, Any] = {
        "base_url": api.url,
        "model": "text-embedding-test",
        "dimension": 64,
        "api_key": "sk-test",
        "batch_size": 2,
        "timeout": 2.0,
        "max_retries": 2,
        "sleep": sleeps or Sleeps(),
    }
    options.update(overrides)
    return OpenAIEmbedding(**options)


# -- OpenAI-compatible HTTP ------------------------------------------------------------------------------
async def test_openai_embeds_in_batches_in_order(api: FakeEmbeddingAPI) -> None:
    api.set(reverse=True)  # the API may list the items in any order; "index" says which is which
    provider = client(api)
    texts = ["deploy the api", "roll back", "migrate users", "fix the leak", "write docs"]
    vectors = await provider.embed(texts)
    await provider.aclose()
    assert vectors == [HashEmbedding(64).embed_one(t) for t in texts]
    assert [r["body"]["input"] for r in api.requests] == [texts[0:2], texts[2:4], texts[4:5]]
    first = api.requests[0]
    assert first["headers"]["authorization"] == "Bearer sk-test"
    assert first["body"]["model"] == "text-embedding-test"
    assert "dimensions" not in first["body"] and first["query"] == {}
    assert provider.name == "text-embedding-test@64" and provider.dimension == 64


async def test_openai_azure_sends_api_key_header_and_api_version(api: FakeEmbeddingAPI) -> None:
    provider = client(api, api_version="2024-02-01", send_dimensions=True)
    await provider.embed(["hello"])
    await provider.aclose()
    request = api.requests[0]
    assert request["headers"]["api-key"] == "sk-test"
    assert "authorization" not in request["headers"]
    assert request["query"] == {"api-version": "2024-02-01"}
    assert request["body"]["dimensions"] == 64


async def test_openai_retries_5xx_with_backoff(api: FakeEmbeddingAPI) -> None:
    api.set(status=503, failures=2)
    sleeps = Sleeps()
    provider = client(api, sleeps)
    assert len(await provider.embed(["x"])) == 1
    await provider.aclose()
    assert len(api.requests) == 3
    assert len(sleeps.delays) == 2 and 0 < sleeps.delays[0] <= 0.5 and sleeps.delays[1] <= 1.0


async def test_openai_honours_retry_after_on_429(api: FakeEmbeddingAPI) -> None:
    api.set(status=429, failures=1, retry_after="3")
    sleeps = Sleeps()
    provider = client(api, sleeps)
    await provider.embed(["x"])
    await provider.aclose()
    assert sleeps.delays == [3.0]


async def test_openai_gives_up_at_once_when_retry_after_is_too_long(api: FakeEmbeddingAPI) -> None:
    api.set(status=429, failures=-1, retry_after="120")
    sleeps = Sleeps()
    provider = client(api, sleeps)
    with pytest.raises(EmbeddingError) as caught:
        await provider.embed(["x"])
    await provider.aclose()
    assert caught.value.transient and caught.value.retry_after == 120
    assert sleeps.delays == [] and len(api.requests) == 1


async def test_openai_gives_up_after_max_retries(api: FakeEmbeddingAPI) -> None:
    api.failing(500)
    provider = client(api, max_retries=3)
    with pytest.raises(EmbeddingError, match="500") as caught:
        await provider.embed(["x"])
    await provider.aclose()
    assert caught.value.transient
    assert len(api.requests) == 4


async def test_openai_does_not_retry_a_refused_request(api: FakeEmbeddingAPI) -> None:
    api.failing(401)
    provider = client(api)
    with pytest.raises(EmbeddingError, match="401") as caught:
        await provider.embed(["x"])
    await provider.aclose()
    assert not caught.value.transient
    assert len(api.requests) == 1


async def test_openai_checks_the_dimension(api: FakeEmbeddingAPI) -> None:
    api.set(dimension=32)
    provider = client(api)
    with pytest.raises(EmbeddingError, match=r"dimension 32.*EMBEDDING_DIMENSION=32") as caught:
        await provider.embed(["x"])
    await provider.aclose()
    assert not caught.value.transient


async def test_openai_times_out_and_retries(api: FakeEmbeddingAPI) -> None:
    api.set(delay=5.0)
    provider = client(api, timeout=0.5, max_retries=1)
    with pytest.raises(EmbeddingError, match="Timeout") as caught:
        await provider.embed(["x"])
    await provider.aclose()
    assert caught.value.transient
    # The server notes a request when its handler starts; on a loaded machine the retry's may start after the
    # client has given up on it.
    await until(lambda: len(api.requests) >= 2, 10, what="the retry's request")
    assert len(api.requests) == 2


async def test_openai_hands_a_timed_out_batch_back_without_retrying_it_at_the_same_size(
    api: FakeEmbeddingAPI,
) -> None:
    """A batch of several texts that timed out is not sent again whole: the backfill halves it on the timeout,
    and retrying it first would cost ``max_retries`` more timeouts. A single text is still retried."""
    api.set(delay=5.0, slow_over=1)
    provider = client(api, timeout=0.5, max_retries=2)
    with pytest.raises(EmbeddingError, match="Timeout") as caught:
        await provider.embed(["a", "b"])
    assert caught.value.transient and caught.value.timed_out
    # The provider has given up, so no request of its can come later; the server may note this one late.
    await until(lambda: len(api.requests) >= 1, 10, what="the batch's request")
    assert len(api.requests) == 1
    assert await provider.embed(["a"])  # under slow_over: answered at once
    await provider.aclose()


async def test_openai_cuts_off_an_answer_that_never_ends_at_the_request_timeout(api: FakeEmbeddingAPI) -> None:
    """The timeout bounds the whole request: an answer that trickles in forever (each read gets a byte, so no
    read timeout fires) is a transient failure after ``timeout`` seconds, not a call that never returns (the
    background backfill held its lock on one for good)."""
    api.set(trickle=True)
    provider = client(api, timeout=0.5, max_retries=0)
    with anyio.fail_after(30), pytest.raises(EmbeddingError, match=r"within 0\.5 s") as caught:
        await provider.embed(["x"])
    await provider.aclose()
    assert caught.value.transient


async def test_the_hash_provider_embeds_a_batch_while_the_event_loop_serves_others() -> None:
    """A backfill batch of long texts is hashed off the event loop: a task beside it keeps running meanwhile (on
    the loop thread, the batch held every call up for the whole of it)."""
    texts = [" ".join(f"word{i}x{j}" for j in range(400)) for i in range(32)]
    ticks = 0
    finished = False

    async def ticker() -> None:
        nonlocal ticks
        while not finished:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.lowlevel.checkpoint()
        before = ticks
        vectors = await HashEmbedding(64).embed(texts)
        during = ticks - before
        finished = True
    assert len(vectors) == 32 and vectors[0] == HashEmbedding(64).embed_one(texts[0])
    assert during > 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_openai_connection_refused_is_transient() -> None:
    sleeps = Sleeps()
    provider = OpenAIEmbedding(
        base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", dimension=8, max_retries=2, sleep=sleeps
    )
    with pytest.raises(EmbeddingError, match="ConnectError") as caught:
        await provider.embed(["x"])
    await provider.aclose()
    assert caught.value.transient and len(sleeps.delays) == 2


def test_retry_after_parsing() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0


# -- configuration ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"embedding_provider": "openai"}, "EMBEDDING_BASE_URL.*EMBEDDING_MODEL.*EMBEDDING_DIMENSION"),
        (
            {"embedding_provider": "openai", "embedding_base_url": "http://x/v1", "embedding_model": "m"},
            "EMBEDDING_DIMENSION",
        ),
        (
            {
                "embedding_provider": "openai",
                "embedding_base_url": "ftp://x",
                "embedding_model": "m",
                "embedding_dimension": 8,
            },
            "http",
        ),
        ({"embedding_provider": "sentence-transformers", "embedding_dimension": 768}, "384"),
        ({"embedding_provider": "sentence-transformers", "embedding_model": "/models/other"}, "EMBEDDING_DIMENSION"),
    ],
)
def test_misconfiguration_is_refused_at_start_up(overrides: dict[str, Any], message: str, make_settings: Any) -> None:
    settings = make_settings(**overrides)
    with pytest.raises(ConfigurationError, match=message):
        provider_from_settings(settings)
    with pytest.raises(ConfigurationError, match=message):
        MemoryRuntime(settings)


def test_local_provider_without_the_extra_is_a_configuration_error(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sentence_transformers" else real(name, *a)
    )
    with pytest.raises(ConfigurationError, match=r"mcp-memory\[local-embeddings\]"):
        provider_from_settings(make_settings(embedding_provider="sentence-transformers"))


def test_settings_build_each_provider(make_settings: Any) -> None:
    assert provider_from_settings(make_settings()) is None
    assert isinstance(provider_from_settings(make_settings(embedding_provider="hash")), HashEmbedding)
    openai = provider_from_settings(
        make_settings(
            embedding_provider="openai",
            embedding_base_url="https://api.openai.com/v1",
            embedding_model="text-embedding-3-small",
            embedding_dimension=1536,
            embedding_api_key="sk-secret",
        )
    )
    assert isinstance(openai, OpenAIEmbedding) and openai.name == "text-embedding-3-small@1536"
    local = provider_from_settings(make_settings(embedding_provider="sentence-transformers"))
    assert isinstance(local, SentenceTransformerEmbedding)
    assert local.dimension == DEFAULT_LOCAL_DIMENSION == 384


# -- local model -----------------------------------------------------------------------------------------
def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_local_model_embeds_meaning(minilm: SentenceTransformerEmbedding) -> None:
    a, b, c = await minilm.embed(
        [
            "client billed two times for the yearly plan",
            "customer was charged twice for an annual subscription",
            "the marketing website moved to a new load balancer",
        ]
    )
    assert len(a) == 384 and math.isclose(math.sqrt(sum(x * x for x in a)), 1.0, rel_tol=1e-4)
    assert cosine(a, b) > 0.5 > cosine(a, c)
    assert await minilm.embed([]) == []
    assert minilm.name == "sentence-transformers/all-MiniLM-L6-v2@384"


def test_local_default_model_never_asks_a_hub(minilm: SentenceTransformerEmbedding) -> None:
    where, local_only = minilm._location()
    assert local_only and (Path(where) / "model.safetensors").is_file()


def test_local_model_by_name_honours_hf_hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert SentenceTransformerEmbedding("org/some-model", dimension=8)._location() == ("org/some-model", True)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert SentenceTransformerEmbedding("org/some-model", dimension=8)._location() == ("org/some-model", False)


def test_the_vector_width_follows_the_provider_for_stores_that_fix_it() -> None:
    """The bundled local model makes 384-wide vectors: a Postgres store (and `migrate`) must use that width
    when the setting is left unset, or every episode would be stored without its vector."""
    from mcp_memory.stores.postgres.store import PostgresStore

    pg = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    local = Settings(database_url=pg, embedding_provider="sentence-transformers")
    assert vector_dimension(local) == 384
    assert PostgresStore.from_settings(local).embedding_dimension == 384
    assert vector_dimension(Settings(embedding_provider="hash")) == 256
    assert vector_dimension(Settings(embedding_provider="hash", embedding_dimension=64)) == 64
    # A provider whose width differs from the store's is refused at start-up, with the setting to change.
    with pytest.raises(ConfigurationError, match="MCP_MEMORY_EMBEDDING_DIMENSION=384"):
        MemoryRuntime(Settings(database_url=pg, embedding_provider="hash"), embedder=HashEmbedding(384))
