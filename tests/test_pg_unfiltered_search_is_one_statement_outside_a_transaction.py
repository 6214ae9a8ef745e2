"""A Postgres search whose HNSW scan needs the store's default ``hnsw.ef_search`` (no filter, limit up to 25) is one
autocommit statement: every connection of the store has that ef_search (schema.connect_args), so no transaction is
opened to set it (BEGIN, set_config, COMMIT). A search needing a wider scan (filters) still sets its own, for its
transaction only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.embeddings import HashEmbedding
from mcp_memory.models import Episode, Outcome, to_datetime
from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.postgres.search import DEFAULT_EF_SEARCH, FILTERED_EF_FACTOR
from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
EMBEDDER = HashEmbedding()


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    # Every project searched through the HNSW index, so that ef_search matters.
    async with pg_servers.open_postgres_store(exact_scan_max=0) as s:
        yield s


async def _add(store: PostgresStore, project: uuid.UUID, description: str) -> None:
    ep = Episode(
        episode_id=uuid.uuid4(),
        project_id=project,
        agent_instance_id=uuid.uuid4(),
        task_type="coding",
        task_description=description,
        outcome=Outcome.FAILURE,
        importance_score=0.5,
        created_at=to_datetime(T0),
    )
    await store.add_episode(ep, EMBEDDER.embed_one(description), "hash@256")


@asynccontextmanager
async def _watched(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[list[str], list[str]]]:
    """The statements sent through the store's engine, and the kinds of connection taken ("read": autocommit,
    "write": a transaction), while the block runs."""
    statements: list[str] = []
    taken: list[str] = []
    read, write = store._read, store._write

    def spy(kind: str, original: object) -> object:
        def opened(*args: str) -> AbstractAsyncContextManager[AsyncConnection]:
            taken.append(kind)
            return original(*args)  # type: ignore[operator,no-any-return]

        return opened

    def note(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    engine = store._require_engine().sync_engine
    with monkeypatch.context() as patch:
        patch.setattr(store, "_read", spy("read", read))
        patch.setattr(store, "_write", spy("write", write))
        event.listen(engine, "before_cursor_execute", note)
        try:
            yield statements, taken
        finally:
            event.remove(engine, "before_cursor_execute", note)


async def test_unfiltered_search_sends_one_statement_without_a_transaction(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = uuid.uuid4()
    for i in range(30):
        await _add(store, project, f"rotate the vault credentials step {i}")
    query = "rotate vault credentials"
    qv = EMBEDDER.embed_one(query)
    for mode in ("hybrid", "vector", "text"):
        async with _watched(store, monkeypatch) as (statements, taken):
            found = await store.search_episodes(project, query, qv, EpisodeFilter(), 10, T0, mode)  # type: ignore[arg-type]
        assert len(found) == 10, mode
        assert taken == ["read"] and len(statements) == 1 and "set_config" not in statements[0], mode
    async with store._read() as conn:
        assert (await conn.execute(text("SHOW hnsw.ef_search"))).scalar() == str(DEFAULT_EF_SEARCH)


async def test_filtered_search_sets_its_wider_scan_for_its_transaction_only(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = uuid.uuid4()
    for i in range(30):
        await _add(store, project, f"rotate the vault credentials step {i}")
    query = "rotate vault credentials"
    async with _watched(store, monkeypatch) as (statements, taken):
        found = await store.search_episodes(
            project, query, EMBEDDER.embed_one(query), EpisodeFilter(outcome=Outcome.FAILURE), 10, T0
        )
    assert len(found) == 10
    assert taken == ["write"] and len(statements) == 2 and "set_config" in statements[0]
    assert FILTERED_EF_FACTOR > 1  # else the filtered search would need no wider scan
    async with store._read() as conn:
        assert (await conn.execute(text("SHOW hnsw.ef_search"))).scalar() == str(DEFAULT_EF_SEARCH)
