"""An episode recorded for a project while an erase of that whole project is in its transaction, its episodes
deleted and its per-project bookkeeping about to go (the fault point ``erase.episodes_deleted``), waits for the
erase (SQLite: the one writer; Postgres: the project's count row, locked by the erase's deletes) and then writes
that bookkeeping anew: it is found by its words and by its vector, and the project's full-text statistics are those
of a store that only ever held it. The erase drops a project's rows only when it holds no episode in the erase's
own transaction, so it never drops the rows of an episode counted into them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from mcp_memory import faults
from mcp_memory.stores.ports import DurableStore, EpisodeFilter, SearchMode
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sqlite.store import SqliteStore
from tests.conftest import make_store
from tests.contract.test_durable_store import T0, embed, episode
from tests.contract.test_forgotten_episodes_leave_no_trace import text_statistics
from tests.waiting import until

pytestmark = pytest.mark.anyio

NOW = T0 + 3600.0
LOCK_WAITS = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DurableStore]:
    s: DurableStore = await make_store(str(request.param), tmp_path)
    try:
        yield s
    finally:
        await s.close()


async def add(store: DurableStore, description: str, project: uuid.UUID) -> uuid.UUID:
    ep = episode(project, description, created=T0)
    return await store.add_episode(ep, embed(f"{ep.task_type} {ep.task_description}"), "hash-test")


async def waits_for_the_erase(store: DurableStore) -> bool:
    """Whether a write is held back by the erase's transaction."""
    if isinstance(store, SqliteStore):
        return store._write_lock.statistics().tasks_waiting > 0
    assert isinstance(store, PostgresStore)
    async with store._read() as conn:
        return int((await conn.execute(text(LOCK_WAITS))).scalar_one()) > 0


async def test_an_episode_recorded_while_its_project_is_erased_is_found_and_counted(
    store: DurableStore, tmp_path: Path
) -> None:
    project = uuid.uuid4()
    for description in ("rebuild the search index", "ship the parser release", "retry the flaky deploy"):
        await add(store, description, project)
    racing: list[uuid.UUID] = []

    async def record() -> None:
        racing.append(await add(store, "zebra migration of the billing ledger", project))

    async def between(point: str) -> None:
        if point == "erase.episodes_deleted":
            tg.start_soon(record)
            await until(lambda: waits_for_the_erase(store), what="the racing write waits for the erase")

    with faults.on_fault(between), anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            removed = await store.erase(project, None, None, NOW, False)
    assert removed.episodes == 3
    assert len(racing) == 1
    query = "zebra billing ledger"
    modes: list[tuple[SearchMode, Sequence[float] | None]] = [
        ("text", None),
        ("vector", embed(query)),
        ("hybrid", embed(query)),
    ]
    for mode, vector in modes:
        hits = await store.search_episodes(project, query, vector, EpisodeFilter(), 10, NOW, mode, "hash-test")
        assert [h.episode_id for h in hits] == racing, mode

    where = tmp_path / "never"
    where.mkdir()
    never: DurableStore = await make_store("sqlite" if isinstance(store, SqliteStore) else "postgres", where)
    try:
        await add(never, "zebra migration of the billing ledger", project)
        assert await text_statistics(store, project) == await text_statistics(never, project)
    finally:
        await never.close()
