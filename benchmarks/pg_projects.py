"""``bench_pg_search.py --projects N``: episodes spread over N projects of Zipf-skewed sizes, searched in the largest
project, a median-size one and a small one.

Sizes follow rank^-s (s = ``--zipf``, 1.1 by default: the largest project holds about a quarter of 100 projects'
episodes), rows interleaved over the heap as concurrent writers leave them. After the COPY and the shared HNSW and
GIN builds (as for one project), every project above the store's exact-scan size gets its own partial HNSW index
through the store's own statement (:func:`~mcp_memory.stores.postgres.vector_indexes.create_index_sql`), one at a
time, largest first, as the store's background build does; each is timed, with its size and the peak memory of the
backend that built it. The store is then asked to build what is missing and must find nothing: the timed searches
run on exactly what the store would have built.

Recall@10 of the vector candidates the store takes (``LIMIT 40`` at ``ef_search`` 100, through the project's own
index) against an exact scan of the project's vectors, in the same run; a project at or below the exact-scan size
is searched by that exact scan itself.
"""

from __future__ import annotations

import resource
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import asyncpg
import numpy as np
from pg_common import as_string, bench_database, connect_args, pct
from pgvector.asyncpg import register_vector
from sqlalchemy import text
from sqlalchemy.engine import URL

from mcp_memory.stores.ports import EpisodeFilter, SearchMode
from mcp_memory.stores.postgres.search import search_statement, ts_query, vector_text
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.postgres.vector_indexes import INDEX_PREFIX, create_index_sql, index_name

MODES: tuple[SearchMode, ...] = ("hybrid", "vector", "text")
RECALL_QUERIES = 100
"""Queries per picked project for recall (each also runs an exact scan of the project)."""
STORE_POOL, STORE_EF_SEARCH = 40, 100
"""The store's vector candidates for limit 10: ``LIMIT 40`` at ``hnsw.ef_search`` 100 (search.py)."""


class Corpus(Protocol):
    """bench_pg_search's corpus (passed in: that module runs this one)."""

    rng: np.random.Generator

    def vectors(self, topic: np.ndarray, noise: float) -> np.ndarray: ...

    def text(self, topic: int, n_topic: int, n_common: int) -> str: ...


Loader = Callable[[URL, list[uuid.UUID], Corpus, list[uuid.UUID]], Awaitable[dict[str, float | str]]]
"""bench_pg_search.load: COPY the rows (one per owner), build the shared HNSW and GIN indexes; timings."""


@dataclass
class IndexBuild:
    rows: int
    seconds: float
    size: int
    peak_kb: int | None
    notices: list[str]


@dataclass
class Pick:
    rank: int
    episodes: int
    path: str
    times: dict[str, tuple[float, float, float]]
    recall: float
    text_plan: list[str] = field(default_factory=list)
    hybrid_plan: list[str] = field(default_factory=list)


@dataclass
class Run:
    n: int
    projects: int
    zipf: float
    sizes: list[int]
    loaded: dict[str, float | str] = field(default_factory=dict)
    exact_scan_max: int = 0
    built: list[IndexBuild] = field(default_factory=list)
    partial_build_s: float = 0.0
    server: dict[str, str | int] = field(default_factory=dict)
    picks: dict[str, Pick] = field(default_factory=dict)
    indexed_recall: tuple[float, float] | None = None
    python_max_rss_mb: float = 0.0


def zipf_sizes(n: int, projects: int, s: float) -> list[int]:
    """Project sizes ~ rank^-s summing to n, each at least 1, largest first."""
    weights = 1.0 / np.arange(1, projects + 1) ** s
    sizes = np.maximum(1, np.floor(weights / weights.sum() * n)).astype(int)
    sizes[0] += n - int(sizes.sum())  # the rounding's remainder goes to the largest
    return [int(x) for x in sizes]


def backend_peak_kb(pid: int) -> int | None:
    """Peak resident memory (VmHWM, shared buffers it touched included) of a server process, if it runs here."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def build_partial_indexes(url: URL, by_size: list[tuple[uuid.UUID, int]], over: int) -> list[IndexBuild]:
    """The store's partial index of every project above ``over`` episodes, largest first, each on a connection of
    its own (so each backend's peak memory is its own build's)."""
    built: list[IndexBuild] = []
    for project, rows in by_size:
        if rows <= over:
            continue
        conn = await asyncpg.connect(**connect_args(url))
        notices: list[str] = []
        # pgvector says so (a NOTICE) when the graph outgrows maintenance_work_mem and the build slows down.
        conn.add_log_listener(lambda _c, msg, into=notices: into.append(str(msg)))
        try:
            pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
            started = time.perf_counter()
            await conn.execute(create_index_sql(project))
            seconds = time.perf_counter() - started
            size = int(await conn.fetchval("SELECT pg_relation_size(CAST($1 AS regclass))", index_name(project)))
            built.append(IndexBuild(rows, seconds, size, backend_peak_kb(pid), notices))
        finally:
            await conn.close()
    return built


async def server_facts(url: URL) -> dict[str, str | int]:
    conn = await asyncpg.connect(**connect_args(url))
    try:
        facts: dict[str, str | int] = {}
        for name in ("maintenance_work_mem", "max_parallel_maintenance_workers", "shared_buffers"):
            facts[name] = str(await conn.fetchval(f"SHOW {name}"))
        for label, sql in (
            ("shared_hnsw_bytes", "SELECT pg_relation_size('episodes_embedding_hnsw')"),
            ("gin_bytes", "SELECT pg_relation_size('episodes_project_words')"),
            ("table_bytes", "SELECT pg_total_relation_size('episodes')"),
        ):
            facts[label] = int(await conn.fetchval(sql))
        facts["partial_indexes"] = int(
            await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE starts_with(indexname, $1)", INDEX_PREFIX)
        )
    finally:
        await conn.close()
    return facts


async def recall(url: URL, project: uuid.UUID, indexed: bool, queries: np.ndarray) -> float:
    """Recall@10 of the store's vector candidates for ``project`` against an exact scan of its vectors."""
    conn = await asyncpg.connect(**connect_args(url))
    await register_vector(conn)
    # The project id as a literal (a UUID's own text): the planner proves the partial index's predicate from it.
    where = f"project_id = '{project}' AND embedding IS NOT NULL"
    approx_sql = f"SELECT id FROM episodes WHERE {where} ORDER BY embedding <=> $1 LIMIT {STORE_POOL}"
    exact_sql = f"SELECT id FROM episodes WHERE {where} ORDER BY (embedding <=> $1) + 0 LIMIT 10"
    hits = 0
    try:
        await conn.execute(f"SET hnsw.ef_search = {STORE_EF_SEARCH}")
        if indexed:
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + approx_sql, queries[0]))
            assert index_name(project) in plan, plan
        for q in queries:
            exact = {r[0] for r in await conn.fetch(exact_sql, q)}
            approx = await conn.fetch(approx_sql if indexed else exact_sql, q)
            hits += len({r[0] for r in approx[:10]} & exact)
    finally:
        await conn.close()
    return hits / (10 * len(queries))


async def time_searches(
    store: PostgresStore, project: uuid.UUID, texts: list[str], vectors: np.ndarray
) -> dict[str, tuple[float, float, float]]:
    """p50 and p99 (ms) per mode over the queries after 20 warm-up, and the mean number of hits."""
    now = time.time()
    n = len(texts)
    out: dict[str, tuple[float, float, float]] = {}
    for mode in MODES:
        samples: list[float] = []
        found = 0
        for i in range(n + 20):
            qv = [float(x) for x in vectors[i % n]]
            started = time.perf_counter()
            hits = await store.search_episodes(project, texts[i % n], qv, EpisodeFilter(), 10, now, mode)
            elapsed = (time.perf_counter() - started) * 1000
            if i >= 20:
                samples.append(elapsed)
                found += len(hits)
        out[mode] = (pct(samples, 0.5), pct(samples, 0.99), found / n)
    return out


async def search_plan(store: PostgresStore, project: uuid.UUID, query: str, vector: np.ndarray | None) -> list[str]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the store's text search (``vector`` None) or hybrid search, on one of its
    own connections (its custom plans, its ``hnsw.ef_search``, set as the search sets it): where the time goes."""
    tsq = ts_query(query)
    assert tsq is not None
    qv = None if vector is None else vector_text([float(x) for x in vector])
    sql, params, ef_search = search_statement(
        project, tsq, qv, EpisodeFilter(), 10, time.time(), None, exact_scan_max=store.exact_scan_max
    )
    async with store._write() as conn:
        await conn.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef_search)})
        found = await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params)
        return [str(r[0]) for r in found]


async def bench_projects(
    admin: URL, run: Run, n_queries: int, keep: bool, corpus: Corpus, load: Loader, dim: int, topics: int
) -> Run:
    """Load, build, search and measure recall for ``run`` (its sizes set); the run, filled in."""
    ids = [uuid.uuid4() for _ in range(run.projects)]
    owner_index = corpus.rng.permutation(np.repeat(np.arange(run.projects), run.sizes))
    agents = [uuid.uuid4() for _ in range(100)]
    async with bench_database(admin, embedding_dimension=dim, keep=keep) as url:
        run.loaded = await load(url, [ids[int(k)] for k in owner_index], corpus, agents)
        del owner_index
        store = PostgresStore(as_string(url), embedding_dimension=dim, timeout_seconds=60)
        await store.start()
        try:
            over = run.exact_scan_max = store.exact_scan_max
            started = time.perf_counter()
            run.built = await build_partial_indexes(url, list(zip(ids, run.sizes, strict=True)), over)
            run.partial_build_s = time.perf_counter() - started
            missing = await store.build_vector_indexes()
            assert missing == [], f"the store still finds {len(missing)} project(s) to index"
            run.server = await server_facts(url)
            picks = {"largest": 0, "median": run.projects // 2, "small": min(run.projects - 1, run.projects * 9 // 10)}
            for label, rank in picks.items():
                q_topics = corpus.rng.integers(0, topics, size=n_queries)
                q_vectors = corpus.vectors(q_topics, noise=0.6)
                q_texts = [corpus.text(int(t), 3, 1) for t in q_topics]
                indexed = run.sizes[rank] > over
                run.picks[label] = Pick(
                    rank + 1,
                    run.sizes[rank],
                    "own HNSW index" if indexed else "exact scan",
                    await time_searches(store, ids[rank], q_texts, q_vectors),
                    await recall(url, ids[rank], indexed, q_vectors[:RECALL_QUERIES]),
                    await search_plan(store, ids[rank], q_texts[0], None),
                    await search_plan(store, ids[rank], q_texts[0], q_vectors[0]) if label == "largest" else [],
                )
            # Every indexed project's recall (fewer queries each): the worst one tests the claim.
            recalls = [
                await recall(url, project, True, corpus.vectors(corpus.rng.integers(0, topics, size=30), noise=0.6))
                for project, rows in zip(ids, run.sizes, strict=True)
                if rows > over
            ]
            run.indexed_recall = (min(recalls), float(np.mean(recalls))) if recalls else None
        finally:
            await store.close()
    run.python_max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return run


def report(r: Run, n_queries: int) -> None:
    mb = 1024 * 1024
    partial_bytes = sum(b.size for b in r.built)
    peaks = [b.peak_kb for b in r.built if b.peak_kb is not None]
    sizes, facts, loaded = r.sizes, r.server, r.loaded
    print(
        f"\n{r.n:,} episodes over {r.projects} projects (Zipf s={r.zipf}: largest {sizes[0]:,}, "
        f"median {sizes[len(sizes) // 2]:,}, smallest {sizes[-1]:,}); exact-scan size {r.exact_scan_max:,}; "
        f"{len(r.built)} projects above it, {facts['partial_indexes']} partial indexes\n"
    )
    print("| step | time | size | notices |")
    print("|---|---:|---:|---|")
    print(f"| COPY (binary) | {loaded['copy_s']:.1f} s | table + indexes {int(facts['table_bytes']) / mb:,.0f} MB | |")
    shared = int(facts["shared_hnsw_bytes"]) / mb
    print(f"| shared HNSW (all rows) | {loaded['hnsw_build_s']:.1f} s | {shared:,.0f} MB | {loaded['hnsw_notices']} |")
    print(f"| GIN (full text) | {loaded['gin_build_s']:.1f} s | {int(facts['gin_bytes']) / mb:,.0f} MB | |")
    print(
        f"| {len(r.built)} partial HNSW (the store's statement, one at a time) | {r.partial_build_s:.1f} s "
        f"| {partial_bytes / mb:,.0f} MB | |"
    )
    peak = f"{max(peaks) / 1024:,.0f} MB" if peaks else "n/a (server not local)"
    print(
        f"\nmaintenance_work_mem {facts['maintenance_work_mem']}, max_parallel_maintenance_workers "
        f"{facts['max_parallel_maintenance_workers']}, shared_buffers {facts['shared_buffers']}; peak resident "
        f"memory of a building backend {peak} (VmHWM, touched shared buffers included); benchmark process max RSS "
        f"{r.python_max_rss_mb:,.0f} MB"
    )
    print("\n| partial index | rows | build | size | notices |")
    print("|---:|---:|---:|---:|---|")
    for i, b in enumerate(r.built):
        note = "; ".join(b.notices)[:100]
        print(f"| {i + 1} | {b.rows:,} | {b.seconds:.2f} s | {b.size / mb:.1f} MB | {note} |")
    print(f"\nsearch_episodes, limit 10, {n_queries} queries after 20 warm-up: p50 / p99 ms (mean hits)\n")
    print("| project | episodes | vectors via | " + " | ".join(MODES) + " | recall@10 |")
    print("|---|---:|---|" + "---:|" * (len(MODES) + 1))
    for label, p in r.picks.items():
        cells = [f"{p.times[m][0]:.2f} / {p.times[m][1]:.2f} ({p.times[m][2]:.1f})" for m in MODES]
        print(f"| {label} (rank {p.rank}) | {p.episodes:,} | {p.path} | " + " | ".join(cells) + f" | {p.recall:.3f} |")
    if r.indexed_recall is not None:
        low, mean = r.indexed_recall
        print(f"\nrecall@10 over every indexed project (30 queries each): min {low:.3f}, mean {mean:.3f}")
    # The plan's scans, row counts, buffers and times: enough to see where a text search's time goes.
    keep = ("Scan", "Rows Removed", "Heap Blocks", "Buffers", "Execution Time", "Recheck")
    for label, p in r.picks.items():
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of one text search, {label} project:\n```")
        print("\n".join(line for line in p.text_plan if any(k in line for k in keep)))
        print("```")
    # The hybrid search of the largest project, whole: where the time of each leg and of the fusion goes.
    for label, p in r.picks.items():
        if p.hybrid_plan:
            print(f"\nEXPLAIN (ANALYZE, BUFFERS) of one hybrid search, {label} project:\n```")
            print("\n".join(p.hybrid_plan))
            print("```")
