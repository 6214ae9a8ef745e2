"""A text without a word (emoji, punctuation) has a vector without a direction under the hash provider; it matches
nothing by vector. On Postgres its cosine is NaN, which sorted above every number: such a query returned every
episode as a perfect match, such an episode came up in unrelated searches, and a near-duplicate check merged it into
an unrelated episode with a similarity that is not JSON. On every store."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def test_a_text_without_words_matches_nothing_by_vector(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = make_settings(embedding_provider="hash", duplicate_action="merge")
    async with MemoryRuntime(settings, clock=clock, embedding_retry=False) as rt:
        p, a = uuid.uuid4(), uuid.uuid4()
        fields = {"project_id": p, "agent_instance_id": a, "outcome": "success"}
        deploy = await rt.episode_control.record(**fields, task_type="ops", task_description="deploy the web service")
        # No word in the whole embedded text (task type included): a zero vector.
        party = await rt.episode_control.record(**fields, task_type="🎈", task_description="🎉🎉")
        assert not party.merged and party.duplicate_of is None
        again = await rt.episode_control.record(**fields, task_type="🎈", task_description="🚀 !?")
        assert not again.merged and again.duplicate_of is None and again.similarity is None

        assert [h.episode_id for h in await rt.episodic.search(p, "🚀🚀 ?!")] == []
        hits = await rt.episodic.search(p, "deploy web service")
        assert [h.episode_id for h in hits] == [deploy.episode.episode_id]
        assert all(math.isfinite(h.score) for h in hits)
