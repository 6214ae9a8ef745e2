"""The dialogue-memory evaluation (issue 14 item 7) as a floor: later tuning of search may only raise its figures.

benchmarks/eval_dialogue.py runs 190 scored questions (single-fact, multi-evidence, temporal, knowledge-update,
adversarial) over 10 users' dialogue memories (benchmarks/data/dialogue_set.json, committed before any search ran
on it), with full text alone, vectors alone and hybrid. Here it runs in process on SQLite with the bundled
all-MiniLM-L6-v2 (no latency), and every figure last measured (recall@10, coverage@10, top-1, per kind and
overall, per mode) is asserted as a floor, less a small epsilon for floating-point noise (one question
is worth 0.033 or more in any kind): "raise recall@10 and coverage there without losing top-1 anywhere".
Raise a floor when a change raises its figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.eval_dialogue import KINDS, MODES, SetClock, evaluate_quality, load_data, settings_for
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

EPSILON = 0.005
FLOORS: dict[str, dict[str, dict[str, float]]] = {
    # Measured with search reading time in the query (mcp_memory/query_time.py), SQLite, all-MiniLM-L6-v2; the
    # same figures as benchmarks/eval_dialogue.py prints (docs/benchmarks.md).
    "single-fact": {
        "text": {"recall@10": 0.8167, "coverage@10": 0.8167, "top-1": 0.3},
        "vector": {"recall@10": 1.0, "coverage@10": 1.0, "top-1": 0.7333},
        "hybrid": {"recall@10": 1.0, "coverage@10": 1.0, "top-1": 0.7},
    },
    "multi-evidence": {
        "text": {"recall@10": 0.775, "coverage@10": 0.5729, "top-1": 0.475},
        "vector": {"recall@10": 1.0, "coverage@10": 0.9375, "top-1": 0.875},
        "hybrid": {"recall@10": 1.0, "coverage@10": 0.9375, "top-1": 0.825},
    },
    "temporal": {
        "text": {"recall@10": 0.975, "coverage@10": 0.975, "top-1": 0.3},
        "vector": {"recall@10": 1.0, "coverage@10": 1.0, "top-1": 0.825},
        "hybrid": {"recall@10": 1.0, "coverage@10": 1.0, "top-1": 0.7},
    },
    "knowledge-update": {
        "text": {"recall@10": 0.3667, "coverage@10": 0.3667, "top-1": 0.0333},
        "vector": {"recall@10": 1.0, "coverage@10": 1.0, "top-1": 0.7333},
        "hybrid": {"recall@10": 1.0, "coverage@10": 1.0, "top-1": 0.6},
    },
    "adversarial": {
        "text": {"recall@10": 0.0, "coverage@10": 0.0, "top-1": 0.0},
        "vector": {"recall@10": 0.9, "coverage@10": 0.9, "top-1": 0.5},
        "hybrid": {"recall@10": 0.9, "coverage@10": 0.9, "top-1": 0.35},
    },
    "overall": {
        "text": {"recall@10": 0.6842, "coverage@10": 0.6417, "top-1": 0.2632},
        "vector": {"recall@10": 0.9895, "coverage@10": 0.9763, "top-1": 0.7579},
        "hybrid": {"recall@10": 0.9895, "coverage@10": 0.9763, "top-1": 0.6737},
    },
}


def test_the_data_set_is_what_the_evaluation_claims() -> None:
    data = load_data()
    episodes = {ep["key"]: ep for ep in data["episodes"]}
    assert len(episodes) == len(data["episodes"]) == 600
    assert len({ep["user"] for ep in data["episodes"]}) == 10
    assert all(ep["date"] < data["asked_on"] for ep in data["episodes"])
    kinds = {q["kind"] for q in data["questions"]}
    assert kinds == {*KINDS, "unanswerable"}
    for q in data["questions"]:
        assert all(episodes[e]["user"] == q["user"] for e in q["evidence"])  # a user's own memory answers
        if q["kind"] == "unanswerable":
            assert q["evidence"] == []
        elif q["kind"] == "multi-evidence":
            assert 2 <= len(q["evidence"]) <= 4
        else:
            assert len(q["evidence"]) == 1
        if q["kind"] == "knowledge-update":  # the newer statement is the answer
            (old,) = q["superseded"]
            assert episodes[old]["date"] < episodes[q["evidence"][0]]["date"]


async def test_dialogue_recall_coverage_and_top1_do_not_fall_below_todays(tmp_path: Path, minilm: Any) -> None:
    clock = SetClock()
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'dialogue.db'}")
    async with MemoryRuntime(settings, clock=clock, embedder=minilm, embedding_retry=False) as runtime:
        quality = await evaluate_quality(runtime, clock, load_data())
    measured = quality.table()
    print("\n" + "\n".join(f"{kind} {mode}: {measured[kind][mode]}" for kind in measured for mode in MODES))
    fallen = [
        f"{kind} / {mode} / {metric}: {measured[kind][mode][metric]:.4f} < floor {floor:.4f}"
        for kind, per_mode in FLOORS.items()
        for mode, floors in per_mode.items()
        for metric, floor in floors.items()
        if measured[kind][mode][metric] < floor - EPSILON
    ]
    assert not fallen, "the dialogue evaluation fell below its floor:\n" + "\n".join(fallen)
