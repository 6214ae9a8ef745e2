"""Dialogue-memory evaluation (issue 14 item 7): does ``search_episodes`` find what a user said, and how fast?

The set (benchmarks/data/dialogue_set.json, made by benchmarks/make_dialogue_set.py and committed before any search
ran on it) holds 600 short dialogue episodes of 10 users (60 each, one or two turns, dated sessions over 2024) and
200 questions with their evidence episodes, in kinds: single-fact, multi-evidence (2-4 episodes), temporal,
knowledge-update (the newer statement is the evidence), adversarial (false premise; the evidence shows it false),
unanswerable (no evidence: not scored here).

Quality: each user's episodes go into a project of their own (their memory), recorded through the public runtime
API (``MemoryRuntime.episodic.record_episode``, task_type "dialogue", the session date in metadata and as the
episode's time via the runtime's clock); every question is asked on 2025-01-15 (the clock then) with full text
alone, vectors alone and hybrid (``EpisodicMemory.search(mode=...)``, as tests/test_retrieval.py switches
retrievers), top 10. Per kind and overall: recall@10 (any evidence in the top 10), coverage@10 (share of the
evidence in the top 10), top-1 (the first hit is evidence), MRR@10.

Latency (the issue's measure): all 600 episodes also go into one project, and every question is asked of it
``--rounds`` times: over stdio through a real ``mcp-memory serve`` subprocess with the SDK client (full text: the
server without an embedding provider; hybrid: with the local model; vectors alone is not a tool option), and in
process through ``EpisodicMemory.search`` for each mode. The machine's load (/proc/loadavg) is printed before
and after.

    HF_HUB_OFFLINE=1 python benchmarks/eval_dialogue.py                 # SQLite, quality + latency
    python benchmarks/eval_dialogue.py --no-latency                    # quality only
    python benchmarks/eval_dialogue.py --postgres postgresql://...     # Postgres + pgvector (migrated here)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from mcp_memory.config import Settings
from mcp_memory.embeddings import EmbeddingProvider
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.ports import SearchMode

DATA_PATH = Path(__file__).parent / "data" / "dialogue_set.json"
KINDS = ("single-fact", "multi-evidence", "temporal", "knowledge-update", "adversarial")
MODES: tuple[SearchMode, ...] = ("text", "vector", "hybrid")
METRICS = ("recall@10", "coverage@10", "top-1", "mrr@10")
TOP = 10
EXE = Path(sys.executable).parent / "mcp-memory"


def load_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA_PATH.read_text())
    return data


class SetClock:
    """The runtime's clock, set by hand: each episode is recorded at its session's date, questions asked later."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def at(self, day: str, seconds: int = 0) -> None:
        self.now = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC).timestamp() + seconds


@dataclass
class Quality:
    """Per mode, per kind (and "overall"): the metric values of each question."""

    values: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    misses: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, mode: str, kind: str, metrics: dict[str, float]) -> None:
        for group in (kind, "overall"):
            per = self.values.setdefault(mode, {}).setdefault(group, {m: [] for m in METRICS})
            for name, value in metrics.items():
                per[name].append(value)

    def mean(self, mode: str, kind: str, metric: str) -> float:
        got = self.values[mode][kind][metric]
        return sum(got) / len(got)

    def count(self, kind: str) -> int:
        return len(self.values[MODES[0]][kind]["top-1"])

    def table(self) -> dict[str, dict[str, dict[str, float]]]:
        """{kind: {mode: {metric: mean}}}, rounded to 4 places (what the test pins)."""
        return {
            kind: {mode: {m: round(self.mean(mode, kind, m), 4) for m in METRICS} for mode in MODES}
            for kind in (*KINDS, "overall")
        }


def score(found: Sequence[str], evidence: Sequence[str]) -> dict[str, float]:
    """The four metrics of one question from its top-10 keys."""
    ranks = [found.index(e) + 1 for e in evidence if e in found]
    return {
        "recall@10": 1.0 if ranks else 0.0,
        "coverage@10": len(ranks) / len(evidence),
        "top-1": 1.0 if found and found[0] in evidence else 0.0,
        "mrr@10": 1.0 / min(ranks) if ranks else 0.0,
    }


async def record_all(
    runtime: MemoryRuntime, clock: SetClock, episodes: Sequence[dict[str, Any]], project_of: dict[str, uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Record each episode at its session date (in order within a session); returns episode_id -> key."""
    agent = uuid.uuid4()
    keys: dict[uuid.UUID, str] = {}
    for n, ep in enumerate(episodes):
        clock.at(ep["date"], n)
        recorded = await runtime.episodic.record_episode(
            project_id=project_of[ep["user"]],
            agent_instance_id=agent,
            session_id=f"{ep['user']}-s{ep['session']:02d}",
            task_type="dialogue",
            task_description=ep["text"],
            outcome="success",
            metadata={"date": ep["date"], "session": ep["session"], "user": ep["user"], "key": ep["key"]},
        )
        keys[recorded.episode_id] = ep["key"]
    return keys


async def evaluate_quality(runtime: MemoryRuntime, clock: SetClock, data: dict[str, Any]) -> Quality:
    """Each user's memory in its own project; every scored question in every mode."""
    projects = {user: uuid.uuid4() for user in sorted({ep["user"] for ep in data["episodes"]})}
    keys = await record_all(runtime, clock, data["episodes"], projects)
    clock.at(data["asked_on"])
    quality = Quality()
    for q in data["questions"]:
        if not q["evidence"]:
            continue  # unanswerable: nothing to find
        for mode in MODES:
            hits = await runtime.episodic.search(projects[q["user"]], q["q"], TOP, mode=mode)
            found = [keys[h.episode_id] for h in hits]
            metrics = score(found, q["evidence"])
            quality.add(mode, q["kind"], metrics)
            if not metrics["recall@10"]:
                quality.misses.setdefault(mode, []).append((q["id"], q["q"]))
    return quality


def pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def latency_in_process(
    runtime: MemoryRuntime, clock: SetClock, data: dict[str, Any], rounds: int
) -> tuple[uuid.UUID, dict[str, list[float]]]:
    """All 600 episodes in one project; every question asked ``rounds`` times per mode (ms per search)."""
    project = uuid.uuid4()
    await record_all(runtime, clock, data["episodes"], dict.fromkeys({ep["user"] for ep in data["episodes"]}, project))
    clock.at(data["asked_on"])
    queries = [q["q"] for q in data["questions"]]
    samples: dict[str, list[float]] = {}
    for mode in MODES:
        for query in queries[:10]:  # warm-up
            await runtime.episodic.search(project, query, TOP, mode=mode)
        got = samples.setdefault(mode, [])
        for _ in range(rounds):
            for query in queries:
                t0 = time.perf_counter()
                await runtime.episodic.search(project, query, TOP, mode=mode)
                got.append((time.perf_counter() - t0) * 1000)
    return project, samples


async def latency_stdio(
    database_url: str, project: uuid.UUID, queries: Sequence[str], rounds: int
) -> dict[str, list[float]]:
    """``search_episodes`` over stdio through ``mcp-memory serve``: without a provider (full text) and with the
    bundled local model (hybrid). ms per call, as the SDK client sees it."""
    from mcp import Client, StdioServerParameters

    samples: dict[str, list[float]] = {}
    for mode, provider in (("text", "none"), ("hybrid", "sentence-transformers")):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
        env.update(
            MCP_MEMORY_DATABASE_URL=database_url,
            MCP_MEMORY_CONFIG=str(Path(tempfile.gettempdir()) / "no-such-mcp-memory-config.toml"),
            MCP_MEMORY_EMBEDDING_PROVIDER=provider,
            MCP_MEMORY_EMBEDDING_DIMENSION="384",
            HF_HUB_OFFLINE="1",
        )
        params = StdioServerParameters(command=str(EXE), args=["serve"], env=env)
        async with Client(params, read_timeout_seconds=120) as client:
            args = {"project_id": str(project), "limit": TOP}
            for query in queries[:10]:  # warm-up (the model loads on first use)
                result = await client.call_tool("search_episodes", {**args, "query": query})
                if result.is_error:
                    raise RuntimeError(f"search_episodes failed over stdio: {result.content}")
            got = samples.setdefault(mode, [])
            for _ in range(rounds):
                for query in queries:
                    t0 = time.perf_counter()
                    result = await client.call_tool("search_episodes", {**args, "query": query})
                    got.append((time.perf_counter() - t0) * 1000)
                    if result.is_error:
                        raise RuntimeError(f"search_episodes failed over stdio: {result.content}")
    return samples


def settings_for(database_url: str) -> Settings:
    return Settings(database_url=database_url, embedding_provider="sentence-transformers", embedding_dimension=384)


def migrate_postgres(url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env.update(MCP_MEMORY_DATABASE_URL=url, MCP_MEMORY_EMBEDDING_DIMENSION="384")
    subprocess.run([str(EXE), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def quality_markdown(quality: Quality) -> str:
    lines = [
        "| questions | mode | recall@10 | coverage@10 | top-1 | MRR@10 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind in (*KINDS, "overall"):
        for mode in MODES:
            cells = " | ".join(f"{quality.mean(mode, kind, m):.3f}" for m in METRICS)
            lines.append(f"| {kind} ({quality.count(kind)}) | {mode} | {cells} |")
    return "\n".join(lines)


def latency_markdown(in_process: dict[str, list[float]], stdio: dict[str, list[float]]) -> str:
    lines = [
        "| mode | stdio p50 | stdio p99 | in-process p50 | in-process p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        s = stdio.get(mode)
        over = f"{pct(s, 0.5):.2f} | {pct(s, 0.99):.2f}" if s else "n/a (not a tool option) | n/a"
        ip = in_process[mode]
        lines.append(f"| {mode} | {over} | {pct(ip, 0.5):.2f} | {pct(ip, 0.99):.2f} |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = load_data()
    load_before = loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite+aiosqlite:///{Path(tmp) / 'dialogue.db'}"
        if args.postgres:
            migrate_postgres(url)
        clock = SetClock()
        embedder: EmbeddingProvider | None = None
        t0 = time.perf_counter()
        async with MemoryRuntime(settings_for(url), clock=clock, embedding_retry=False) as runtime:
            embedder = runtime.embedder
            quality = await evaluate_quality(runtime, clock, data)
            quality_seconds = time.perf_counter() - t0
            in_process: dict[str, list[float]] = {}
            project = uuid.uuid4()
            if not args.no_latency:
                project, in_process = await latency_in_process(runtime, clock, data, args.rounds)
        stdio: dict[str, list[float]] = {}
        if not args.no_latency:
            stdio = await latency_stdio(url, project, [q["q"] for q in data["questions"]], args.rounds)
    load_after = loadavg()
    backend = "Postgres + pgvector" if args.postgres else "SQLite"
    scored = quality.count("overall")
    print(f"\ndialogue-memory evaluation on {backend}: {len(data['episodes'])} episodes of 10 users (a project each), ")
    print(f"{len(data['questions'])} questions ({scored} scored), {embedder.name if embedder else '?'}; ")
    print(f"quality run {quality_seconds:.0f} s; load average (1/5/15 min) before {load_before}, after {load_after}\n")
    print(quality_markdown(quality))
    if not args.no_latency:
        n = args.rounds * len(data["questions"])
        print(
            f"\nsearch_episodes latency (ms), one project of {len(data['episodes'])} episodes, {n} searches per mode:\n"
        )
        print(latency_markdown(in_process, stdio))
    if args.misses:
        for mode, missed in quality.misses.items():
            for qid, text in missed:
                print(f"  {mode} missed {qid}: {text}")
    if args.json:
        await anyio.Path(args.json).write_text(json.dumps(quality.table(), indent=1) + "\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--postgres", metavar="URL", help="a Postgres URL (pgvector); SQLite in a temp dir otherwise")
    parser.add_argument("--rounds", type=int, default=2, help="times each question is asked for latency (default 2)")
    parser.add_argument("--no-latency", action="store_true", help="quality only")
    parser.add_argument("--misses", action="store_true", help="list the questions each mode found no evidence for")
    parser.add_argument("--json", metavar="PATH", help="also write the quality table as JSON")
    return parser.parse_args(argv)


if __name__ == "__main__":
    anyio.run(main, parse_args())

__all__ = ["KINDS", "METRICS", "MODES", "Quality", "SetClock", "evaluate_quality", "load_data", "score"]
