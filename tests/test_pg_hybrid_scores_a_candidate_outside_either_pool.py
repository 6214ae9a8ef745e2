"""Postgres' hybrid search scores each candidate of either retriever by both, even one just outside the other
retriever's candidate list: a text hit beyond the vector pool (40 for limit 10) keeps its cosine, and a vector hit
beyond the text candidates (100 for limit 10) keeps its BM25 share, as :func:`mcp_memory.ranking.fuse` over the
retrievers' whole lists would score them (not as a zero for being missed by one list).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator

import pytest

from mcp_memory.models import Episode, Outcome, to_datetime
from mcp_memory.ranking import TEXT_WEIGHT, VECTOR_WEIGHT, blend, fuse, similarities
from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sql.rules import candidate_pool
from tests import pg_servers

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
MODEL = "m@256"
LIMIT = 10
VECTOR_POOL = 40
"""The vector candidates of a search for :data:`LIMIT` results (search_statement: ``max(4 * limit, 40)``)."""
IMPORTANCE = 0.5


def at_cosine(cos: float, dimension: int = 256) -> list[float]:
    """A unit vector whose cosine with :data:`AXIS` is ``cos``."""
    vector = [0.0] * dimension
    vector[0], vector[1] = cos, math.sqrt(1.0 - cos * cos)
    return vector


AXIS = at_cosine(1.0)


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    async with pg_servers.open_postgres_store() as s:
        yield s


async def _load(store: PostgresStore, rows: list[tuple[str, float]]) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A project of one episode per (description, cosine with AXIS), all of the same importance and age (so the
    blend factor is the same for all and only relevance orders them)."""
    project = uuid.uuid4()
    ids = []
    for description, cos in rows:
        ep = Episode(
            episode_id=uuid.uuid4(),
            project_id=project,
            agent_instance_id=uuid.uuid4(),
            task_type="coding",
            task_description=description,
            outcome=Outcome.SUCCESS,
            importance_score=IMPORTANCE,
            created_at=to_datetime(T0),
        )
        ids.append(await store.add_episode(ep, at_cosine(cos), MODEL))
    return project, ids


async def _assert_hybrid_is_fuse_of_whole_lists(
    store: PostgresStore, project: uuid.UUID, ids: list[uuid.UUID], cosines: list[float], query: str
) -> list[uuid.UUID]:
    """The hybrid page equals ``fuse`` over the text shares of every text hit (a text search of a limit whose pool
    covers them all) and the similarities of every cosine; returns the page's ids."""
    found = await store.search_episodes(project, query, None, EpisodeFilter(), len(ids), T0, "text", MODEL)
    factor = blend(1.0, IMPORTANCE, T0, T0)
    text_shares = {e.episode_id: e.score / factor for e in found}
    fused = fuse([text_shares, similarities(dict(zip(ids, cosines, strict=True)))], [TEXT_WEIGHT, VECTOR_WEIGHT])
    expected = sorted(fused.items(), key=lambda pair: -pair[1])[:LIMIT]
    got = await store.search_episodes(project, query, AXIS, EpisodeFilter(), LIMIT, T0, "hybrid", MODEL)
    assert [e.score for e in got] == pytest.approx([rel * factor for _, rel in expected], abs=1e-5)
    assert {e.episode_id for e in got} == {ep_id for ep_id, _ in expected}
    return [e.episode_id for e in got]


async def test_a_text_hit_beyond_the_vector_pool_keeps_its_cosine(store: PostgresStore) -> None:
    # 45 weak vector matches (cosines 0.35 down to 0.21, none with the word) and, nearer than none of them, the one
    # episode with the query's word: the 46th by cosine, outside the 40 vector candidates.
    cosines = [0.35 - i * (0.14 / 44) for i in range(45)] + [0.2]
    texts = [*(f"alpha task{i}" for i in range(45)), "zanzibar report"]
    project, ids = await _load(store, list(zip(texts, cosines, strict=True)))
    assert sorted(cosines, reverse=True).index(0.2) >= VECTOR_POOL
    page = await _assert_hybrid_is_fuse_of_whole_lists(store, project, ids, cosines, "zanzibar")
    # Its text share (1.0) and its cosine's share (0.2 / GOOD_COSINE = 0.4) put it first; a zero for its cosine
    # would put it last.
    assert page[0] == ids[-1]


async def test_a_vector_hit_beyond_the_text_candidates_keeps_its_text_share(store: PostgresStore) -> None:
    # More episodes holding the query's word than the text candidates, longer and longer (a lower BM25 each), none
    # near the query's vector but the longest, the last text hit.
    pool = candidate_pool(LIMIT)
    texts = ["zanzibar " + " ".join(f"filler{k}" for k in range(i + 1)) for i in range(pool + 5)]
    cosines = [0.0] * (pool + 4) + [0.9]
    project, ids = await _load(store, list(zip(texts, cosines, strict=True)))
    found = await store.search_episodes(project, "zanzibar", None, EpisodeFilter(), len(ids), T0, "text", MODEL)
    assert [e.episode_id for e in found].index(ids[-1]) >= pool
    page = await _assert_hybrid_is_fuse_of_whole_lists(store, project, ids, cosines, "zanzibar")
    assert page[0] == ids[-1]
    # Scored with its text share, not 0: above the vector weight alone.
    got = await store.search_episodes(project, "zanzibar", AXIS, EpisodeFilter(), 1, T0, "hybrid", MODEL)
    assert got[0].score > VECTOR_WEIGHT * blend(1.0, IMPORTANCE, T0, T0) + 1e-3
