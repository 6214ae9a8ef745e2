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
from bench_pg_search import DIM
from pg_common import add_arguments, as_string, bench_database, pct, server_url
from pg_search_ab import interleaved, one_project
from sqlalchemy import text

from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.postgres import search
from mcp_memory.stores.postgres.store import PostgresStore

WAYS = {"search_weights": search._TEXT_RANK, "tsvector": search._TSVECTOR_RANK}


def use(way: str) -> None:
    """The statement's rank expression of ``way``."""
    search._TEXT_RANK = WAYS[way]


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
    async with bench_database(admin, embedding_dimension=DIM, keep=args.keep) as url:
        queries = await one_project(url, args.episodes, args.queries)
        project, q_texts, q_vectors = queries.project, queries.texts, queries.vectors
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
                calls, same = await interleaved(store, queries, mode, list(WAYS), use, now)
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
