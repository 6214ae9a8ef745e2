"""Full-text episode search on the embedded SQLite store: latency of ``search_episodes`` and of ``add_episode``.

One project holds ``--size`` episodes (default 10,000) and ``--others`` other projects (default 10) hold
``--other-size`` each (default 2,000), all worded from the same vocabulary: per-project statistics mean the other
projects' rows must cost this project's search nothing but index depth. Episode texts are drawn from a topic's
words plus common words (task description, outcome details, two lessons: ~30 tokens); queries name three words of
a topic and one common word, like an agent's query, and three more sets name only common words, 2, 4 and 10 of them
(the worst cases: each of the 30 common words is in ~45% of the project's episodes; ranked exhaustively, every
episode holding one of them is scored, that is nearly all of them).

Everything goes through ``SqliteStore`` (the path a tool call takes); loading is ``add_episode`` one by one, and
its latency is reported too (the full-text index is written in the same transaction).

    python benchmarks/bench_sqlite_search.py [--size 10000] [--others 10] [--other-size 2000] [--queries 300]
    python benchmarks/bench_sqlite_search.py --size 100000  # docs/benchmarks.md: "SQLite full text"
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from mcp_memory.models import Episode, Outcome
from mcp_memory.stores.ports import EpisodeFilter
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

    def episode(self, project: uuid.UUID, agent: uuid.UUID, now: datetime) -> Episode:
        topic = self.rng.randrange(TOPICS)
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


async def load(store: SqliteStore, corpus: Corpus, project: uuid.UUID, n: int, now: datetime) -> list[float]:
    agent = uuid.uuid4()
    samples = []
    for _ in range(n):
        episode = corpus.episode(project, agent, now)
        started = time.perf_counter()
        await store.add_episode(episode, None)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def run(args: argparse.Namespace) -> None:
    corpus = Corpus()
    now = datetime.now(UTC)
    project = uuid.uuid4()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(f"sqlite+aiosqlite:///{tmp}/bench.db", synchronous=args.synchronous)
        await store.start()
        try:
            started = time.perf_counter()
            others = [uuid.uuid4() for _ in range(args.others)]
            # Interleaved, as projects would write: half of the others before this project, half after.
            for other in others[: args.others // 2]:
                await load(store, corpus, other, args.other_size, now)
            inserts = await load(store, corpus, project, args.size, now)
            for other in others[args.others // 2 :]:
                await load(store, corpus, other, args.other_size, now)
            load_s = time.perf_counter() - started
            gc.freeze()
            topical = [corpus.text(corpus.rng.randrange(TOPICS), 3, 1) for _ in range(args.queries)]
            cases: dict[str, tuple[list[str], EpisodeFilter]] = {
                "text, topic words + 1 common word": (topical, EpisodeFilter()),
                "text, same, outcome filter (33%)": (topical, EpisodeFilter(outcome=Outcome.FAILURE)),
            }
            for n in (2, 4, 10):
                common = [" ".join(corpus.rng.sample(COMMON, n)) for _ in range(args.queries)]
                cases[f"text, {n} common words"] = (common, EpisodeFilter())
            results: dict[str, tuple[float, float, float]] = {}
            for label, (queries, flt) in cases.items():
                samples: list[float] = []
                found = 0
                for i in range(len(queries) + 20):
                    started = time.perf_counter()
                    hits = await store.search_episodes(
                        project, queries[i % len(queries)], None, flt, 10, now.timestamp(), "text"
                    )
                    elapsed = (time.perf_counter() - started) * 1000
                    if i >= 20:
                        samples.append(elapsed)
                        found += len(hits)
                results[label] = (pct(samples, 0.5), pct(samples, 0.99), found / len(queries))
        finally:
            await store.close()
    total = args.size + args.others * args.other_size
    print(
        f"\nsearch_episodes on SQLite, text mode, limit 10: {args.size:,} episodes in the searched project, "
        f"{args.others} other projects of {args.other_size:,} ({total:,} in all, loaded in {load_s:.0f} s, "
        f"synchronous={args.synchronous}); {args.queries} queries after 20 warm-up\n"
    )
    print("| case | p50 (ms) | p99 (ms) | hits |\n|---|---:|---:|---:|")
    for label, (p50, p99, hits) in results.items():
        print(f"| {label} | {p50:.2f} | {p99:.2f} | {hits:.1f} |")
    label = f"add_episode (the searched project's {args.size:,})"
    print(f"| {label} | {pct(inserts, 0.5):.2f} | {pct(inserts, 0.99):.2f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--others", type=int, default=10)
    parser.add_argument("--other-size", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    args: Any = parser.parse_args()
    anyio.run(run, args)


if __name__ == "__main__":
    main()
