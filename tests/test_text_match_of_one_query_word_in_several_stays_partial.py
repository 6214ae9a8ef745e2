"""Full-text scores are shares of the query's best BM25, but of no less than a fraction of the query's ceiling
(ranking.GOOD_TEXT_SHARE): an episode holding one of five query words is the best text hit without being scored
as a full match, in both stores (SQLite in Python, Postgres in SQL)."""

from __future__ import annotations

import uuid

import pytest

from mcp_memory.services.runtime import MemoryRuntime

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "postgres")]

SCATTERED = ["alpha", "bravo", "charlie", "delta", "echo"]


async def test_a_best_hit_holding_one_of_five_query_words_scores_below_a_full_match(runtime: MemoryRuntime) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    descriptions = [f"migrated the {word} service" for word in SCATTERED]
    descriptions += ["zulu yankee xray handover"] + [f"weekly standup notes {n}" for n in range(10)]
    for description in descriptions:  # the clock stands still: every episode has the same recency and importance
        await runtime.episodic.record_episode(
            project_id=project,
            agent_instance_id=agent,
            task_type="ops",
            task_description=description,
            outcome="success",
        )
    full = await runtime.episodic.search(project, "zulu yankee xray", 5, mode="text")
    scattered = await runtime.episodic.search(project, " ".join(SCATTERED), 5, mode="text")
    assert full[0].task_description == "zulu yankee xray handover"
    assert {s.task_description for s in scattered} == set(descriptions[:5])
    # The full match scores its whole share; the best of the scattered ones (one word of five, about 0.77 of
    # the floor, GOOD_TEXT_SHARE of the ceiling, in both stores) stays under it. Without the floor both are 1.0.
    assert scattered[0].score < 0.85 * full[0].score
