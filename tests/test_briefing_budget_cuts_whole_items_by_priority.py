"""The briefing's token budget: whatever the budget, the briefing fits it, and what a smaller budget keeps is what a
larger one keeps first (whole items, lowest priority cut first), with a note of what was left out."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.server.assembly import create_server
from tests.http_helpers import ok

pytestmark = pytest.mark.anyio

BUDGETS = [100, 150, 250, 400, 700, 1000, 1500, 3000]


async def test_smaller_budgets_keep_a_prefix_of_what_larger_ones_keep(settings: Settings) -> None:
    project, agent = str(uuid.uuid4()), str(uuid.uuid4())
    s = {"project_id": project, "agent_instance_id": agent, "session_id": "big"}
    async with Client(create_server(settings)) as c:
        state: dict[str, Any] = {f"note{i:02}": f"fact number {i} about the rollout" for i in range(40)}
        await ok(c, "spawn", **s, initial_state=state)
        for i in range(6):
            await ok(c, "pause", **s, label=f"step {i}")
        for i in range(8):
            await ok(
                c,
                "record_episode",
                project_id=project,
                agent_instance_id=str(uuid.uuid4()),
                task_type="rollout",
                task_description=f"Roll out the cache layer, attempt {i}",
                outcome="partial",
                lessons_learned=[f"Lesson {i}.{j}: warm the cache layer before the rollout" for j in range(3)],
            )

        results = [await ok(c, "memory_prompt", task="roll out the cache layer", **s, token_budget=b) for b in BUDGETS]

    for budget, r in zip(BUDGETS, results, strict=True):
        assert len(r["text"].encode()) / 4 <= budget, budget
        assert r["tokens"] <= budget
        assert r["text"].startswith('# Briefing: roll out the cache layer\n## Session "big"\nStatus **paused**')
    for smaller, larger in itertools.pairwise(results):
        assert len(smaller["text"]) <= len(larger["text"])
        assert larger["checkpoint_ids"][: len(smaller["checkpoint_ids"])] == smaller["checkpoint_ids"]
        assert larger["episode_ids"][: len(smaller["episode_ids"])] == smaller["episode_ids"]
    assert results[0]["left_out"] and "_Left out (token_budget 100)" in results[0]["text"]
    assert results[-1]["left_out"] == [] and len(results[-1]["checkpoint_ids"]) == 5
    assert len(results[-1]["episode_ids"]) == 5
    # Priority: the newest checkpoint, the best episode, the other checkpoints, the other episodes.
    ranked = [(1, 0), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (5, 2), (5, 3), (5, 4), (5, 5)]
    kept = [(len(r["checkpoint_ids"]), len(r["episode_ids"])) for r in results]
    assert all(k == (0, 0) or k in ranked for k in kept), kept
    assert len(set(kept)) > 3, f"the budgets should cut at several places: {kept}"


async def test_without_a_session_the_briefing_gives_episodes_and_points_to_list_sessions(settings: Settings) -> None:
    project = str(uuid.uuid4())
    server = create_server(settings)
    async with Client(server) as c:
        await ok(
            c,
            "record_episode",
            project_id=project,
            agent_instance_id=str(uuid.uuid4()),
            task_type="bug_fix",
            task_description="Fix the flaky login test",
            outcome="success",
            lessons_learned=["The test raced the session cookie"],
        )
        text = (await c.get_prompt("resume_briefing", {"task": "flaky login test", "project_id": project})).messages
        plain = text[0].content.text  # type: ignore[union-attr]
        assert "The test raced the session cookie" in plain and "## Session" not in plain
        assert "`spawn` a session" in plain and "`list_sessions` finds your earlier sessions" in plain

        again = (await c.get_prompt("resume_briefing", {"project_id": project})).messages[0].content.text  # type: ignore[union-attr]
        assert "`list_sessions` finds your earlier sessions" in again
        assert again.startswith("# Briefing\n") and "## Recent episodes" in again
