"""``openai``: the OpenAI ``/embeddings`` API that OpenAI, Azure OpenAI, Ollama, vLLM and Hugging Face TEI all
serve."""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import math
import random
import time
from array import array
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import httpx

from mcp_memory.config import mask_url
from mcp_memory.embeddings.base import EmbeddingError, check_vectors

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Statuses worth retrying: timeouts, rate limits, overload (any other 5xx too)."""
_TIMEOUT_STATUS = frozenset({408, 504})
"""A server or gateway that gave up waiting for the answer: like our own timeout, maybe the request's size."""
_CONFIG_STATUS = frozenset({401, 403, 404, 405})
"""Refusals that no text can avoid (key, URL, model): the provider is unusable as configured. Any other 4xx (400,
413, 422: an input too long for the model, mostly) may be the texts'."""
_BODY_SNIPPET = 300
INLINE_PARSE_BYTES = 64 * 1024
"""Answers up to this size (one query's vector: a 1536-dimension one is about 30 KB) are parsed on the event loop;
larger ones (a batch: 64 such vectors took 20-300 ms to decode and check) in a worker thread, so that the loop
serves other calls meanwhile."""


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
    answers fail at once: 401, 403, 404 and 405 as the configuration's fault (``provider_wide``), the others as
    maybe the texts'. Every returned vector must have ``dimension`` values.

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
        url = base_url.rstrip("/") + "/embeddings"
        # What messages and logs show: the URL without its password (a URL's user part is basic authentication).
        self._shown_url = mask_url(url)
        # Requests go to the URL without its user part, which becomes the basic authentication httpx would have
        # made of it anyway: a URL that holds no password cannot put it in httpx's own log lines.
        parsed = httpx.URL(url)
        self._auth = httpx.BasicAuth(parsed.username, parsed.password) if parsed.username or parsed.password else None
        self._url = parsed.copy_with(username=None, password=None)
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
                auth=self._auth,
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
                # httpx's timeout bounds each connect, read and write, not the request: an answer trickling in
                # a byte at a time would never end. This bounds the whole of it, body included.
                with anyio.fail_after(self._timeout):
                    response = await self._http().post(self._url, json=body)
            except httpx.LocalProtocolError as exc:
                # The request itself cannot be sent; h11's text quotes the offending header, which may be the key.
                raise EmbeddingError(
                    f"embedding request to {self._shown_url} could not be sent: {type(exc).__name__}: a header "
                    "holds a character HTTP does not allow (check MCP_MEMORY_EMBEDDING_API_KEY)",
                    transient=False,
                ) from None
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                # A read or write that timed out may be the batch's size; a connection that did not open is not.
                slow = isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout)
                error = EmbeddingError(
                    f"embedding request to {self._shown_url} failed: {type(exc).__name__}: {mask_url(str(exc))}",
                    timed_out=slow,
                )
            except TimeoutError:
                error = EmbeddingError(
                    f"embedding request to {self._shown_url} failed: Timeout: no whole answer within {self._timeout} s",
                    timed_out=True,
                )
            else:
                if response.status_code == 200:
                    if len(response.content) <= INLINE_PARSE_BYTES:
                        return self._parse(response.content, len(batch))
                    return await anyio.to_thread.run_sync(self._parse, response.content, len(batch))
                snippet = response.text[:_BODY_SNIPPET].replace("\n", " ")
                message = f"embedding request to {self._shown_url} answered {response.status_code}: {snippet}"
                status = response.status_code
                if status in _RETRY_STATUS or status >= 500:
                    error = EmbeddingError(
                        message,
                        retry_after=parse_retry_after(response.headers.get("Retry-After")),
                        timed_out=status in _TIMEOUT_STATUS,
                    )
                else:
                    raise EmbeddingError(message, transient=False, provider_wide=status in _CONFIG_STATUS)
            if attempt >= self._max_retries:
                raise error
            if error.timed_out and len(batch) > 1:
                # The same batch would likely time out again, costing max_retries more timeouts before the
                # backfill learns to halve it: hand the timeout back now so the halving starts at once.
                raise error
            delay = error.retry_after if error.retry_after is not None else self._backoff(attempt)
            if delay > self._max_retry_after:
                raise error  # asked to wait longer than a caller should: fail now, retry in the background later
            logger.info("%s; retrying in %.1f s", error, delay)
            await self._sleep(delay)
            attempt += 1

    def _parse(self, content: bytes, count: int) -> list[list[float]]:
        """The vectors of a 200 answer's body (JSON in UTF-8, -16 or -32, as ``Response.json`` reads it)."""
        try:
            payload = json.loads(content)
            items = payload["data"]
            if not isinstance(items, list):
                raise TypeError("'data' is not a list")
            ordered = sorted(items, key=lambda it: it.get("index", 0)) if all("index" in it for it in items) else items
            vectors = [_decode_embedding(it.get("embedding")) for it in ordered]
        except EmbeddingError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbeddingError(f"embedding response from {self._shown_url} is not understood: {exc}") from exc
        return check_vectors(vectors, count, self._dimension, self._shown_url)


__all__ = ["OpenAIEmbedding", "parse_retry_after"]
