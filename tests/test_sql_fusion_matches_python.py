"""Postgres fuses full-text and vector scores in SQL (:func:`mcp_memory.stores.postgres.search.search_sql`); SQLite
and the reference are Python's :func:`mcp_memory.ranking.fuse` and :func:`mcp_memory.ranking.blend`. Over one
project's episodes with vectors, for several queries, filters and limits, the hybrid search returns the order and
the scores that Python computes from the same two candidate lists: the store's text-only and vector-only rankings
(each a 0-1 share blended with importance and recency, so the share is the score over the blend factor).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest

from mcp_memory.embeddings import HashEmbedding
from mcp_memory.models import Episode, Outcome, to_datetime
from mcp_memory.ranking import TEXT_WEIGHT, VECTOR_WEIGHT, blend, fuse
from mcp_memory.stores.ports import EpisodeFilter, SearchMode
from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
MODEL = "hash@256"
EMBEDDER = HashEmbedding()
WORDS = ["deploy", "billing", "kubernetes", "parser", "crash", "vault", "rotate", "cache", "postgres", "release"]
AGENTS = [uuid.UUID(int=1), uuid.UUID(int=2)]
TASK_TYPES = ["coding", "ops", "review"]
QUERIES = {
    # The query's words, and the text its vector is made of.
    "deploy billing to kubernetes": "deploy billing to kubernetes",
    "parser crash": "parser crash",
    "rotate the vault credentials": "rotate the vault credentials",
    "postgres cache release notes deploy": "postgres cache release notes deploy",
    # No word of it in any episode: the vectors alone decide.
    "kilimanjaro": "vault cache deploy",
    # A vector near nothing (every cosine under the floor): the full text alone decides.
    "billing crash release": "kilimanjaro",
}
FILTERS = {
    "none": EpisodeFilter(),
    "task_type": EpisodeFilter(task_type="ops"),
    "agent": EpisodeFilter(agent_instance_id=AGENTS[1]),
    "outcome": EpisodeFilter(outcome=Outcome.FAILURE),
    "since": EpisodeFilter(since=T0 - 15 * 86_400),
    "until": EpisodeFilter(since=T0 - 25 * 86_400, until=T0 - 5 * 86_400),
}
LIMITS = (1, 3, 10, 40)
EPISODES = 36
"""Fewer than either retriever's smallest candidate pool (40 vectors, 50 texts), so every episode either retriever
finds is a candidate of the hybrid search at every limit, as in ``fuse`` over the whole lists."""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def loaded() -> AsyncIterator[tuple[PostgresStore, uuid.UUID, dict[uuid.UUID, Episode]]]:
    store = await pg_servers.fresh_postgres_store()
    rng = random.Random(11)
    project = uuid.uuid4()
    episodes: dict[uuid.UUID, Episode] = {}
    try:
        for i in range(EPISODES):
            description = " ".join(rng.sample(WORDS, rng.randint(1, 4))) + f" item{i}"
            ep = Episode(
                episode_id=uuid.uuid4(),
                project_id=project,
                agent_instance_id=AGENTS[i % 2],
                task_type=TASK_TYPES[i % 3],
                task_description=description,
                outcome=list(Outcome)[i % 3],
                # Distinct importances and ages: no two episodes tie on a score.
                importance_score=round(rng.random(), 4),
                created_at=to_datetime(T0 - i * 86_400 + rng.random() * 3_600),
                lessons_learned=[rng.choice(WORDS)] if i % 4 == 0 else [],
            )
            episodes[await store.add_episode(ep, EMBEDDER.embed_one(description), MODEL)] = ep
        yield store, project, episodes
    finally:
        await store.close()


def _blend_factor(ep: Episode) -> float:
    return blend(1.0, ep.importance_score, ep.created_at.timestamp(), T0)


async def _shares(
    store: PostgresStore,
    project: uuid.UUID,
    episodes: dict[uuid.UUID, Episode],
    query: str,
    flt: EpisodeFilter,
    mode: SearchMode,
) -> dict[uuid.UUID, float]:
    """One retriever's 0-1 shares for every episode it finds: its ranking's scores over the blend factor."""
    found = await store.search_episodes(
        project,
        query,
        EMBEDDER.embed_one(QUERIES[query]),
        flt,
        EPISODES,
        T0,
        mode,
        MODEL,
    )
    return {e.episode_id: e.score / _blend_factor(episodes[e.episode_id]) for e in found}


@pytest.mark.parametrize("flt", sorted(FILTERS))
@pytest.mark.parametrize("query", sorted(QUERIES))
async def test_postgres_hybrid_ranking_is_ranking_fuse(
    loaded: tuple[PostgresStore, uuid.UUID, dict[uuid.UUID, Episode]], query: str, flt: str
) -> None:
    store, project, episodes = loaded
    text_shares = await _shares(store, project, episodes, query, FILTERS[flt], "text")
    vector_shares = await _shares(store, project, episodes, query, FILTERS[flt], "vector")
    assert text_shares or vector_shares, "the query should find episodes (else this compares nothing)"
    fused = fuse([text_shares, vector_shares], [TEXT_WEIGHT, VECTOR_WEIGHT])
    expected = sorted(
        (
            (ep_id, blend(rel, episodes[ep_id].importance_score, episodes[ep_id].created_at.timestamp(), T0))
            for ep_id, rel in fused.items()
        ),
        key=lambda pair: (-pair[1], -pair[0].int),
    )
    for limit in LIMITS:
        got = await store.search_episodes(
            project, query, EMBEDDER.embed_one(QUERIES[query]), FILTERS[flt], limit, T0, "hybrid", MODEL
        )
        assert [e.episode_id for e in got] == [ep_id for ep_id, _ in expected[:limit]], limit
        assert [e.score for e in got] == pytest.approx([score for _, score in expected[:limit]], abs=1e-5), limit
