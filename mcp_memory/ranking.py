"""Ranking for episode recall: score fusion of full-text and vector results, blended with importance and
recency. Pure functions, shared by every store adapter that ranks in Python.

Why score fusion rather than reciprocal rank fusion: RRF keeps only rank positions, so the first and
second hit differ by under 2% whatever their actual match quality, and any recency or importance boost
then reorders them. Here each retriever gives a 0-1 score that keeps *how much* better a match is:
full-text BM25 divided by the best BM25 of the query (BM25 has no fixed scale), vector similarity as the
cosine itself (it has one, so a weak best match stays weak and unrelated episodes are not promoted), with
a floor below which a vector "match" is noise and dropped.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

IMPORTANCE_WEIGHT = 0.15
RECENCY_WEIGHT = 0.10
RECENCY_HALF_LIFE_DAYS = 30.0


MIN_COSINE = 0.15
"""Vector matches below this cosine are dropped: for the embeddings used here that is unrelated text."""


def relative(scores: Mapping[K, float]) -> dict[K, float]:
    """Scores on no fixed scale (BM25) as shares of the best one: the best match scores 1.0."""
    best = max(scores.values(), default=0.0)
    return {k: v / best for k, v in scores.items() if v > 0} if best > 0 else {}


def similarities(cosines: Mapping[K, float], floor: float = MIN_COSINE) -> dict[K, float]:
    """Cosines kept as they are (they have a scale), without the ones below ``floor``."""
    return {k: min(1.0, v) for k, v in cosines.items() if v >= floor}


def fuse(score_lists: Sequence[Mapping[K, float]]) -> dict[K, float]:
    """Average 0-1 scores over the retrievers that found anything; absent from a list scores 0 there.
    A retriever that found nothing has no say (a query with no word in any episode is judged by vectors
    alone, and the reverse)."""
    lists = [scores for scores in score_lists if scores]
    fused: dict[K, float] = {}
    for scores in lists:
        for item, score in scores.items():
            fused[item] = fused.get(item, 0.0) + score / len(lists)
    return {item: score for item, score in fused.items() if score > 0}


def recency(created_at: float, now: float, half_life_days: float = RECENCY_HALF_LIFE_DAYS) -> float:
    """1.0 for an episode made now, 0.5 one half-life ago, tending to 0."""
    age_days = max(0.0, now - created_at) / 86400.0
    return math.pow(0.5, age_days / half_life_days)


def blend(relevance: float, importance: float, created_at: float, now: float) -> float:
    """Final score: relevance scaled up by importance (0-1) and recency, by at most 25%, so that a clearly
    better match always wins and importance and recency decide between comparable ones."""
    return relevance * (1.0 + IMPORTANCE_WEIGHT * importance + RECENCY_WEIGHT * recency(created_at, now))


def normalize(vector: Sequence[float]) -> list[float]:
    """The vector scaled to unit length (unchanged if zero), so that a dot product is the cosine."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


__all__ = ["MIN_COSINE", "blend", "fuse", "normalize", "recency", "relative", "similarities"]
