"""``mcp-memory migrate --fill-search-weights`` on a populated database: how long filling ``episodes.search_weights``
of rows written before migration 0014 takes, and what it does to a text search's latency.

Loads N episodes of 384 dims over 10 projects as ``bench_pg_search.py`` does (binary COPY, then the indexes, HNSW
included) with the trigger that fills the column off, so the rows are as an earlier release wrote them; times 200
text searches of the largest project ranked from the tsvector; fills the column in batches
(:func:`mcp_memory.stores.postgres.backfill.fill_search_weights`, what the CLI runs); vacuums; and times the same
searches ranked from the stored weights, checking the pages are identical.

    python benchmarks/bench_pg_fill_search_weights.py [--episodes 20000] [--batch 2000] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import anyio
import sqlalchemy
from bench_pg_search import DIM, TOPICS, Corpus, load
from pg_common import add_arguments, as_string, bench_database, pct, server_url

from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.postgres.backfill import fill_search_weights
from mcp_memory.stores.postgres.schema import autocommit_connection
from mcp_memory.stores.postgres.store import PostgresStore

PROJECTS = 10
Page = list[tuple[uuid.UUID, float]]
QUERIES = 200
NOW = time.time()  # one "now" for both rounds: ranking weighs recency


async def _run(url: str, *statements: str) -> None:
    async with autocommit_connection(url) as conn:
        for sql in statements:
            await conn.execute(sqlalchemy.text(sql))


async def _searches(store: PostgresStore, project: uuid.UUID, queries: list[str]) -> tuple[list[float], list[Page]]:
    times: list[float] = []
    pages: list[Page] = []
    for i, query in enumerate([*queries[:20], *queries]):
        started = time.perf_counter()
        found = await store.search_episodes(project, query, None, EpisodeFilter(), 10, NOW, "text")
        if i >= 20:
            times.append((time.perf_counter() - started) * 1000)
            pages.append([(e.episode_id, e.score) for e in found])
    return times, pages


async def main(args: argparse.Namespace) -> None:
    admin, _server = server_url(args.url, args.shared_buffers)
    corpus = Corpus()
    projects = [uuid.uuid4() for _ in range(PROJECTS)]
    # Skewed: the first project holds about a third of the episodes.
    owners = [projects[0] if i % 3 == 0 else projects[i % PROJECTS] for i in range(args.episodes)]
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    async with bench_database(admin, embedding_dimension=DIM, keep=args.keep) as url:
        url_s = as_string(url)
        # Rows as an earlier release wrote them: without the column (the trigger off during the load only).
        await _run(url_s, "ALTER TABLE episodes DISABLE TRIGGER episodes_search_weights")
        await load(url, owners, corpus, [uuid.uuid4() for _ in range(100)])
        await _run(url_s, "ALTER TABLE episodes ENABLE TRIGGER episodes_search_weights", "VACUUM ANALYZE episodes")
        largest = max(projects, key=owners.count)
        queries = [corpus.text(int(t), 3, 1) for t in corpus.rng.integers(0, TOPICS, size=QUERIES)]
        store = PostgresStore(url_s, embedding_dimension=DIM, timeout_seconds=60)
        await store.start()
        try:
            before, before_pages = await _searches(store, largest, queries)
            report = await fill_search_weights(url_s, batch_rows=args.batch)
            await _run(url_s, "VACUUM ANALYZE episodes")
            after, after_pages = await _searches(store, largest, queries)
        finally:
            await store.close()
    same = sum(a == b for a, b in zip(before_pages, after_pages, strict=True))
    print(f"\n{args.episodes:,} episodes ({owners.count(largest):,} in the largest project), batches of {args.batch}")
    print(f"filled {report.filled:,} of {report.to_fill:,} in {report.batches} batches, {report.seconds:.1f} s "
          f"({report.filled / max(report.seconds, 1e-9):,.0f} rows/s)")  # fmt: skip
    print("\n| text search, largest project | p50 ms | p99 ms |\n|---|---:|---:|")
    print(f"| ranked from the tsvector (before the fill) | {pct(before, 0.5):.2f} | {pct(before, 0.99):.2f} |")
    print(f"| ranked from search_weights (after) | {pct(after, 0.5):.2f} | {pct(after, 0.99):.2f} |")
    print(f"\nidentical pages: {same} of {QUERIES}")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2000)
    add_arguments(parser)
    anyio.run(main, parser.parse_args())
