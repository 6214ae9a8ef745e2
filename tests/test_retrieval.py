"""Recall with a real model: does hybrid search find the right episode for a query worded differently?

The data set (tests/data/retrieval_set.json) holds 70 episodes of an agent team's work (deploys, data
migrations, bug fixes, research, customer support, incidents, ...), several of them near neighbours on one
topic, and queries phrased as a later agent would ask: paraphrases and synonyms, not the episode's words
("client billed two times for the yearly plan" for "Customer was charged twice for an annual subscription").
A second group names a rare term of the episode (a tool, an error, an identifier) as agents also do. A third,
the commonest kind of agent query, is a paraphrase that also carries one or two specific terms of the episode (a
service, a tool, a version: "payments-api canary: what did we monitor apart from failures?"), mostly for episodes
with near neighbours on the same topic. A fourth is recurring work: the same task recorded several times (a weekly
release, one request from several customers, one alert in several regions, flaky tests, tickets, a quarterly
review), near-identical siblings told apart by an identifier, each asked about as "what happened with <identifier>"
in other words. The issue's claim (hybrid finds the episode in the top 3 for at least 90% of the queries phrased
differently from the episode text, and beats full text alone and vectors alone) is checked on the first, third and
fourth groups together. Per group (docs/benchmarks.md): on pure paraphrases hybrid finds one more than vectors
alone in the top 3 but, on Postgres, puts fewer first; with a specific term the model alone is already perfect; on
recurring work the model barely tells the siblings apart by their identifier and full text does, which is where
hybrid clearly beats vectors (first place). Over all of them hybrid leads vectors alone by one query on top-3.

Everything goes through EpisodicMemory and the store port, embedded with all-MiniLM-L6-v2 from the bundled
package; each durable adapter of tests/conftest.py runs it. ``pytest tests/test_retrieval.py -s`` prints
the table docs/benchmarks.md shows.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.episodic import EpisodicMemory
from mcp_memory.stores.ports import SearchMode
from tests.conftest import DURABLE_ADAPTERS, FakeClock, make_store

DATA = json.loads((Path(__file__).parent / "data" / "retrieval_set.json").read_text())
MODES: tuple[SearchMode, ...] = ("hybrid", "text", "vector")
T0 = 1_750_000_000.0

pytestmark = pytest.mark.anyio


def test_the_data_set_is_what_the_test_claims() -> None:
    keys = [ep["key"] for ep in DATA["episodes"]]
    assert len(keys) >= 50 and len(set(keys)) == len(keys)
    assert len(DATA["queries"]) >= 20
    assert len({ep["task_type"] for ep in DATA["episodes"]}) >= 5
    assert len(DATA["mixed_queries"]) >= 20 and len(DATA["recurring_queries"]) >= 20
    for query in DATA["queries"] + DATA["identifier_queries"] + DATA["mixed_queries"] + DATA["recurring_queries"]:
        assert query["expected"] in keys
    episodes = {ep["key"]: ep for ep in DATA["episodes"]}
    for query in DATA["mixed_queries"] + DATA["recurring_queries"]:  # each names terms the expected episode holds
        ep = episodes[query["expected"]]
        body = " ".join([ep["task_description"], ep["outcome_details"], *ep["lessons_learned"]]).lower()
        assert 1 <= len(query["terms"]) <= 2
        assert all(t.lower() in body and t.lower() in query["query"].lower() for t in query["terms"])
    assert all(ep["lessons_learned"] for ep in DATA["episodes"])


async def _evaluate(
    memory: EpisodicMemory, project: uuid.UUID, ids: dict[uuid.UUID, str], queries: list[dict[str, Any]]
) -> dict[str, Any]:
    """Per mode: share of queries with the right episode first (hit@1), in the top 3 (hit@3), and the mean
    reciprocal rank within the top 10 (MRR)."""
    results: dict[str, Any] = {}
    for mode in MODES:
        at1 = at3 = 0
        rr = 0.0
        misses = []
        for query in queries:
            found = [ids[s.episode_id] for s in await memory.search(project, query["query"], 10, mode=mode)]
            rank = found.index(query["expected"]) + 1 if query["expected"] in found else None
            at1 += rank == 1
            at3 += rank is not None and rank <= 3
            rr += 1 / rank if rank else 0.0
            if rank is None or rank > 3:
                misses.append((query["query"], query["expected"], found[:3]))
        n = len(queries)
        results[mode] = {"hit@3": at3 / n, "hit@1": at1 / n, "mrr": rr / n, "misses": misses}
    return results


@pytest.mark.parametrize("adapter", DURABLE_ADAPTERS)
async def test_hybrid_search_finds_the_episode_from_a_paraphrase(adapter: str, tmp_path: Path, minilm: Any) -> None:
    # The width of the model's vectors (Postgres fixes it in its schema; at another width it would store none).
    store = await make_store(adapter, tmp_path, embedding_dimension=minilm.dimension)
    try:
        clock = FakeClock(T0)
        memory = EpisodicMemory(store, Settings(), minilm, clock)
        project, agent = uuid.uuid4(), uuid.uuid4()
        ids: dict[uuid.UUID, str] = {}
        for ep in DATA["episodes"]:  # one an hour, as a team would record them
            recorded = await memory.record_episode(
                project_id=project,
                agent_instance_id=agent,
                task_type=ep["task_type"],
                task_description=ep["task_description"],
                outcome=ep["outcome"],
                outcome_details=ep["outcome_details"],
                lessons_learned=ep["lessons_learned"],
            )
            assert recorded.embedded
            ids[recorded.episode_id] = ep["key"]
            clock.advance(3600)
        groups = {
            "paraphrased": DATA["queries"],
            "naming a rare term": DATA["identifier_queries"],
            "paraphrased + specific term": DATA["mixed_queries"],
            "recurring work, by identifier": DATA["recurring_queries"],
            "phrased differently (1st + 3rd + 4th)": DATA["queries"]
            + DATA["mixed_queries"]
            + DATA["recurring_queries"],
        }
        results = {name: await _evaluate(memory, project, ids, queries) for name, queries in groups.items()}
    finally:
        await store.close()

    print(f"\nretrieval on {adapter}: {len(DATA['episodes'])} episodes, all-MiniLM-L6-v2")
    print("| queries | mode | top-3 hit rate | top-1 hit rate | MRR@10 |\n|---|---|---|---|---|")
    for name, queries in groups.items():
        for mode in MODES:
            r = results[name][mode]
            print(f"| {name} ({len(queries)}) | {mode} | {r['hit@3']:.3f} | {r['hit@1']:.3f} | {r['mrr']:.3f} |")
    for name in ("paraphrased", "paraphrased + specific term", "recurring work, by identifier"):
        for mode in MODES:
            for query, expected, top in results[name][mode]["misses"]:
                print(f"  {name}: {mode} missed {expected!r} for {query!r}; top 3: {top}")

    hybrid, text, vector = (results["paraphrased"][m]["hit@3"] for m in MODES)
    assert hybrid >= 0.9
    assert hybrid > text
    assert hybrid >= vector
    assert results["naming a rare term"]["hybrid"]["hit@3"] >= 0.9
    assert results["paraphrased + specific term"]["hybrid"]["hit@3"] >= 0.9
    assert results["recurring work, by identifier"]["hybrid"]["hit@3"] >= 0.9
    # The claim, on every query phrased differently from the episode text: hybrid puts the right episode
    # in the top 3 for at least 90% of them and does better than full text alone and than vectors alone.
    hybrid, text, vector = (results["phrased differently (1st + 3rd + 4th)"][m]["hit@3"] for m in MODES)
    assert hybrid >= 0.9
    assert hybrid > text
    assert hybrid > vector
