"""Full-text episode search on the embedded SQLite store: latency of ``search_episodes`` and of ``add_episode``.

One project holds ``--size`` episodes (default 10,000) and ``--others`` other projects (default 10) hold
``--other-size`` each (default 2,000), all worded from the same vocabulary: per-project statistics mean the other
projects' rows must cost this project's search nothing but index depth. Episode texts are drawn from a topic's
words plus common words (task description, outcome details, two lessons: ~30 tokens); queries name three words of
a topic and one common word, like an agent's query, and three more sets name only common words, 2, 4 and 10 of them
(the worst cases: each of the 30 common words is in ~45% of the project's episodes; ranked exhaustively, every
episode holding one of them is scored, that is nearly all of them).

Everything goes through ``SqliteStore`` (the path a tool call takes); loading is ``add_episode`` one by one, and
its latency is reported too (the full-text index is written in the same transaction), or with ``--bulk`` the
store's batch load (``load_episodes``, 10,000 a transaction: the same rows and index, minutes faster at 100,000).

With ``--dim N`` every episode also gets an N-dimensional vector (its topic's direction plus as much noise: texts
of one topic are near, not equal), queries get their topic's direction plus noise, and hybrid and vector-only
cases are measured too, each with its recall@10 against an exact baseline computed in the same run: BM25 from the
store's own text ranking, cosines by a float64 brute-force scan of all the project's vectors held by this script,
fused and blended as ``search_episodes`` does (``mcp_memory.ranking``). The first vector search of the project
(which builds its in-memory matrix) and the first after an append are reported apart.

    python benchmarks/bench_sqlite_search.py [--size 10000] [--others 10] [--other-size 2000] [--queries 300]
    python benchmarks/bench_sqlite_search.py --size 100000  # docs/benchmarks.md: "SQLite full text"
    python benchmarks/bench_sqlite_search.py --size 100000 --dim 384 --bulk  # docs/benchmarks.md: "SQLite hybrid"
"""

from __future__ import annotations

import argparse
import functools
import gc
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt

from mcp_memory.models import Episode, Outcome
from mcp_memory.ranking import TEXT_WEIGHT, VECTOR_WEIGHT, blend, fuse, relative, similarities
from mcp_memory.stores.ports import EpisodeFilter, SearchMode
from mcp_memory.stores.sql.queries import filter_clause
from mcp_memory.stores.sql.rules import candidate_pool
from mcp_memory.stores.sqlite.fulltext import bm25_ranking, load_episodes
from mcp_memory.stores.sqlite.statements import DIALECT
from mcp_memory.stores.sqlite.store import SqliteStore

TOPICS = 400
SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ro", "vi", "de", "po", "xu", "ba", "gi", "fe", "zo", "ru"]
COMMON = (
    "fix add update refactor test deploy review migrate debug document service api database cache queue "
    "config build release error timeout request response user data model job worker client server"
).split()
TASK_TYPES = ["coding", "deploy", "incident", "research", "support", "data_migration"]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Corpus:
    """Topic-worded texts, reproducible from a seed."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.vocab = [[self._word() for _ in range(8)] for _ in range(TOPICS)]

    def _word(self) -> str:
        return "".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(3, 4)))

    def text(self, topic: int, n_topic: int, n_common: int) -> str:
        picked = self.rng.sample(self.vocab[topic], n_topic) + [self.rng.choice(COMMON) for _ in range(n_common)]
        self.rng.shuffle(picked)
        return " ".join(picked)

    def episode(self, project: uuid.UUID, agent: uuid.UUID, now: datetime, topic: int | None = None) -> Episode:
        topic = self.rng.randrange(TOPICS) if topic is None else topic
        return Episode(
            episode_id=uuid.uuid4(),
            project_id=project,
            agent_instance_id=agent,
            task_type=self.rng.choice(TASK_TYPES),
            task_description=self.text(topic, 4, 5),
            outcome=self.rng.choice(list(Outcome)),
            outcome_details=self.text(topic, 2, 6),
            lessons_learned=[self.text(topic, 2, 3), self.text(topic, 1, 4)],
            importance_score=self.rng.random(),
            created_at=now - timedelta(days=self.rng.random() * 180),
        )


MODEL = "bench"
BULK = 10_000


class Vectors:
    """Topic directions and noisy vectors around them, reproducible from a seed (``dim`` 0: no vectors)."""

    def __init__(self, dim: int, seed: int = 11) -> None:
        self.dim = dim
        self.rng = np.random.default_rng(seed)
        self.topics = self.rng.standard_normal((TOPICS, dim)) if dim else np.empty((TOPICS, 0))

    def around(self, topics: list[int]) -> npt.NDArray[np.float64]:
        """One vector per topic given: the topic's direction plus noise of the same norm (cosine ~0.7 to it)."""
        return self.topics[topics] + self.rng.standard_normal((len(topics), self.dim))


async def load(
    store: SqliteStore,
    corpus: Corpus,
    vectors: Vectors,
    project: uuid.UUID,
    n: int,
    now: datetime,
    bulk: bool,
    kept: list[tuple[Episode, npt.NDArray[np.float64] | None]] | None = None,
) -> list[float]:
    """``n`` episodes into ``project`` (kept in ``kept`` if given); add_episode's latencies unless ``bulk``."""
    agent = uuid.uuid4()
    samples = []
    for start in range(0, n, BULK if bulk else 1):
        topics = [corpus.rng.randrange(TOPICS) for _ in range(min(n - start, BULK if bulk else 1))]
        episodes = [corpus.episode(project, agent, now, topic) for topic in topics]
        vecs: list[npt.NDArray[np.float64] | None] = (
            list(vectors.around(topics)) if vectors.dim else [None] * len(topics)
        )
        if kept is not None:
            kept.extend(zip(episodes, vecs, strict=True))
        if bulk:
            lists = [None if v is None else [float(x) for x in v] for v in vecs]
            await store._write_direct(
                functools.partial(load_episodes, episodes=episodes, embeddings=lists, model=MODEL)
            )
            continue
        vec = vecs[0]
        started = time.perf_counter()
        await store.add_episode(episodes[0], None if vec is None else [float(x) for x in vec], MODEL)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


class Exact:
    """The exact hybrid ranking of one project, for recall: the store's BM25 and a float64 brute-force cosine scan
    over every vector of the project, fused and blended as ``search_episodes`` does."""

    def __init__(self, store: SqliteStore, project: uuid.UUID, kept: list[tuple[Episode, Any]], now: float) -> None:
        self.store, self.project, self.now = store, project, now
        self.episodes = [ep for ep, _ in kept]
        # The vectors as stored (unit length, float32), scored in float64.
        matrix = np.array([v for _, v in kept], dtype=np.float64)
        self.matrix = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
        self.ids = [str(ep.episode_id) for ep in self.episodes]
        self.by_id = {str(ep.episode_id): ep for ep in self.episodes}
        self.outcomes = np.array([ep.outcome.value for ep in self.episodes])

    async def top(
        self, query: str, vector: npt.NDArray[np.float64] | None, flt: EpisodeFilter, limit: int
    ) -> list[str]:
        pool = candidate_pool(limit)
        extra, fparams = filter_clause(DIALECT, flt, prefix="e.")
        text_scores: dict[str, float] = {}
        if query:
            project = str(self.project)
            async with self.store._read(statements=2) as conn:
                bm25, ceiling = await self.store._on_thread(
                    conn, lambda db: bm25_ranking(db, project, query, extra, fparams, pool)
                )
            text_scores = relative(bm25, ceiling)
        vector_scores: dict[str, float] = {}
        if vector is not None:
            cosines = self.matrix @ (vector / np.linalg.norm(vector))
            if flt.outcome is not None:
                cosines = np.where(self.outcomes == flt.outcome.value, cosines, -np.inf)
            best = [int(i) for i in np.argsort(-cosines, kind="stable")[:pool] if cosines[i] > -np.inf]
            vector_scores = similarities({self.ids[i]: float(cosines[i]) for i in best})
        fused = fuse([text_scores, vector_scores], [TEXT_WEIGHT, VECTOR_WEIGHT])
        scored = {
            eid: blend(f, self.by_id[eid].importance_score, self.by_id[eid].created_at.timestamp(), self.now)
            for eid, f in fused.items()
        }
        return sorted(scored, key=lambda e: -round(scored[e], 6))[:limit]


Case = tuple[list[str], list[npt.NDArray[np.float64]] | None, EpisodeFilter, SearchMode]


async def measure(
    store: SqliteStore, project: uuid.UUID, case: Case, now: float, exact: Exact | None
) -> tuple[float, float, float, float, float | None]:
    """p50 and p99 (ms) of ``search_episodes`` over the case's queries after 20 warm-up, the p50 of the CPU time it
    took (all of this process's threads: what the call costs without waiting for a core), mean hits, and recall@10
    against the exact ranking (None without vectors)."""
    queries, vectors, flt, mode = case
    samples: list[float] = []
    cpu: list[float] = []
    found = 0
    recalls: list[float] = []
    answers: list[tuple[str, npt.NDArray[np.float64], set[str]]] = []
    for i in range(len(queries) + 20):
        query = queries[i % len(queries)]
        vector = None if vectors is None else vectors[i % len(queries)]
        embedding = None if vector is None else [float(x) for x in vector]
        started, cpu_started = time.perf_counter(), time.process_time()
        hits = await store.search_episodes(project, query, embedding, flt, 10, now, mode, MODEL)
        elapsed, cpu_ms = (time.perf_counter() - started) * 1000, (time.process_time() - cpu_started) * 1000
        if i < 20:
            continue
        samples.append(elapsed)
        cpu.append(cpu_ms)
        found += len(hits)
        if vector is not None:
            answers.append((query, vector, {str(h.episode_id) for h in hits}))
    # After the timed calls, so that the baseline's scans do not slow them down.
    for query, vector, got in answers:
        if exact is None:
            break
        want = await exact.top(query if mode != "vector" else "", vector, flt, 10)
        recalls.append(len(got & set(want)) / max(1, len(want)))
    recall = sum(recalls) / len(recalls) if recalls else None
    return pct(samples, 0.5), pct(samples, 0.99), pct(cpu, 0.5), found / len(queries), recall


async def run(args: argparse.Namespace) -> None:
    corpus = Corpus()
    vectors = Vectors(args.dim)
    now = datetime.now(UTC)
    project = uuid.uuid4()
    kept: list[tuple[Episode, Any]] = []
    firsts: dict[str, float] = {}
    matrix_bytes = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(f"sqlite+aiosqlite:///{tmp}/bench.db", synchronous=args.synchronous)
        await store.start()
        try:
            started = time.perf_counter()
            others = [uuid.uuid4() for _ in range(args.others)]
            # Interleaved, as projects would write: half of the others before this project, half after.
            for other in others[: args.others // 2]:
                await load(store, corpus, vectors, other, args.other_size, now, args.bulk)
            inserts = await load(store, corpus, vectors, project, args.size, now, args.bulk, kept)
            for other in others[args.others // 2 :]:
                await load(store, corpus, vectors, other, args.other_size, now, args.bulk)
            load_s = time.perf_counter() - started
            gc.freeze()
            topics = [corpus.rng.randrange(TOPICS) for _ in range(args.queries)]
            topical = [corpus.text(topic, 3, 1) for topic in topics]
            cases: dict[str, Case] = {
                "text, topic words + 1 common word": (topical, None, EpisodeFilter(), "text"),
                "text, same, outcome filter (33%)": (topical, None, EpisodeFilter(outcome=Outcome.FAILURE), "text"),
            }
            for n in (2, 4, 10):
                common = [" ".join(corpus.rng.sample(COMMON, n)) for _ in range(args.queries)]
                cases[f"text, {n} common words"] = (common, None, EpisodeFilter(), "text")
            exact = None
            if args.dim:
                qvecs = list(vectors.around(topics))
                firsts, matrix_bytes = await first_searches(store, corpus, vectors, project, qvecs[0], now, kept)
                exact = Exact(store, project, kept, now.timestamp())
                failure = EpisodeFilter(outcome=Outcome.FAILURE)
                cases["hybrid, topic words + 1 common word"] = (topical, qvecs, EpisodeFilter(), "hybrid")
                cases["hybrid, same, outcome filter (33%)"] = (topical, qvecs, failure, "hybrid")
                cases["vector only"] = (topical, qvecs, EpisodeFilter(), "vector")
                cases["vector only, outcome filter (33%)"] = (topical, qvecs, failure, "vector")
            results = {
                label: await measure(store, project, case, now.timestamp(), exact) for label, case in cases.items()
            }
        finally:
            await store.close()
    total = args.size + args.others * args.other_size
    vectors_note = f", {args.dim}-dimensional vectors" if args.dim else ""
    print(
        f"\nsearch_episodes on SQLite, limit 10: {args.size:,} episodes in the searched project, "
        f"{args.others} other projects of {args.other_size:,} ({total:,} in all{vectors_note}, "
        f"{'bulk-' if args.bulk else ''}loaded in {load_s:.0f} s, synchronous={args.synchronous}); "
        f"{args.queries} queries after 20 warm-up\n"
    )
    print("| case | p50 (ms) | p99 (ms) | CPU p50 (ms) | hits | recall@10 of exact |\n|---|---:|---:|---:|---:|---:|")
    for label, (p50, p99, cpu, hits, recall) in results.items():
        shown = "" if recall is None else f"{recall:.3f}"
        print(f"| {label} | {p50:.2f} | {p99:.2f} | {cpu:.2f} | {hits:.1f} | {shown} |")
    for label, ms in firsts.items():
        print(f"| {label} | {ms:.2f} | | | | |")
    if matrix_bytes:
        print(f"\nThe project's matrix in memory: {matrix_bytes / 2**20:.0f} MiB.")
    if inserts:
        label = f"add_episode (the searched project's {args.size:,})"
        print(f"| {label} | {pct(inserts, 0.5):.2f} | {pct(inserts, 0.99):.2f} | | | |")


async def first_searches(
    store: SqliteStore,
    corpus: Corpus,
    vectors: Vectors,
    project: uuid.UUID,
    query: npt.NDArray[np.float64],
    now: datetime,
    kept: list[tuple[Episode, Any]],
) -> tuple[dict[str, float], int]:
    """Single timings (ms) of the vector searches that do more than search: the project's first (its matrix is
    built from the file), and the first after an episode is added (one row appended)."""
    embedding = [float(x) for x in query]

    async def once() -> float:
        started = time.perf_counter()
        await store.search_episodes(project, "", embedding, EpisodeFilter(), 10, now.timestamp(), "vector", MODEL)
        return (time.perf_counter() - started) * 1000

    store.vectors.invalidate()
    timings = {"vector search building the project's matrix (once)": await once()}
    await load(store, corpus, vectors, project, 1, now, bulk=False, kept=kept)
    timings["vector search after one episode added (appends it)"] = await once()
    return timings, store.vectors.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--others", type=int, default=10)
    parser.add_argument("--other-size", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--dim", type=int, default=0, help="vector dimension (0: text only)")
    parser.add_argument("--bulk", action="store_true", help="load with load_episodes, 10,000 a transaction")
    args: Any = parser.parse_args()
    anyio.run(run, args)


if __name__ == "__main__":
    main()
