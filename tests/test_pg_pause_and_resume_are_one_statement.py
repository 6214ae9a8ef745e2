"""On Postgres (working memory in Postgres too), a pause and a resume are each one statement sent to the server: a
``SELECT`` of the function of migration 0008, its own transaction (no BEGIN, lock or COMMIT message), with nothing
through SQLAlchemy; the same for 10 keys and 1,000, and when retention prunes checkpoints and events. Downgrading
past 0008 drops the functions, upgrading brings them back.

Counted, not timed: asyncpg's query logger notes each statement the store sends on its driver connection, and
SQLAlchemy's ``before_cursor_execute`` each one sent through the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.lowlevel
import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import event

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.connection import TOO_LARGE
from mcp_memory.stores.postgres.schema import head_revision, migrate
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.postgres.transitions import PAUSE, RESUME
from tests import pg_servers
from tests.conftest import FakeClock, new_scope

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def sent(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, list[str]]]:
    """The statements ``store`` sends while the block runs: on its driver connections and through its engine."""
    seen: dict[str, list[str]] = {"driver": [], "engine": []}
    original = store._driver

    @asynccontextmanager
    async def counted(too_large: str = TOO_LARGE) -> AsyncIterator[asyncpg.Connection]:
        async with original(too_large) as driver:

            def note(record: asyncpg.LoggedQuery) -> None:
                seen["driver"].append(record.query)

            driver.add_query_logger(note)
            try:
                yield driver
            finally:
                driver.remove_query_logger(note)

    def through_engine(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen["engine"].append(statement)

    engine = store._require_engine().sync_engine
    with monkeypatch.context() as patch:
        patch.setattr(store, "_driver", counted)
        event.listen(engine, "before_cursor_execute", through_engine)
        try:
            yield seen
            await anyio.lowlevel.checkpoint()  # asyncpg calls its query loggers soon after a query, not during it
        finally:
            event.remove(engine, "before_cursor_execute", through_engine)


@pytest.mark.parametrize("keys", [10, 1_000])
async def test_pause_and_resume_send_one_statement_each(keys: int, monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    # Retention that prunes on every pause once there are three checkpoints and ten events.
    settings = Settings(
        database_url=url, max_keys_per_session=2_000, checkpoint_retention_count=2, event_retention_count=10
    )
    async with MemoryRuntime(settings, clock=FakeClock()) as rt:
        store = rt.store
        assert isinstance(store, PostgresStore)
        scope = new_scope()
        p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
        await rt.lifecycle.spawn(p, a, s, initial_state={f"k{i}": i for i in range(keys)})
        for round_ in range(6):
            async with sent(store, monkeypatch) as pause:
                await rt.lifecycle.pause(p, a, s)
            async with sent(store, monkeypatch) as resume:
                await rt.lifecycle.resume(p, a, s, clear_current=round_ % 2 == 0)
            assert pause == {"driver": [PAUSE], "engine": []}, pause
            assert resume == {"driver": [RESUME], "engine": []}, resume
        # Pruned within those single statements: the newest two checkpoints kept; of the 13 events, the last resume
        # (which prunes events as a pause does) kept the newest ten and the spawn (never pruned): two went.
        assert len(await rt.lifecycle.list_checkpoints(p, a, s)) == 2
        events = [(e.event_type, e.outcome) for e in await store.list_events(scope, 100)]
        assert len(events) == 11 and events[0] == ("spawn", "ok"), events


async def test_downgrade_past_0008_drops_the_functions_and_upgrade_restores_them() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())

    async def functions() -> set[str]:
        return await pg_servers.first_column(
            url,
            "SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
            "WHERE nspname = 'mcp_memory' AND proname LIKE 'mcpmem%'",
        )

    # mcpmem_project_words: the full-text index's expression (migration 0009); mcpmem_record_pause: the two-step
    # path's record (0010); mcpmem_record_resume and the two prunes by per-session counts (0011); an episode's word
    # weights and their trigger's function (0014); all dropped on the way down too.
    at_head = {
        "mcpmem_pause",
        "mcpmem_resume",
        "mcpmem_project_words",
        "mcpmem_record_pause",
        "mcpmem_record_resume",
        "mcpmem_prune_checkpoints",
        "mcpmem_prune_events",
        "mcpmem_search_weights",
        "mcpmem_episode_search_weights",
    }
    assert await functions() == at_head
    _, down = await migrate(url, revision="0007", downgrade=True)
    assert down.revision == "0007" and await functions() == set()
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision() and await functions() == at_head
