"""Full-text ranking on Postgres with each candidate's word frequencies read from ``episodes.search_weights``
(migration 0014) against read from its tsvector (the ranking of a row written before 0014), interleaved in one
process on one database.

Loads N episodes into one project as ``bench_pg_search.py`` does (same corpus, binary COPY, the shared HNSW and the
GIN index built after), then runs each query twice, once per way (which goes first alternates), through
``PostgresStore.search_episodes``: the way is switched by the statement's rank expression
(``search._TEXT_RANK`` or ``search._TSVECTOR_RANK``), not by the data, so both read the same rows. Prints p50 / p99
of the calls, the median execution time of the statement (``EXPLAIN ANALYZE``, 60 queries each way), and how many
pages were identical (same episodes, same order, same scores).

    python benchmarks/bench_pg_text_rank_ab.py [--episodes 70000] [--queries 300] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from typing import Any

import anyio
from bench_pg_search import DIM, TOPICS, Corpus, load
from pg_common import add_arguments, as_string, bench_database, pct, server_url
from sqlalchemy import text

from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.postgres import search
from mcp_memory.stores.postgres.store import PostgresStore

WAYS = {"search_weights": search._TEXT_RANK, "tsvector": search._TSVECTOR_RANK}


async def execution_ms(store: PostgresStore, project: uuid.UUID, query: str, qv: str | None, now: float) -> float:
    """The search statement's execution time (``EXPLAIN ANALYZE``) with the rank expression in force."""
    sql, params, _ = search.search_statement(
        project, search.ts_query(query), qv, EpisodeFilter(), 10, now, None, exact_scan_max=store.exact_scan_max
    )
    async with store._read() as conn:
        plan: Any = (await conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + sql), params)).scalar()
    return float(plan[0]["Execution Time"])


async def main(args: argparse.Namespace) -> None:
    admin, _server = server_url(args.url, args.shared_buffers)
    corpus = Corpus()
    project = uuid.uuid4()
    async with bench_database(admin, embedding_dimension=DIM, keep=args.keep) as url:
        await load(url, [project] * args.episodes, corpus, [uuid.uuid4() for _ in range(100)])
        q_topics = corpus.rng.integers(0, TOPICS, size=args.queries)
        q_vectors = [[float(x) for x in v] for v in corpus.vectors(q_topics, noise=0.6)]
        q_texts = [corpus.text(int(t), 3, 1) for t in q_topics]
        store = PostgresStore(as_string(url), embedding_dimension=DIM, timeout_seconds=60)
        await store.start()
        # The project's own HNSW index, built now rather than in the background while the searches are timed.
        await store.build_vector_indexes()
        now = time.time()
        print(f"\n{args.episodes:,} episodes in one project, {args.queries} queries after 20 warm-up, ms\n")
        print("| mode | ranked from | call p50 / p99 | statement execution p50 | identical pages |")
        print("|---|---|---:|---:|---:|")
        try:
            for mode in ("text", "hybrid"):
                calls: dict[str, list[float]] = {way: [] for way in WAYS}
                same = 0
                for i in range(args.queries + 20):
                    k = i % args.queries
                    pages = {}
                    for way in sorted(WAYS, reverse=bool(i % 2)):
                        search._TEXT_RANK = WAYS[way]
                        started = time.perf_counter()
                        found = await store.search_episodes(project, q_texts[k], q_vectors[k], EpisodeFilter(), 10,
                                                            now, mode)  # fmt: skip
                        if i >= 20:
                            calls[way].append((time.perf_counter() - started) * 1000)
                        pages[way] = [(e.episode_id, e.score) for e in found]
                    same += i >= 20 and pages["search_weights"] == pages["tsvector"]
                executions: dict[str, list[float]] = {way: [] for way in WAYS}
                for k in range(min(60, args.queries)):
                    qv = search.vector_text(q_vectors[k]) if mode == "hybrid" else None
                    for way, rank in WAYS.items():
                        search._TEXT_RANK = rank
                        executions[way].append(await execution_ms(store, project, q_texts[k], qv, now))
                for way in WAYS:
                    c = calls[way]
                    print(
                        f"| {mode} | {way} | {pct(c, 0.5):.2f} / {pct(c, 0.99):.2f} "
                        f"| {statistics.median(executions[way]):.2f} | {same} of {args.queries} |"
                    )
        finally:
            search._TEXT_RANK = WAYS["search_weights"]
            await store.close()
    print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--episodes", type=int, default=70_000)
    parser.add_argument("--queries", type=int, default=300)
    add_arguments(parser)
    anyio.run(main, parser.parse_args())
