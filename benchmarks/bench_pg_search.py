"""Episode recall on Postgres + pgvector: latency of ``search_episodes`` and recall of its HNSW candidates.

Loads N synthetic episodes into one project (one project holding everything is the case where the vector
index, not a filter, does the work), with 384-dimensional vectors that are clustered like sentence embeddings
(a shared mean direction, topics, sub-topics and noise: unrelated episodes score a cosine of ~0.1-0.3, same-topic
ones ~0.6-0.8) and descriptions drawn from each topic's words plus common words. Loading is a binary COPY with the
indexes dropped; the HNSW (m=16, ef_construction=64) and GIN indexes are built afterwards and timed.

Then, for queries near a topic, through ``PostgresStore.search_episodes`` (the path a tool call takes):
p50/p99 per mode (hybrid, vector, text, hybrid with a selective agent filter, hybrid with an outcome filter),
and recall@10 of the HNSW candidates against an exact scan.

    python benchmarks/bench_pg_search.py [--sizes 10000,100000] [--queries 300] [--url postgresql://...]

With ``--projects N`` (``--episodes`` is ``--sizes``' other name) the episodes are spread over N projects of
Zipf-skewed sizes, each large one with the store's own partial HNSW index: see ``pg_projects.py``.

    python benchmarks/bench_pg_search.py --episodes 100000 --projects 100
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg
import numpy as np
from pg_common import add_arguments, as_string, bench_database, connect_args, pct, server_url
from pg_projects import Run, bench_projects, report, zipf_sizes
from pgvector.asyncpg import register_vector

from mcp_memory.models import Outcome
from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.postgres.search import vector_text
from mcp_memory.stores.postgres.store import PostgresStore

DIM = 384
TOPICS = 400
SUBTOPICS = 8
TEXT_INDEX = "episodes_project_words"
"""The GIN index of the episodes' words keyed by project (migration 0009)."""
SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ro", "vi", "de", "po", "xu", "ba", "gi", "fe", "zo", "ru"]
COMMON = (
    "fix add update refactor test deploy review migrate debug document service api database cache queue "
    "config build release error timeout request response user data model job worker client server"
).split()


def words(rng: np.random.Generator, n: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES, size=rng.integers(3, 5))) for _ in range(n)]


class Corpus:
    """Clustered vectors and topic-worded texts, reproducible from a seed."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.mean = self._unit(self.rng.normal(size=DIM))
        self.topics = self._unit(self.rng.normal(size=(TOPICS, DIM)))
        self.subtopics = self._unit(self.rng.normal(size=(TOPICS, SUBTOPICS, DIM)))
        self.vocab = [words(self.rng, 8) for _ in range(TOPICS)]

    @staticmethod
    def _unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    def vectors(self, topic: np.ndarray, noise: float) -> np.ndarray:
        sub = self.rng.integers(0, SUBTOPICS, size=len(topic))
        out = np.empty((len(topic), DIM), dtype=np.float32)
        # In chunks: the float64 temporaries of a million rows at once would take ~10 GB. The draws come in the
        # same order as in one piece, so the vectors are the same.
        for i in range(0, len(topic), 50_000):
            t, s = topic[i : i + 50_000], sub[i : i + 50_000]
            v = (
                0.45 * self.mean
                + 0.75 * self.topics[t]
                + 0.35 * self.subtopics[t, s]
                + noise * self.rng.normal(size=(len(t), DIM)) / np.sqrt(DIM)
            )
            out[i : i + 50_000] = self._unit(v)
        return out

    def text(self, topic: int, n_topic: int, n_common: int) -> str:
        picked = list(self.rng.choice(self.vocab[topic], size=n_topic, replace=False))
        picked += list(self.rng.choice(COMMON, size=n_common))
        self.rng.shuffle(picked)
        return " ".join(picked)


async def load(url: Any, owners: list[uuid.UUID], corpus: Corpus, agents: list[uuid.UUID]) -> dict[str, float | str]:
    """COPY one episode per entry of ``owners`` (its project), then build the shared HNSW and the GIN indexes."""
    n = len(owners)
    conn = await asyncpg.connect(**connect_args(url))
    await register_vector(conn)
    notices: list[str] = []
    # pgvector says so (a NOTICE) when the graph outgrows maintenance_work_mem and the build slows down.
    conn.add_log_listener(lambda _c, msg: notices.append(str(msg)))
    timings: dict[str, float | str] = {}
    try:
        await conn.execute("DROP INDEX episodes_embedding_hnsw")
        # The full-text index as the migrations define it, read back so that the benchmark builds the store's own.
        text_index = await conn.fetchval(f"SELECT pg_get_indexdef(CAST('{TEXT_INDEX}' AS regclass))")
        await conn.execute(f"DROP INDEX {TEXT_INDEX}")
        topics = corpus.rng.integers(0, TOPICS, size=n)
        vectors = corpus.vectors(topics, noise=0.6)
        now = datetime.now(UTC)
        outcomes = [o.value for o in Outcome]
        records = [
            (
                uuid.uuid4(),
                owners[i],
                agents[i % len(agents)],
                "coding",
                corpus.text(int(topics[i]), 4, 5),
                outcomes[i % 3],
                float(corpus.rng.random()),
                now - timedelta(days=float(corpus.rng.random() * 180)),
                vectors[i],
            )
            for i in range(n)
        ]
        columns = [
            "episode_id",
            "project_id",
            "agent_instance_id",
            "task_type",
            "task_description",
            "outcome",
            "importance_score",
            "created_at",
            "embedding",
        ]
        started = time.perf_counter()
        for i in range(0, n, 10_000):
            await conn.copy_records_to_table("episodes", records=records[i : i + 10_000], columns=columns)
        timings["copy_s"] = time.perf_counter() - started
        # Room for the whole graph: 2 GB holds 100,000 vectors many times over; a million need about 4 GB.
        await conn.execute(f"SET maintenance_work_mem = '{'2GB' if n <= 500_000 else '4GB'}'")
        await conn.execute("SET max_parallel_maintenance_workers = 1")
        started = time.perf_counter()
        await conn.execute(
            "CREATE INDEX episodes_embedding_hnsw ON episodes USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        timings["hnsw_build_s"] = time.perf_counter() - started
        timings["hnsw_notices"] = "; ".join(notices)
        started = time.perf_counter()
        await conn.execute(text_index)
        timings["gin_build_s"] = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE episodes")
        timings["shared_buffers"] = await conn.fetchval("SHOW shared_buffers")
        try:  # write the loaded pages out now, not in the background while queries are timed
            await conn.execute("CHECKPOINT")
        except asyncpg.PostgresError:
            pass
    finally:
        await conn.close()
    return timings


async def recall_at_10(url: Any, project: uuid.UUID, queries: np.ndarray, ef_search: int, pool: int) -> float:
    """Share of the exact top 10 (by cosine) among the top 10 of the store's HNSW candidates (LIMIT pool)."""
    conn = await asyncpg.connect(**connect_args(url))
    await register_vector(conn)
    hits = 0
    try:
        await conn.execute(f"SET hnsw.ef_search = {ef_search}")
        plan = await conn.fetch(
            "EXPLAIN SELECT id FROM episodes WHERE project_id = $1 AND embedding IS NOT NULL "
            "ORDER BY embedding <=> $2 LIMIT $3",
            project,
            queries[0],
            pool,
        )
        assert any("episodes_embedding_hnsw" in r[0] for r in plan), "the HNSW index is not used"
        for q in queries:
            approx = await conn.fetch(
                "SELECT id FROM episodes WHERE project_id = $1 AND embedding IS NOT NULL "
                "ORDER BY embedding <=> $2 LIMIT $3",
                project,
                q,
                pool,
            )
            exact = await conn.fetch(
                "SELECT id FROM episodes WHERE project_id = $1 AND embedding IS NOT NULL "
                "ORDER BY (embedding <=> $2) + 0 LIMIT 10",
                project,
                q,
            )
            hits += len({r[0] for r in approx[:10]} & {r[0] for r in exact})
    finally:
        await conn.close()
    return hits / (10 * len(queries))


async def bench_size(admin: Any, n: int, n_queries: int, keep: bool) -> dict[str, Any]:
    corpus = Corpus()
    project = uuid.uuid4()
    agents = [uuid.uuid4() for _ in range(100)]  # one agent: 1% of the episodes
    async with bench_database(admin, embedding_dimension=DIM, keep=keep) as url:
        timings = await load(url, [project] * n, corpus, agents)
        q_topics = corpus.rng.integers(0, TOPICS, size=n_queries)
        q_vectors = corpus.vectors(q_topics, noise=0.6)
        q_texts = [corpus.text(int(t), 3, 1) for t in q_topics]
        store = PostgresStore(as_string(url), embedding_dimension=DIM, timeout_seconds=30)
        await store.start()
        results: dict[str, Any] = {"n": n, **timings}
        try:
            modes: dict[str, tuple[str, EpisodeFilter]] = {
                "hybrid": ("hybrid", EpisodeFilter()),
                "vector": ("vector", EpisodeFilter()),
                "text": ("text", EpisodeFilter()),
                "hybrid, agent filter (1%)": ("hybrid", EpisodeFilter(agent_instance_id=agents[0])),
                "hybrid, outcome filter (33%)": ("hybrid", EpisodeFilter(outcome=Outcome.FAILURE)),
            }
            now = time.time()
            for label, (mode, flt) in modes.items():
                samples: list[float] = []
                found = 0
                for i in range(n_queries + 20):
                    qv = [float(x) for x in q_vectors[i % n_queries]]
                    started = time.perf_counter()
                    hits = await store.search_episodes(
                        project,
                        q_texts[i % n_queries],
                        qv,
                        flt,
                        10,
                        now,
                        mode,  # type: ignore[arg-type]
                    )
                    elapsed = (time.perf_counter() - started) * 1000
                    if i >= 20:
                        samples.append(elapsed)
                        found += len(hits)
                results[label] = (pct(samples, 0.5), pct(samples, 0.99), found / n_queries)
        finally:
            await store.close()
        for ef, pool in ((40, 10), (40, 40), (64, 40), (100, 40)):
            label = f"recall@10 (ef_search={ef}, LIMIT {pool})"
            label += " = the store's setting" if (ef, pool) == (100, 40) else ""
            label += " = pgvector's default" if (ef, pool) == (40, 10) else ""
            results[label] = await recall_at_10(url, project, q_vectors[:100], ef, pool)
        _ = vector_text  # the store's own vector text form is what search sends
    return results


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average before: {load_average()}", flush=True)
    if args.projects > 1:
        admin, _server = server_url(args.url, args.shared_buffers, args.maintenance_work_mem)
        for n in sizes:
            run = Run(n, args.projects, args.zipf, zipf_sizes(n, args.projects, args.zipf))
            started = time.perf_counter()
            await bench_projects(admin, run, args.queries, args.keep, Corpus(), load, DIM, TOPICS)
            report(run, args.queries)
            print(f"\nrun: {time.perf_counter() - started:.0f} s; load average after: {load_average()}", flush=True)
        return
    admin, server = server_url(args.url, args.shared_buffers)
    rows = [await bench_size(admin, n, args.queries, args.keep) for n in sizes]
    print(
        f"\nsearch_episodes on Postgres {'(pgserver)' if server else ''}, {DIM}-dim vectors, limit 10, "
        f"{args.queries} queries after 20 warm-up\n"
    )
    print("| episodes | COPY | HNSW build | GIN build | shared_buffers |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['copy_s']:.1f} s | {r['hnsw_build_s']:.1f} s | {r['gin_build_s']:.1f} s "
            f"| {r['shared_buffers']} |"
        )
    labels = [k for k in rows[0] if isinstance(rows[0][k], tuple)]
    print("\n| mode | " + " | ".join(f"{r['n']:,}: p50 / p99 (ms)" for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for label in labels:
        cells = [f"{r[label][0]:.2f} / {r[label][1]:.2f} ({r[label][2]:.1f} hits)" for r in rows]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n| recall@10 vs exact scan | " + " | ".join(f"{r['n']:,}" for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for label in [k for k in rows[0] if k.startswith("recall")]:
        print(f"| {label.removeprefix('recall@10 ')} | " + " | ".join(f"{r[label]:.3f}" for r in rows) + " |")
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", "--episodes", dest="sizes", default="10000,100000", help="episodes, per run")
    parser.add_argument(
        "--projects", type=int, default=1, help="spread the episodes over this many projects (see pg_projects.py)"
    )
    parser.add_argument("--zipf", type=float, default=1.1, help="with --projects: project size ~ rank^-zipf")
    parser.add_argument(
        "--maintenance-work-mem",
        default="1GB",
        help="with --projects, pgserver only: the server's maintenance_work_mem, which the store's index builds "
        "run with (Postgres' default, 64MB, is smaller than the graph of a large project, built far more slowly)",
    )
    parser.add_argument("--queries", type=int, default=300)
    add_arguments(parser)
    anyio.run(main, parser.parse_args())
