"""The write side of episodic memory on Postgres: ``add_episode`` (the store port, as ``record_episode`` calls it)
and ``lifecycle.terminate`` (spawn a session of 10 keys, then terminate it: the episode, the session's status and
the event in one transaction), into a project that already holds ``--existing`` episodes.

Texts are topic words plus common words (as in ``bench_pg_search``), so most of a new episode's words are already
known in the project; vectors are 384-dimensional (``hash`` embedding for ``terminate``).

    python benchmarks/bench_pg_insert.py [--existing 2000] [--rounds 300] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import anyio
from bench_pg_search import DIM, TOPICS, Corpus
from pg_common import add_arguments, as_string, bench_database, pct, server_url

from mcp_memory import MemoryRuntime, Settings
from mcp_memory.models import Episode, Outcome
from mcp_memory.stores.postgres.store import PostgresStore


def episode(corpus: Corpus, project: uuid.UUID) -> tuple[Episode, list[float]]:
    topic = int(corpus.rng.integers(0, TOPICS))
    ep = Episode(
        episode_id=uuid.uuid4(),
        project_id=project,
        agent_instance_id=uuid.uuid4(),
        task_type="coding",
        task_description=corpus.text(topic, 4, 5),
        outcome=Outcome.SUCCESS,
        outcome_details=corpus.text(topic, 3, 6),
        lessons_learned=[corpus.text(topic, 2, 4)],
        importance_score=0.5,
        created_at=datetime.now(UTC),
    )
    return ep, [float(x) for x in corpus.vectors([topic], noise=0.6)[0]]  # type: ignore[list-item]


async def run(url: Any, args: argparse.Namespace) -> dict[str, list[float]]:
    corpus = Corpus()
    project = uuid.uuid4()
    store = PostgresStore(as_string(url), embedding_dimension=DIM)
    await store.start()
    samples: dict[str, list[float]] = {"add_episode": []}
    try:
        for i in range(args.existing + args.rounds):
            ep, vector = episode(corpus, project)
            started = time.perf_counter()
            await store.add_episode(ep, vector, "bench@384")
            if i >= args.existing:
                samples["add_episode"].append((time.perf_counter() - started) * 1000)
    finally:
        await store.close()
    settings = Settings(database_url=as_string(url), embedding_provider="hash", embedding_dimension=DIM)
    async with MemoryRuntime(settings) as rt:
        samples["terminate"] = []
        agent = uuid.uuid4()
        for i in range(args.rounds + 10):
            topic = int(corpus.rng.integers(0, TOPICS))
            session = f"s{i}"
            await rt.lifecycle.spawn(project, agent, session, initial_state={f"k{j}": j for j in range(10)})
            started = time.perf_counter()
            await rt.lifecycle.terminate(project, agent, session, task_description=corpus.text(topic, 4, 5))
            if i >= 10:
                samples["terminate"].append((time.perf_counter() - started) * 1000)
    return samples


async def main(args: argparse.Namespace) -> None:
    admin, _server = server_url(args.url, args.shared_buffers)
    async with bench_database(admin, embedding_dimension=DIM, keep=args.keep) as url:
        samples = await run(url, args)
    print(f"\nwrites into a project of {args.existing:,} episodes, {args.rounds} rounds (ms)\n")
    print("| op | p50 | p99 |\n|---|---:|---:|")
    for op, values in samples.items():
        print(f"| {op} | {pct(values, 0.5):.2f} | {pct(values, 0.99):.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--existing", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=300)
    add_arguments(parser)
    anyio.run(main, parser.parse_args())
