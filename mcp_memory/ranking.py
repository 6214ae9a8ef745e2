"""Ranking for episode recall: score fusion of full-text and vector results, blended with importance and
recency. Pure functions, shared by every store adapter that ranks in Python.

Why score fusion rather than reciprocal rank fusion: RRF keeps only rank positions, so the first and
second hit differ by under 2% whatever their actual match quality, and any recency or importance boost
then reorders them. Dividing each list's scores by its best score keeps *how much* better a match is
(an episode matching every query word keeps a clear lead over one matching a single word), while still
putting the lists on one 0-1 scale before they are averaged.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

IMPORTANCE_WEIGHT = 0.15
RECENCY_WEIGHT = 0.10
RECENCY_HALF_LIFE_DAYS = 30.0


def fuse(score_lists: Sequence[Mapping[K, float]]) -> dict[K, float]:
    """Fuse per-retriever scores (higher is better, >= 0) into one relevance in [0, 1].

    Each list is divided by its own best score, then the lists are averaged; an item absent from a list
    scores 0 there. Empty lists are ignored (a retriever that found nothing has no say)."""
    lists = [scores for scores in score_lists if scores]
    fused: dict[K, float] = {}
    for scores in lists:
        best = max(scores.values())
        for item, score in scores.items():
            share = score / best if best > 0 else 0.0
            fused[item] = fused.get(item, 0.0) + share / len(lists)
    return fused


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


__all__ = ["blend", "fuse", "normalize", "recency"]
