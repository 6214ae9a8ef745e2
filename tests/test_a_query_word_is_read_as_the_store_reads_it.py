"""A query word reaches the store's own tokenizer as written, which folds its case as it did when the episode was
indexed: ``İstanbul`` finds the episode that says ``İstanbul``. Lower-casing it in Python first gave ``i`` and a
combining dot, which split the word in two and found nothing. On SQLite and Postgres."""

from __future__ import annotations

import uuid

import pytest

from mcp_memory.services.runtime import MemoryRuntime

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "postgres")]


async def test_a_word_with_a_dotted_capital_i_finds_itself(runtime: MemoryRuntime) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    found = await runtime.episode_control.record(
        project_id=project,
        agent_instance_id=agent,
        task_type="travel",
        task_description="Flight to İstanbul was cancelled",
        outcome="failure",
    )
    await runtime.episode_control.record(
        project_id=project,
        agent_instance_id=agent,
        task_type="travel",
        task_description="Train to Ankara",
        outcome="success",
    )
    for query in ("İstanbul", "istanbul", "ISTANBUL", "İSTANBUL flight"):
        hits = await runtime.episodic.search(project, query, mode="text")
        assert [h.episode_id for h in hits] == [found.episode.episode_id], query
