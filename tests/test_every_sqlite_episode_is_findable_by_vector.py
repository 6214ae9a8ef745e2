"""Vector search on SQLite covers every episode of a project, however many: no cap, no window of the newest.

A 30,000-episode project (bulk-loaded with deterministic random vectors, oldest first) is searched by the vectors
of a sample across its whole range, the oldest included: each episode comes first for its own vector. The search
stays exact and current when the file changes under it, also from another connection (another process sharing the
file: the vector version is kept by SQLite triggers, not by this process), and keeps each project and each model to
itself.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from mcp_memory.models import Episode, Outcome
from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.sqlite.fulltext import create_tokenizer, load_episodes
from mcp_memory.stores.sqlite.store import SqliteStore
from mcp_memory.stores.sqlite.vectors import vector_to_blob

pytestmark = pytest.mark.anyio

EPISODES = 30_000
DIM = 64
MODEL = "fake-64"
START = datetime(2024, 1, 1, tzinfo=UTC)
NOW = (START + timedelta(days=EPISODES)).timestamp()
# Across the whole range: the oldest, the newest, and every 1,000th (older than the newest 20,000 included).
SAMPLE = [0, 1, *range(997, EPISODES, 1000), EPISODES - 1]


def vectors(n: int, seed: int) -> npt.NDArray[np.float32]:
    """Random directions: in 64 dimensions any two of 30,000 have a cosine far below an episode's own 1.0."""
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def episodes(project: uuid.UUID, n: int) -> list[Episode]:
    agent = uuid.uuid4()
    return [
        Episode(
            episode_id=uuid.uuid4(),
            project_id=project,
            agent_instance_id=agent,
            task_type="coding",
            task_description=f"task {i}",
            outcome=Outcome.SUCCESS if i % 3 else Outcome.FAILURE,
            importance_score=0.5,
            created_at=START + timedelta(days=i),  # oldest first, so the oldest have the lowest row ids
        )
        for i in range(n)
    ]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(f"sqlite+aiosqlite:///{tmp_path}/vectors.db")
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def first(
    store: SqliteStore, project: uuid.UUID, vector: npt.NDArray[np.float32], outcome: Outcome | None = None
) -> str | None:
    """The episode a vector search of ``project`` ranks first."""
    query = [float(x) for x in vector]
    hits = await store.search_episodes(project, "", query, EpisodeFilter(outcome=outcome), 1, NOW, "vector", MODEL)
    return str(hits[0].episode_id) if hits else None


async def test_every_episode_of_a_30000_episode_project_is_found_first_by_its_own_vector(
    store: SqliteStore, tmp_path: Path
) -> None:
    project, other = uuid.uuid4(), uuid.uuid4()
    ours, vecs = episodes(project, EPISODES), vectors(EPISODES, seed=1)
    # Another project holds the same vectors: its episodes must never answer this project's searches.
    theirs = episodes(other, 2000)
    await store._write_direct(lambda db: load_episodes(db, theirs, list(vecs[:2000]), MODEL))
    await store._write_direct(lambda db: load_episodes(db, ours, list(vecs), MODEL))

    for i in SAMPLE:
        assert await first(store, project, vecs[i]) == str(ours[i].episode_id), f"episode {i} not found first"
    # Exact under filters too: the best passing episode, however far down the unfiltered ranking it is.
    failure = next(i for i in range(EPISODES) if ours[i].outcome is Outcome.FAILURE)
    assert await first(store, project, vecs[failure], outcome=Outcome.FAILURE) == str(ours[failure].episode_id)
    assert await first(store, project, vecs[failure + 1], outcome=Outcome.FAILURE) != str(ours[failure + 1].episode_id)

    # Another connection to the file (as another process would) adds an episode, replaces the oldest one's vector
    # and deletes the newest: the next search sees all three, though this store's matrix was built before.
    added = episodes(project, 1)[0]
    new_vec, replacing = vectors(2, seed=2)
    db = sqlite3.connect(tmp_path / "vectors.db")
    create_tokenizer(db)
    try:
        with db:
            load_episodes(db, [added], [new_vec], MODEL)
        assert await first(store, project, new_vec) == str(added.episode_id)
        with db:
            db.execute(
                "UPDATE episodes SET embedding = ? WHERE episode_id = ?",
                (vector_to_blob([float(x) for x in replacing]), str(ours[0].episode_id)),
            )
            db.execute("DELETE FROM episodes WHERE episode_id = ?", (str(ours[-1].episode_id),))
    finally:
        db.close()
    assert await first(store, project, replacing) == str(ours[0].episode_id)
    assert await first(store, project, vecs[0]) != str(ours[0].episode_id)
    assert await first(store, project, vecs[-1]) != str(ours[-1].episode_id)


async def test_vectors_of_another_model_are_not_searched(store: SqliteStore) -> None:
    project = uuid.uuid4()
    eps, vecs = episodes(project, 10), vectors(10, seed=3)
    await store._write_direct(lambda db: load_episodes(db, eps[:5], list(vecs[:5]), MODEL))
    await store._write_direct(lambda db: load_episodes(db, eps[5:], list(vecs[5:]), "another-model"))
    assert await first(store, project, vecs[1]) == str(eps[1].episode_id)
    assert await first(store, project, vecs[7]) != str(eps[7].episode_id)


async def test_an_episode_recorded_after_a_search_is_found_by_the_next(store: SqliteStore) -> None:
    project = uuid.uuid4()
    eps, vecs = episodes(project, 3), vectors(3, seed=4)
    await store.add_episode(eps[0], [float(x) for x in vecs[0]], MODEL)
    assert await first(store, project, vecs[0]) == str(eps[0].episode_id)  # the matrix is built here
    for ep, vec in zip(eps[1:], vecs[1:], strict=True):
        await store.add_episode(ep, [float(x) for x in vec], MODEL)
        assert await first(store, project, vec) == str(ep.episode_id)


async def test_the_matrices_stay_within_their_memory_budget(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite+aiosqlite:///{tmp_path}/budget.db", vector_cache_bytes=300 * DIM * 4)
    await store.start()
    try:
        projects = [uuid.uuid4() for _ in range(3)]
        data = {p: (episodes(p, 200), vectors(200, seed=k)) for k, p in enumerate(projects)}
        for eps, vecs in data.values():
            await store._write_direct(partial(load_episodes, episodes=eps, embeddings=list(vecs), model=MODEL))
        for _ in range(2):
            for p, (eps, vecs) in data.items():
                assert await first(store, p, vecs[50]) == str(eps[50].episode_id)
                # The searched project is kept; the least recently searched are dropped to stay in budget.
                assert store.vectors.nbytes <= 200 * (DIM * 4 + 100) * 1.5
    finally:
        await store.close()
