"""Ranking for episode recall: reciprocal rank fusion of full-text and vector results, blended with
importance and recency. Pure functions, shared by every store adapter that ranks in Python."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

RRF_K = 60
"""The usual RRF constant: damps the weight of the very first ranks."""
IMPORTANCE_WEIGHT = 0.15
RECENCY_WEIGHT = 0.10
RECENCY_HALF_LIFE_DAYS = 30.0


def rrf(rankings: Sequence[Sequence[K]], k: int = RRF_K) -> dict[K, float]:
    """Reciprocal rank fusion: each list contributes ``1 / (k + rank)`` (rank from 1) to an item's score."""
    scores: dict[K, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


def recency(created_at: float, now: float, half_life_days: float = RECENCY_HALF_LIFE_DAYS) -> float:
    """1.0 for an episode made now, 0.5 one half-life ago, tending to 0."""
    age_days = max(0.0, now - created_at) / 86400.0
    return math.pow(0.5, age_days / half_life_days)


def blend(relevance: float, importance: float, created_at: float, now: float) -> float:
    """Final score: relevance scaled up by importance (0-1) and recency, so relevance dominates."""
    return relevance * (1.0 + IMPORTANCE_WEIGHT * importance + RECENCY_WEIGHT * recency(created_at, now))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0.0 if either is zero)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return dot / (na * nb)


__all__ = ["RRF_K", "blend", "cosine", "recency", "rrf"]
