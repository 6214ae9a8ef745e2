"""What the interleaved A/B benchmarks of Postgres search share: one project loaded as ``bench_pg_search.py`` loads
its corpus, with queries of its topics, and the loop that runs each query once per way, the way that goes first
alternating, so that every way meets the same load (``bench_pg_text_rank_ab.py``, ``bench_pg_search_client_ab.py``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench_pg_search import TOPICS, Corpus, load

from mcp_memory.stores.ports import EpisodeFilter, SearchMode
from mcp_memory.stores.postgres.store import PostgresStore

WARM_UP = 20
"""Calls per way before the timed ones."""


@dataclass(frozen=True)
class Queries:
    """One loaded project and the queries asked of it."""

    project: uuid.UUID
    texts: list[str]
    vectors: list[list[float]]


async def one_project(url: Any, episodes: int, queries: int) -> Queries:
    """``episodes`` episodes of one project COPYed into the database at ``url`` (the indexes built after), and
    ``queries`` queries of the corpus' topics (text and vector)."""
    corpus = Corpus()
    project = uuid.uuid4()
    await load(url, [project] * episodes, corpus, [uuid.uuid4() for _ in range(100)])
    topics = corpus.rng.integers(0, TOPICS, size=queries)
    vectors = [[float(x) for x in v] for v in corpus.vectors(topics, noise=0.6)]  # before the texts: the rng's order
    return Queries(project, [corpus.text(int(t), 3, 1) for t in topics], vectors)


async def interleaved(
    store: PostgresStore, queries: Queries, mode: SearchMode, ways: Sequence[str], use: Callable[[str], None],
    now: float,
) -> tuple[dict[str, list[float]], int]:  # fmt: skip
    """Each query once per way (``use(way)`` switches to it) after :data:`WARM_UP` rounds: the calls' times in ms
    per way, and how many of the timed rounds gave every way the same page (episodes, fields and scores)."""
    calls: dict[str, list[float]] = {way: [] for way in ways}
    same = 0
    n = len(queries.texts)
    for i in range(n + WARM_UP):
        k = i % n
        pages: dict[str, list[dict[str, Any]]] = {}
        for way in sorted(ways, reverse=bool(i % 2)):
            use(way)
            started = time.perf_counter()
            found = await store.search_episodes(queries.project, queries.texts[k], queries.vectors[k],
                                                EpisodeFilter(), 10, now, mode)  # fmt: skip
            if i >= WARM_UP:
                calls[way].append((time.perf_counter() - started) * 1000)
            pages[way] = [e.model_dump() for e in found]
        same += i >= WARM_UP and all(page == pages[ways[0]] for page in pages.values())
    return calls, same


__all__ = ["WARM_UP", "Queries", "interleaved", "one_project"]
