"""On SQLite, a project erased and then recorded again is searched by its new vectors only, also by a process that
held a matrix of its old ones; and a process that searches the erased project lets go of the old vectors.

The erase drops the project's ``vector_projects`` row (the file names no forgotten project), so the row made by the
next recording starts afresh; its ``changes`` must still be above the old row's, or a process whose matrix was built
at the old version finds nothing to rebuild: the new episodes (whose row ids may be the old ones again) missing from
its results, the forgotten vectors kept in its memory. ``vector_floor`` keeps the new version above the old. Two
stores on one file stand for two processes: nothing in memory is shared between them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.sqlite.store import SqliteStore
from tests.contract.test_durable_store import T0, embed, episode

pytestmark = pytest.mark.anyio

NOW = T0 + 3600.0
QUERY = "deploy the web service"


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"
    reader, writer = SqliteStore(url), SqliteStore(url)
    await reader.start()
    await writer.start()
    try:
        yield reader, writer
    finally:
        await reader.close()
        await writer.close()


async def record(store: SqliteStore, project: uuid.UUID, texts: list[str]) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for t in texts:
        ep = episode(project, t, created=T0)
        ids.append(await store.add_episode(ep, embed(f"{ep.task_type} {ep.task_description}"), "hash-test"))
    return ids


async def by_vector(store: SqliteStore, project: uuid.UUID) -> set[uuid.UUID]:
    hits = await store.search_episodes(project, QUERY, embed(QUERY), EpisodeFilter(), 20, NOW, "vector", "hash-test")
    return {h.episode_id for h in hits}


async def test_a_project_recorded_again_is_found_by_a_process_that_searched_it_before(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    reader, writer = stores
    project = uuid.uuid4()
    old = await record(writer, project, [f"deploy the web service, take {i}" for i in range(5)])
    assert await by_vector(reader, project) == set(old)
    await writer.erase(project, None, None, NOW, False)
    # Fewer than before, and the file holds no other episode: their row ids are the old ones again.
    new = await record(writer, project, [f"deploy the web service again, take {i}" for i in range(3)])
    assert await by_vector(reader, project) == set(new)


async def test_a_process_that_searches_an_erased_project_drops_its_vectors(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    reader, writer = stores
    project = uuid.uuid4()
    await record(writer, project, [f"deploy the web service, take {i}" for i in range(5)])
    assert await by_vector(reader, project)
    assert reader.vectors.nbytes > 0
    await writer.erase(project, None, None, NOW, False)
    assert await by_vector(reader, project) == set()
    assert reader.vectors.nbytes == 0
