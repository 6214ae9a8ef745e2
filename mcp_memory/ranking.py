"""Ranking for episode recall: score fusion of full-text and vector results, blended with importance and
recency. Pure functions, shared by every store adapter that ranks in Python.

Why score fusion rather than reciprocal rank fusion: RRF keeps only rank positions, so the first and
second hit differ by under 2% whatever their actual match quality, and any recency or importance boost
then reorders them. Here each retriever gives a 0-1 score that keeps *how much* better a match is:

- full-text: BM25 divided by the best BM25 of the query (BM25 has no fixed scale), but by no less than
  :data:`GOOD_TEXT_SHARE` of the query's ceiling, so that a best hit holding one of several query words is not
  scored as a full match;
- vectors: the cosine divided by the best cosine of the query, but by no less than :data:`GOOD_COSINE`, so
  that the best of weak matches stays weak (0.3 / 0.5 = 0.6) while among good matches the best scores 1.0
  like the best BM25 hit; cosines below :data:`MIN_COSINE` are noise and dropped.

The two are averaged with weights :data:`TEXT_WEIGHT` and :data:`VECTOR_WEIGHT` (over the retrievers that
found anything). Both on a 0-1 scale whose best is 1.0, and vectors weighted three to one (the weighting of
Weaviate's hybrid search): a model's vectors judge meaning (paraphrases, synonyms), and full-text gives
exact words and identifiers a say without letting an incidental shared word outvote them. Measured on
tests/data/retrieval_set.json and benchmarks/data/dialogue_set.json with all-MiniLM-L6-v2 (docs/benchmarks.md).

Store adapters that rank in SQL (Postgres) compute the same formula: ``relative`` as
``least(score / greatest(max(score), GOOD_TEXT_SHARE * ceiling), 1)``, ``similarities`` as
``cos / greatest(max(cos) over (), GOOD_COSINE)``.
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

GOOD_COSINE = 0.5
"""A cosine that means a clearly related text (all-MiniLM-L6-v2: a paraphrase scores 0.4-0.7). Vector scores
are relative to the query's best cosine, or to this if the best is lower."""

TEXT_WEIGHT = 0.25
VECTOR_WEIGHT = 0.75
"""Weights of the full-text and vector scores in :func:`fuse` (stores pass them in this order)."""


GOOD_TEXT_SHARE = 0.2
"""The text counterpart of :data:`GOOD_COSINE`: full-text shares are relative to the query's best BM25, or to this
fraction of the query's ceiling (``(k1 + 1)`` times the IDFs of its words the project holds, which no episode
reaches) if the best is lower, so that a best hit sharing one of several query words stays a partial match.
Chosen by a sweep on the two evaluation sets (0.2, 0.3, 0.4, 0.5, 0.7; docs/benchmarks.md): the largest of those
that loses no top-1 or top-3 on either set in either store."""


def relative(scores: Mapping[K, float], ceiling: float = 0.0, good: float = GOOD_TEXT_SHARE) -> dict[K, float]:
    """Scores on no fixed scale (BM25) as shares of the best one, or of ``good`` times ``ceiling`` (a score no hit
    reaches; 0: none known) if the best is lower."""
    best = max(max(scores.values(), default=0.0), good * ceiling)
    return {k: min(1.0, v / best) for k, v in scores.items() if v > 0} if best > 0 else {}


def similarities(cosines: Mapping[K, float], floor: float = MIN_COSINE, good: float = GOOD_COSINE) -> dict[K, float]:
    """Cosines as shares of the best one, or of ``good`` if the best is lower; those below ``floor`` dropped."""
    kept = {k: v for k, v in cosines.items() if v >= floor}
    scale = max(good, max(kept.values(), default=0.0))
    return {k: min(1.0, v / scale) for k, v in kept.items()}


def fuse(score_lists: Sequence[Mapping[K, float]], weights: Sequence[float] | None = None) -> dict[K, float]:
    """Weighted average of 0-1 scores over the retrievers that found anything (equal weights if none are
    given); absent from a list scores 0 there. A retriever that found nothing has no say (a query with no
    word in any episode is judged by vectors alone, and the reverse)."""
    given = weights if weights is not None else [1.0] * len(score_lists)
    if len(given) != len(score_lists):
        raise ValueError("fuse needs one weight per score list")
    active = [(scores, weight) for scores, weight in zip(score_lists, given, strict=True) if scores and weight > 0]
    total = sum(weight for _, weight in active)
    fused: dict[K, float] = {}
    for scores, weight in active:
        for item, score in scores.items():
            fused[item] = fused.get(item, 0.0) + score * weight / total
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


__all__ = [
    "GOOD_COSINE",
    "MIN_COSINE",
    "TEXT_WEIGHT",
    "VECTOR_WEIGHT",
    "blend",
    "fuse",
    "normalize",
    "recency",
    "relative",
    "similarities",
]
