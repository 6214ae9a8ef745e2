"""Migration 0024 adds overloads of ``mcpmem_record_pause`` (25 arguments) and ``mcpmem_record_resume`` (12, one
output more) that record only on the session the Redis step was made from (its creation time). The previous
release's overloads (24 and 11 arguments) stay at the head and still record, for its servers during an upgrade; the
new ones write nothing on a session created at another time. Downgrading to 0023 drops only the new ones, and
upgrading brings them back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mcp_memory.models import CheckpointInfo, SessionStatus, to_datetime
from mcp_memory.stores.ports import EventRecord
from mcp_memory.stores.postgres import two_step
from mcp_memory.stores.postgres.schema import head_revision, migrate
from mcp_memory.stores.postgres.statements import event_params
from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers
from tests.conftest import new_scope

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0

ARITIES = (
    "SELECT proname || '/' || pronargs FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
    "WHERE nspname = 'mcp_memory' AND proname IN ('mcpmem_record_pause', 'mcpmem_record_resume')"
)
NEW = {"mcpmem_record_pause/25", "mcpmem_record_resume/12"}
PREVIOUS_PAUSE = (
    "SELECT mcpmem_record_pause($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, "
    "$19, $20, $21, $22, $23, $24) AS done"
)
PREVIOUS_RESUME = (
    "SELECT o_status AS status, o_sealed AS sealed FROM mcpmem_record_resume($1, $2, $3, $4, $5, $6, $7, $8, $9, "
    "$10, $11)"
)
"""The statements of the previous release (migration 0016's overloads)."""


def checkpoint(checkpoint_id: str, at: float) -> CheckpointInfo:
    return CheckpointInfo(
        checkpoint_id=checkpoint_id, created_at=to_datetime(at), keys_count=0, bytes=0, content_hash="sha256:x"
    )


async def test_the_previous_records_still_record_and_the_new_ones_only_on_their_session() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    store = PostgresStore(url)
    await store.start()
    try:
        scope = new_scope()
        info = await store.create_session(scope, None, {}, T0, EventRecord("spawn", T0, 0.0, "ok"))
        other = info.created_at + timedelta(microseconds=1)  # a session spawned again under the id, a µs later
        pause, resume = EventRecord("pause", T0 + 1, 0.0, "ok"), EventRecord("resume", T0 + 2, 0.0, "ok")

        def pause_args(cid: str, made_from: object) -> tuple[object, ...]:
            return two_step.record_pause_args(
                scope, checkpoint(cid, T0 + 1), "{}", b"{}", event_params(pause), None, None, made_from
            )

        async with store._driver() as driver:
            assert await driver.fetchval(PREVIOUS_PAUSE, *pause_args("by-the-previous-release", None)[:-1])
            assert not await driver.fetchval(two_step.RECORD_PAUSE, *pause_args("by-another-session", other))
            assert await driver.fetchval(two_step.RECORD_PAUSE, *pause_args("by-this-session", info.created_at))
            resume_args = two_step.record_resume_args(scope, event_params(resume), None, None, other)
            row = await driver.fetchrow(two_step.RECORD_RESUME, *resume_args)
            assert (row["status"], row["other"]) == ("paused", True)
            row = await driver.fetchrow(PREVIOUS_RESUME, *resume_args[:-1])
            assert row["status"] == "paused"  # (as it was before this record, which marks it running)
        saved = {c.checkpoint_id for c in await store.list_checkpoints(scope, 50, None)}
        assert saved == {"by-the-previous-release", "by-this-session"}
        events = [e.event_type for e in await store.list_events(scope, 50)]
        assert events == ["spawn", "pause", "pause", "resume"]
        session = await store.get_session(scope)
        assert session is not None and session.status == SessionStatus.RUNNING
    finally:
        await store.close()


async def test_a_downgrade_to_0023_drops_only_the_new_overloads() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    head = await pg_servers.first_column(url, ARITIES)
    assert NEW <= head and {"mcpmem_record_pause/24", "mcpmem_record_resume/11"} <= head
    _, down = await migrate(url, revision="0023", downgrade=True)
    assert down.revision == "0023"
    assert await pg_servers.first_column(url, ARITIES) == head - NEW
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision()
    assert await pg_servers.first_column(url, ARITIES) == head
