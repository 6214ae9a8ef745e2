"""Edits of one episode that overlap lose nothing, and its vector is always that of its stored text: each edit is
written only onto the text it was made from (else it is made again from the stored episode), and the background
backfill attaches a vector only to the text it embedded. Concurrent near-duplicate merges keep every lesson;
concurrent updates of different fields keep both; an edit while the backfill embeds the old text leaves no vector
of that old text behind. On every store."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.embeddings.hashed import HashEmbedding
from mcp_memory.models import Episode
from mcp_memory.services.backfill import EmbeddingBackfill
from mcp_memory.services.episodic import episode_text
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def cosine(rt: MemoryRuntime, ep: Episode, text: str, embedder: HashEmbedding) -> float:
    """The cosine between the episode's stored vector and ``text``'s (it is its project's only episode)."""
    found = await rt.store.nearest_episode(
        ep.project_id, embedder.embed_one(text), embedder.name, ep.task_type, ep.outcome
    )
    assert found is not None and found[0] == ep.episode_id
    return found[1]


async def test_concurrent_merges_keep_every_lesson(make_settings: Callable[..., Settings], clock: FakeClock) -> None:
    # A low threshold: each merge moves the older episode's vector, and at 0.9 a later record could be near it no
    # more (then recorded apart, and the merges left for the first episode were too few to race).
    settings = make_settings(embedding_provider="hash", duplicate_action="merge", duplicate_similarity=0.5)
    async with MemoryRuntime(settings, clock=clock, embedding_retry=False) as rt:
        p, a = uuid.uuid4(), uuid.uuid4()
        base = {"project_id": p, "agent_instance_id": a, "task_type": "deploy", "outcome": "success"}
        base["task_description"] = "deploy the web service to production with blue green"
        first = await rt.episode_control.record(**base, lessons_learned=["tag first"])
        merged: list[str] = []

        async def merge(i: int) -> None:
            done = await rt.episode_control.record(**base, lessons_learned=["tag first", f"lesson {i}"])
            if done.merged and done.duplicate_of == first.episode.episode_id:
                merged.append(f"lesson {i}")

        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(merge, i)
        stored = await rt.episodic.get(p, first.episode.episode_id)
        assert len(merged) == 5
        assert sorted(stored.lessons_learned) == sorted(["tag first", *merged])


async def test_concurrent_updates_of_different_fields_keep_both_and_the_vector_of_both(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    async with MemoryRuntime(make_settings(embedding_provider="hash"), clock=clock, embedding_retry=False) as rt:
        p, a = uuid.uuid4(), uuid.uuid4()
        ep = await rt.episodic.record_episode(
            project_id=p, agent_instance_id=a, task_type="coding", task_description="tune the cache", outcome="success"
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: rt.episode_control.update(p, ep.episode_id, lessons_learned=["giraffe lesson"]))
            tg.start_soon(lambda: rt.episode_control.update(p, ep.episode_id, outcome_details="penguin details"))
        stored = await rt.episodic.get(p, ep.episode_id)
        assert stored.lessons_learned == ["giraffe lesson"] and stored.outcome_details == "penguin details"
        embedder = HashEmbedding(settings_dimension(rt))
        assert await cosine(rt, stored, episode_text(stored), embedder) == pytest.approx(1.0)
        for one in (
            stored.model_copy(update={"outcome_details": ""}),
            stored.model_copy(update={"lessons_learned": []}),
        ):
            assert await cosine(rt, stored, episode_text(one), embedder) < 0.99


class GatedHash(HashEmbedding):
    """The hash embedding, held at a gate once called (so that a test can edit the episode meanwhile)."""

    def __init__(self, dimension: int) -> None:
        super().__init__(dimension)
        self.entered = anyio.Event()
        self.gate = anyio.Event()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.entered.set()
        await self.gate.wait()
        return [self.embed_one(t) for t in texts]


async def test_an_edit_while_the_backfill_embeds_leaves_no_vector_of_the_old_text(
    make_settings: Callable[..., Settings], clock: FakeClock
) -> None:
    async with MemoryRuntime(make_settings(embedding_provider="none"), clock=clock, embedding_retry=False) as rt:
        p, a = uuid.uuid4(), uuid.uuid4()
        ep = await rt.episodic.record_episode(
            project_id=p,
            agent_instance_id=a,
            task_type="coding",
            task_description="tune the cache",
            outcome="success",
            lessons_learned=["walrus lesson"],
        )
        gated = GatedHash(settings_dimension(rt))
        backfill = EmbeddingBackfill(rt.store, gated)
        async with anyio.create_task_group() as tg:
            tg.start_soon(backfill.run_once)
            await gated.entered.wait()  # it has read the old text and is embedding it
            await rt.episode_control.update(p, ep.episode_id, lessons_learned=["penguin lesson"])
            gated.gate.set()
        stored = await rt.episodic.get(p, ep.episode_id)
        assert not stored.embedded  # the old text's vector was not attached
        assert (await backfill.run_once()).embedded == 1  # the next pass embeds the text the episode has
        assert await cosine(rt, stored, episode_text(stored), gated) == pytest.approx(1.0)
        assert await cosine(rt, stored, episode_text(ep), gated) < 0.99


def settings_dimension(rt: MemoryRuntime) -> int:
    return rt.settings.embedding_dimension
