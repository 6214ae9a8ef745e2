"""Migration 0025 drops ``mcpmem_pause`` (19 arguments) and ``mcpmem_resume`` (15) and creates them again with the
same arguments and more outputs: the session they read (status, seal, record's creation time). A server of the
previous release, which selects the outputs it knows by name, keeps pausing and resuming across the upgrade, on the
connection whose statements it prepared before it (Postgres plans them again). Downgrading to 0024 gives the
functions of 0020 back, and upgrading brings the new ones again."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mcp_memory.models import to_datetime
from mcp_memory.stores.ports import EventRecord
from mcp_memory.stores.postgres.schema import head_revision, migrate
from mcp_memory.stores.postgres.statements import INSERT_SESSION, event_params, session_params, with_event
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.postgres.transitions import PAUSE, RESUME, pause_args, resume_args
from tests import pg_servers
from tests.conftest import new_scope

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0

PREVIOUS_PAUSE = (
    "SELECT o_done AS done, o_keys AS keys_count, o_bytes AS bytes, o_hash AS content_hash, o_overtaken AS overtaken "
    "FROM mcpmem_pause($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
)
PREVIOUS_RESUME = (
    "SELECT o_status AS status, o_sealed AS sealed, o_checkpoint AS checkpoint_id, o_created AS created_at, "
    "o_keys AS keys_count, o_bytes AS bytes, o_label AS label, o_hash AS content_hash, o_metadata AS metadata, "
    "o_keep AS keep, o_restored AS restored, o_kept AS kept, o_done AS done, o_waited AS waited "
    "FROM mcpmem_resume($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
)
"""The statements of the previous release."""
ANSWERING = (
    "SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace WHERE nspname = 'mcp_memory' "
    "AND proname IN ('mcpmem_pause', 'mcpmem_resume') AND 'o_made' = ANY (proargnames)"
)


async def test_a_server_of_the_previous_release_pauses_and_resumes_across_the_upgrade() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    _, down = await migrate(url, revision="0024", downgrade=True)
    assert down.revision == "0024"
    assert await pg_servers.first_column(url, ANSWERING) == set()
    scope = new_scope()
    spawned = EventRecord("spawn", T0, 0.0, "ok")
    engine = PostgresStore(url)._create_engine()
    try:
        async with engine.begin() as conn:
            params = {**session_params(scope, None, {}, T0), **event_params(spawned)}
            made = (await conn.execute(text(with_event(INSERT_SESSION)), params)).one().created_at
        pooled = await engine.raw_connection()
        try:
            driver = pooled.driver_connection
            assert driver is not None

            async def pause(checkpoint_id: str, at: float, statement: str = PREVIOUS_PAUSE) -> dict[str, object]:
                event = event_params(EventRecord("pause", at, 0.0, "ok"))
                args = pause_args(scope, at, checkpoint_id, to_datetime(at), None, "{}", False, event, None, True)
                return dict(await driver.fetchrow(statement, *args))

            async def resume(at: float, statement: str = PREVIOUS_RESUME) -> dict[str, object]:
                event = event_params(EventRecord("resume", at, 0.0, "ok"))
                return dict(
                    await driver.fetchrow(statement, *resume_args(scope, at, None, True, 100, event, None, True))
                )

            assert (await pause("before", T0 + 1))["done"]
            assert (await resume(T0 + 2))["checkpoint_id"] == "before"
            _, up = await migrate(url, embedding_dimension=256)  # while the previous release's connection is open
            assert up.revision == head_revision()
            assert await pg_servers.first_column(url, ANSWERING) == {"mcpmem_pause", "mcpmem_resume"}
            # The same prepared statements, on the same connection.
            assert (await pause("after", T0 + 3))["done"]
            assert not (await pause("after", T0 + 4))["done"]  # a taken id: refused, as before
            assert (await resume(T0 + 5))["checkpoint_id"] == "after"
            # This release's statements read the session the functions refused.
            refused = await pause("after", T0 + 6, PAUSE)
            assert (refused["done"], refused["status"], refused["made"]) == (False, "running", made)
            answered = await resume(T0 + 7, RESUME)
            assert (answered["done"], answered["made"]) == (True, made)
        finally:
            pooled.close()
    finally:
        await engine.dispose()
    _, down = await migrate(url, revision="0024", downgrade=True)
    assert await pg_servers.first_column(url, ANSWERING) == set()
    _, up = await migrate(url, embedding_dimension=256)
    assert await pg_servers.first_column(url, ANSWERING) == {"mcpmem_pause", "mcpmem_resume"}
