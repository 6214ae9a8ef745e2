"""What a Postgres search spends in Python around its statement, this release's way against the way before it,
interleaved in one process on one database.

Before, every call of ``PostgresStore.search_episodes`` parsed its 5.7 kB statement for parameters again
(``sqlalchemy.text``, ~230 us), wrote the query vector's 384 numbers with ``str`` (~270 us), and made each page row an
``Episode``, dumped it and validated it again as a ``ScoredEpisode``. Now the clause is made once per statement
string (``stores/sql/clauses.py``), the vector is written by orjson (the same numbers), and each row is validated
once. The old way is put back for its turns by rebinding those three names, not by a copy of the store.

Loads N episodes into one project as ``bench_pg_search.py`` does (same corpus, binary COPY, then the indexes and
the project's own HNSW index), then runs each query once per way (which goes first alternates) in the text, hybrid
and vector modes. Prints p50 / p99 of the calls per way and how many pages were identical (same episodes, fields and
scores).

    python benchmarks/bench_pg_search_client_ab.py [--episodes 20000] [--queries 300] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from functools import partial

import anyio
import sqlalchemy
from bench_pg_search import DIM
from pg_common import add_arguments, as_string, bench_database, pct, server_url
from pg_search_ab import interleaved, one_project

from mcp_memory.models import Episode
from mcp_memory.ranking import normalize
from mcp_memory.stores.ports import SearchMode
from mcp_memory.stores.postgres import episodes
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sql import clauses

WAYS = ("before", "now")
MODES: tuple[SearchMode, ...] = ("text", "hybrid", "vector")


def str_vector_text(vector: Sequence[float]) -> str:
    """The query vector as the code before wrote it."""
    return "[" + ",".join(map(str, normalize(vector))) + "]"


def use(way: str, *, store: PostgresStore) -> None:
    """Rebind the three names the search path looks up to ``way``'s."""
    if way == "now":
        episodes.text = clauses.text  # type: ignore[attr-defined]
        episodes.vector_text = NOW_VECTOR_TEXT  # type: ignore[attr-defined]
        store.__dict__.pop("_episode_fields", None)
    else:
        episodes.text = sqlalchemy.text  # type: ignore[attr-defined]
        episodes.vector_text = str_vector_text  # type: ignore[attr-defined]
        # The page's rows made Episodes, dumped, and validated again as ScoredEpisodes.
        fields = type(store)._episode_fields
        store.__dict__["_episode_fields"] = lambda row: Episode(**fields(store, row)).model_dump()


NOW_VECTOR_TEXT = episodes.vector_text


async def main(args: argparse.Namespace) -> None:
    admin, _server = server_url(args.url, args.shared_buffers)
    async with bench_database(admin, embedding_dimension=DIM, keep=args.keep) as url:
        queries = await one_project(url, args.episodes, args.queries)
        store = PostgresStore(as_string(url), embedding_dimension=DIM, timeout_seconds=60)
        await store.start()
        await store.build_vector_indexes()
        now = time.time()
        print(f"\n{args.episodes:,} episodes in one project, {args.queries} queries after 20 warm-up, ms\n")
        print("| mode | before p50 / p99 | now p50 / p99 | ratio (p50) | identical pages |")
        print("|---|---:|---:|---:|---:|")
        try:
            for mode in MODES:
                calls, same = await interleaved(store, queries, mode, WAYS, partial(use, store=store), now)
                b, n = calls["before"], calls["now"]
                print(
                    f"| {mode} | {pct(b, 0.5):.2f} / {pct(b, 0.99):.2f} | {pct(n, 0.5):.2f} / {pct(n, 0.99):.2f} "
                    f"| {pct(b, 0.5) / pct(n, 0.5):.2f}x | {same} of {args.queries} |"
                )
        finally:
            use("now", store=store)
            await store.close()
    print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=300)
    add_arguments(parser)
    anyio.run(main, parser.parse_args())
