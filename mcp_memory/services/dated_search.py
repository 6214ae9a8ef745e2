"""Episode search that heeds the time a query names (:mod:`mcp_memory.query_time`).

The store ranks by relevance (full text and vectors, with a mild importance and recency blend); this module
orders its answers by what the query says about time, on every store alike, as it only calls the store's search
with an ``until``/``since`` filter:

- A named period ("in March", "last week", "two months ago"): the store's best hits *inside* the period come
  first, then the period's other episodes (newest first, score 0: "what did I do last week?" asks for them
  whether or not they share a word or a meaning with the question), then the best hits overall. A preference,
  not a filter: a period the user misremembers, or an episode recorded a day after the event it tells of, is
  still found below the ones inside.
- A wish for the present state ("where do I live now", "my current role"): among the hits at least
  :data:`LATEST_SHARE` as relevant as the best, the newer get a boost up to :data:`LATEST_WEIGHT` (times their
  score, by their place between the oldest and the newest of them), so that when a fact changed, its later
  statement outranks the earlier one that may share more words with the question.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from mcp_memory.models import Episode, ScoredEpisode
from mcp_memory.query_time import read_time
from mcp_memory.stores.ports import EpisodeFilter

LATEST_SHARE = 0.5
"""Hits scoring at least this share of the best one compete on recency for a present-state query; weaker ones
are unrelated and keep their place (else the newest small talk would win)."""
LATEST_WEIGHT = 1.0
"""The newest of the competing hits has its score doubled, the oldest unchanged: a later statement of a changed
fact wins over an earlier one up to twice as relevant, as "now"/"current" asks for exactly that."""
LATEST_POOL = 20
"""Hits a present-state query re-ranks (at least): the newer statement may sit below the limit before it."""

Search = Callable[[EpisodeFilter, int], Awaitable[list[ScoredEpisode]]]
"""The store's search for the query, with a filter and a limit."""
Listing = Callable[[EpisodeFilter, int], Awaitable[list[Episode]]]
"""The store's listing of the project's episodes (newest first), with a filter and a limit."""


def prefer_newer(hits: list[ScoredEpisode]) -> list[ScoredEpisode]:
    """The hits re-scored and re-ordered for a present-state query (see the module's docstring)."""
    if len(hits) < 2:
        return hits
    best = max(h.score for h in hits)
    competing = [h for h in hits if h.score >= LATEST_SHARE * best]
    oldest = min(h.created_at.timestamp() for h in competing)
    span = max(h.created_at.timestamp() for h in competing) - oldest
    if span <= 0:
        return hits

    def boosted(h: ScoredEpisode) -> ScoredEpisode:
        if h.score < LATEST_SHARE * best:
            return h
        newness = (h.created_at.timestamp() - oldest) / span
        return h.model_copy(update={"score": round(h.score * (1.0 + LATEST_WEIGHT * newness), 6)})

    return sorted((boosted(h) for h in hits), key=lambda h: h.score, reverse=True)


def _within(flt: EpisodeFilter, window: tuple[float, float]) -> EpisodeFilter | None:
    """The filter narrowed to the window, or None if they do not meet (a ``since`` after the window's end)."""
    since = window[0] if flt.since is None else max(flt.since, window[0])
    until = window[1] if flt.until is None else min(flt.until, window[1])
    return dataclasses.replace(flt, since=since, until=until) if since < until else None


async def search_reading_time(
    search: Search, listing: Listing, query: str, flt: EpisodeFilter, limit: int, now: float
) -> list[ScoredEpisode]:
    """The best ``limit`` hits of ``search`` for ``query``, ordered by the period and the present-state wish the
    query states (relative to ``now``); a query that names no time is the store's ranking unchanged."""
    reading = read_time(query, now)
    if reading.window is None and not reading.latest:
        return await search(flt, limit)
    pool = max(limit, LATEST_POOL) if reading.latest else limit
    hits = await search(flt, pool)
    if reading.latest:
        hits = prefer_newer(hits)
    if reading.window is not None:
        narrowed = _within(flt, reading.window)
        inside = await search(narrowed, pool) if narrowed is not None else []
        if reading.latest:
            inside = prefer_newer(inside)
        if narrowed is not None and len(inside) < limit:
            found = {h.episode_id for h in inside}
            rest = [e for e in await listing(narrowed, limit) if e.episode_id not in found]
            inside += [ScoredEpisode(**e.model_dump(), score=0.0) for e in rest][: limit - len(inside)]
        first = {h.episode_id for h in inside}
        hits = inside + [h for h in hits if h.episode_id not in first]
    return hits[:limit]


__all__ = ["LATEST_POOL", "LATEST_SHARE", "LATEST_WEIGHT", "prefer_newer", "search_reading_time"]
