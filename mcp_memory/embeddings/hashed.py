"""``hash``: a local, dependency-free feature-hashing embedding (words, word pairs and character trigrams hashed
into signed buckets) that makes vector fusion work offline."""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Sequence

import anyio.to_thread

_WORD = re.compile(r"\w+", re.UNICODE)
INLINE_CHARS = 1000
"""Texts up to this many characters in all (a query) are embedded on the caller's thread: about half a millisecond,
less than what a hop to a worker thread would add to it."""


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
        """A query is embedded at once; longer texts (an episode, a backfill batch: 64 long episodes took 0.7 s) in a
        worker thread, so that the event loop serves other calls meanwhile."""
        if sum(map(len, texts)) <= INLINE_CHARS:
            return [self.embed_one(t) for t in texts]
        return await anyio.to_thread.run_sync(lambda: [self.embed_one(t) for t in texts])


__all__ = ["HashEmbedding"]
