"""Working memory in Redis, records in Postgres (the two-step strategy): a pause's record, a resume's read of its
checkpoint and its record are each one statement sent on the asyncpg connection (its own transaction: no BEGIN, lock
or COMMIT message), nothing through SQLAlchemy; the same for 10 keys and 1,000, by id or the newest, and when
retention prunes checkpoints and events. Downgrading past 0010 drops ``mcpmem_record_pause``.

Counted as in ``test_pg_pause_and_resume_are_one_statement``: asyncpg's query logger on the driver connections,
SQLAlchemy's ``before_cursor_execute`` on the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.models import CheckpointInfo, to_datetime
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.ports import EventRecord, Retention
from mcp_memory.stores.postgres.schema import head_revision, migrate
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.postgres.two_step import RECORD_PAUSE, RECORD_RESUME, packed_reads
from mcp_memory.stores.redis.scripts import COPY_MIN_KEYS
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests import pg_servers
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix
from tests.test_pg_pause_and_resume_are_one_statement import sent

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0


@pytest.fixture
async def two_step_settings() -> AsyncIterator[Settings]:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    prefix = unique_prefix()
    # Retention that prunes on every pause once there are three checkpoints and ten events.
    yield Settings(
        database_url=url,
        redis_url=shared_redis_url(),
        redis_key_prefix=prefix,
        max_keys_per_session=2_000,
        checkpoint_retention_count=2,
        event_retention_count=10,
    )
    delete_keys(shared_redis_url(), prefix)


@pytest.mark.parametrize("keys", [10, 1_000])
async def test_pause_and_resume_send_one_statement_per_record(keys: int, two_step_settings: Settings) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        async with MemoryRuntime(two_step_settings, clock=FakeClock()) as rt:
            store = rt.store
            assert isinstance(store, PostgresStore) and isinstance(rt.working_store, RedisWorkingStore)
            scope = new_scope()
            p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
            await rt.lifecycle.spawn(p, a, s, initial_state={f"k{i}": i for i in range(keys)})
            for round_ in range(6):
                async with sent(store, monkeypatch) as pause:
                    paused = await rt.lifecycle.pause(p, a, s)
                by_id = round_ % 2 == 1
                checkpoint_id = paused.data["checkpoint_id"] if by_id else None
                async with sent(store, monkeypatch) as resume:
                    resumed = await rt.lifecycle.resume(
                        p, a, s, checkpoint_id=checkpoint_id, clear_current=round_ % 3 == 0
                    )
                assert resumed.data["items_restored"] == keys
                # With clear, a checkpoint of 250 keys or more is read without its state: the pause's Redis copy of it
                # is taken (stores/redis/copies.py).
                newest, one = packed_reads(COPY_MIN_KEYS if round_ % 3 == 0 else None)
                read = one if by_id else newest
                assert pause == {"driver": [RECORD_PAUSE], "engine": []}, pause
                assert resume == {"driver": [read, RECORD_RESUME], "engine": []}, resume
            # Pruned within those statements: the newest two checkpoints kept; of the 13 events, the last resume
            # (which prunes events as a pause does) kept the newest ten and the spawn (never pruned): two went.
            assert len(await rt.lifecycle.list_checkpoints(p, a, s)) == 2
            events = [(e.event_type, e.outcome) for e in await store.list_events(scope, 100)]
            assert len(events) == 11 and events[0] == ("spawn", "ok"), events
            assert events[-1] == ("resume", "ok") and (await store.get_session(scope)).status == "running"  # type: ignore[union-attr]


async def test_concurrent_records_of_one_session_keep_the_newest_and_at_most_the_last_records_own(
    two_step_settings: Settings,
) -> None:
    """Each record prunes with a snapshot taken after it locked the session: of 8 concurrent pauses, the session
    keeps the newest two (what one data-modifying statement, reading a snapshot from before its lock wait, could
    not promise), and at most one more: the last record's own checkpoint, which its prune spares even when it is
    dated before the others (migration 0015)."""
    async with MemoryRuntime(two_step_settings, clock=FakeClock(T0)) as rt:
        store = rt.store
        assert isinstance(store, PostgresStore)
        scope = new_scope()
        await rt.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)
        retention = Retention(keep_last=2)

        async def record(i: int) -> None:
            info = CheckpointInfo(
                checkpoint_id=f"c{i}", created_at=to_datetime(T0 + i), keys_count=0, bytes=0, content_hash="sha256:0"
            )
            await store.record_pause(scope, info, {}, EventRecord("pause", T0 + i, 0.0, "ok"), retention)

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(record, i)
        kept = [c.checkpoint_id for c in await store.list_checkpoints(scope, 10, None)]
        assert {"c6", "c7"} <= set(kept) and len(kept) <= 3, kept


async def test_downgrade_past_0010_drops_the_record_function() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())

    async def functions() -> set[str]:
        return await pg_servers.first_column(url, "SELECT proname FROM pg_proc WHERE proname LIKE 'mcpmem%'")

    assert "mcpmem_record_pause" in await functions()
    _, down = await migrate(url, revision="0008", downgrade=True)
    assert down.revision == "0008" and await functions() == {"mcpmem_pause", "mcpmem_resume"}
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision() and "mcpmem_record_pause" in await functions()
