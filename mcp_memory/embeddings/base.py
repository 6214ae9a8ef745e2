"""The embedding provider protocol, its error, and what every provider shares.

A provider turns texts into fixed-size vectors. Every vector is stored with its provider's
:attr:`EmbeddingProvider.name`; search compares a query only with vectors of the same name (see
:mod:`mcp_memory.services.episodic`). A provider that fails raises :class:`EmbeddingError`; callers then store the
episode without a vector and embed it later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable


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
    and repeating it as is will not help.

    ``provider_wide``: whatever the texts, every request fails now: a transient error, or a configuration that
    cannot work (bad key, unknown model or URL, wrong dimension, a local model that does not load). A
    non-transient error that is not provider-wide (a 400 from an API, say) may be the texts' own: an input too long
    for the model; callers then neither blame the provider nor stop using it.

    ``timed_out``: no whole answer came in time. It is transient, but may be the request's size: a batch that a
    slow provider cannot embed within one request's timeout, whose halves it can.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool = True,
        retry_after: float | None = None,
        provider_wide: bool | None = None,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
        self.provider_wide = transient if provider_wide is None else provider_wide
        self.timed_out = timed_out


def check_vectors(vectors: Sequence[Sequence[float]], count: int, dimension: int, source: str) -> list[list[float]]:
    """The vectors as lists of floats, if there are ``count`` of them, each of ``dimension`` finite numbers."""
    if len(vectors) != count:
        raise EmbeddingError(
            f"{source} returned {len(vectors)} vectors for {count} texts", transient=False, provider_wide=True
        )
    out: list[list[float]] = []
    for vector in vectors:
        if len(vector) != dimension:
            raise EmbeddingError(
                f"{source} returned vectors of dimension {len(vector)}, but embedding_dimension is {dimension}; "
                f"set MCP_MEMORY_EMBEDDING_DIMENSION={len(vector)} (and re-embed: mcp-memory reembed --all)",
                transient=False,
                provider_wide=True,
            )
        floats = [float(x) for x in vector]
        if not all(math.isfinite(x) for x in floats):
            raise EmbeddingError(f"{source} returned a vector with NaN or infinite values", transient=False)
        out.append(floats)
    return out


async def close_provider(provider: EmbeddingProvider | None) -> None:
    """Release what a provider holds open (HTTP connections), if anything."""
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()


__all__ = ["EmbeddingError", "EmbeddingProvider", "check_vectors", "close_provider"]
