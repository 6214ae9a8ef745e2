"""On Postgres, retention by count is pruned inside ``mcpmem_pause`` and ``mcpmem_resume`` (migration 0020) rather
than by the nested prune functions; the same rows survive. The same calls run on a database whose two functions have
0018's bodies (which call the prune functions) and on one at the head: kept checkpoints, the pause's own and the
newest by time are spared, a successful spawn's event outlives the event bound, and the counts on the session's row
stay exact. Downgrading gives the bodies of 0018 back."""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy import text

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.schema import head_revision, migrate
from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers
from tests.conftest import FakeClock, new_scope

pytestmark = pytest.mark.anyio

INLINE_PAUSE = (
    "SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace WHERE nspname = 'mcp_memory' "
    "AND proname = 'mcpmem_pause' AND pronargs = 19 AND prosrc LIKE '%RETURNING id INTO own_event%'"
)
COUNTS = (
    "SELECT s.unkept_checkpoints = (SELECT count(*) FROM checkpoints c WHERE c.session_pk = s.id AND NOT c.keep) "
    "AND s.event_count = (SELECT count(*) FROM events e WHERE e.session_pk = s.id) FROM sessions s"
)


async def with_0018s_bodies(url: str) -> None:
    """The two functions' bodies of 0018 put back at the head (the revision left as is, so that a server of this
    release opens the database), with the outputs a server of this release reads since 0025 added (left NULL: read
    only when the function refuses, which no call here makes it do)."""
    timed = importlib.import_module(
        "mcp_memory.stores.migrations.versions.postgres.0018_transitions_timed_once_the_row_is_free"
    )
    answering = importlib.import_module(
        "mcp_memory.stores.migrations.versions.postgres.0025_transitions_answer_the_session_they_refused"
    )
    pause = timed.PAUSE.replace(
        "OUT o_overtaken boolean)",
        "OUT o_overtaken boolean, OUT o_status text, OUT o_sealed boolean, OUT o_made timestamptz)",
        1,
    )
    resume = timed.RESUME.replace("OUT o_waited boolean)", "OUT o_waited boolean, OUT o_made timestamptz)", 1)
    engine = PostgresStore(url)._create_engine()
    try:
        async with engine.begin() as conn:
            for signature, body in ((answering.PAUSE_SIGNATURE, pause), (answering.RESUME_SIGNATURE, resume)):
                await conn.execute(text(f"DROP FUNCTION {signature}"))
                await conn.execute(text(body.replace("CREATE OR REPLACE FUNCTION", "CREATE FUNCTION", 1)))
    finally:
        await engine.dispose()


async def lifecycle_at_the_bounds(url: str) -> tuple[list[str], list[str]]:
    """Pauses (some kept) and resumes well past bounds of 3 checkpoints and 6 events; the checkpoints listed (newest
    first) and the events' types and outcomes (oldest first) left at the end."""
    scope = new_scope()
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    clock = FakeClock()
    settings = Settings(database_url=url, checkpoint_retention_count=3, event_retention_count=6)
    async with MemoryRuntime(settings, clock=clock) as rt:
        await rt.lifecycle.spawn(p, a, s, initial_state={"k": 0})
        for i in range(12):
            clock.advance(1)
            await rt.working.set(scope, "k", i)
            await rt.lifecycle.pause(p, a, s, checkpoint_id=f"c{i:02d}", keep=i in (2, 7))
            if i % 3 == 0:
                clock.advance(1)
                await rt.lifecycle.resume(p, a, s)
        listed = [c["checkpoint_id"] for c in await rt.lifecycle.list_checkpoints(p, a, s, limit=100)]
        events = await pg_servers.first_column(
            url, "SELECT e.id || ':' || e.event_type || ':' || e.outcome FROM events e ORDER BY e.id"
        )
        assert await pg_servers.first_column(url, COUNTS) == {"True"}
    ordered = sorted(events, key=lambda e: int(e.split(":", 1)[0]))
    return listed, [e.split(":", 1)[1] for e in ordered]


async def test_inline_retention_keeps_the_rows_the_prune_functions_kept() -> None:
    before = pg_servers.database_url(await pg_servers.migrated_database())
    await with_0018s_bodies(before)
    assert await pg_servers.first_column(before, INLINE_PAUSE) == set()
    head = pg_servers.database_url(await pg_servers.migrated_database())
    assert await pg_servers.first_column(head, INLINE_PAUSE) == {"mcpmem_pause"}

    expected, expected_events = await lifecycle_at_the_bounds(before)
    listed, events = await lifecycle_at_the_bounds(head)
    assert listed == expected == ["c11", "c10", "c09", "c07", "c02"]
    assert events == expected_events
    # The bound counts the spawn, which is never pruned: it stays as the oldest, one over.
    assert len(events) == 7 and events[0] == "spawn:ok"


async def test_a_downgrade_restores_0018s_bodies_and_upgrade_brings_0020s_back() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    _, down = await migrate(url, revision="0019", downgrade=True)
    assert down.revision == "0019"
    assert await pg_servers.first_column(url, INLINE_PAUSE) == set()
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision()
    assert await pg_servers.first_column(url, INLINE_PAUSE) == {"mcpmem_pause"}
