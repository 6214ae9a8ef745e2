"""Working memory in Redis, records in Postgres: a pause that leaves a copy in Redis records the copy's snapshot
nonce with its checkpoint, in the one statement of its record (migration 0013), and a resume takes the copy that
carries it. Downgrading past 0013 drops the column and the 23-argument ``mcpmem_record_pause``; the 22-argument one
of the previous release stays throughout, for its servers during an upgrade."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis
from sqlalchemy import text

from mcp_memory.config import Settings
from mcp_memory.json_values import encode_value
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.schema import head_revision, migrate
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests import pg_servers
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix

pytestmark = pytest.mark.anyio

RECORD_PAUSE_ARITIES = (
    "SELECT pronargs FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
    "WHERE nspname = 'mcp_memory' AND proname = 'mcpmem_record_pause'"
)
SNAPSHOT_COLUMN = (
    "SELECT attname FROM pg_attribute WHERE attrelid = CAST('checkpoints' AS regclass) AND attname = 'snapshot' "
    "AND NOT attisdropped"
)


@pytest.fixture
async def url() -> str:
    return pg_servers.database_url(await pg_servers.migrated_database())


@pytest.fixture
async def rt(url: str) -> AsyncIterator[MemoryRuntime]:
    prefix = unique_prefix()
    settings = Settings(database_url=url, redis_url=shared_redis_url(), redis_key_prefix=prefix)
    async with MemoryRuntime(settings, clock=FakeClock()) as runtime:
        working = runtime.working_store
        assert isinstance(working, RedisWorkingStore)
        working.copy_min_keys = 1  # every state is copied here
        yield runtime
    delete_keys(shared_redis_url(), prefix)


async def test_the_record_names_the_copys_snapshot_and_the_resume_takes_it(rt: MemoryRuntime) -> None:
    working = rt.working_store
    assert isinstance(working, RedisWorkingStore)
    scope = new_scope()
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await rt.lifecycle.spawn(*ids, initial_state={"a": 1, "b": 2})
    await rt.lifecycle.pause(*ids, checkpoint_id="cp1")
    recorded = await rt.store.get_packed_checkpoint(scope, "cp1")
    cv, _, ct = working.copy_keys(scope)
    admin = redis.Redis.from_url(shared_redis_url(), decode_responses=True)
    try:
        assert recorded is not None and recorded.snapshot is not None
        assert admin.hget(ct, "nonce") == recorded.snapshot
        admin.hset(cv, "a", encode_value("from the copy"))  # seen only if the resume takes the copy
    finally:
        admin.close()
    await rt.working.set(scope, "a", 5)
    await rt.lifecycle.resume(*ids)
    assert await rt.working.get(scope, "a") == "from the copy"
    listed = await rt.store.list_checkpoints(scope, 10, None)
    named = listed[0].model_copy(update={"snapshot": recorded.snapshot})
    assert "snapshot" not in named.model_dump() and "snapshot" not in named.model_dump_json()  # internal


async def test_downgrade_past_0013_drops_the_column_and_keeps_the_previous_record_function(url: str) -> None:
    assert await pg_servers.first_column(url, RECORD_PAUSE_ARITIES) == {"22", "23", "24", "25"}
    assert await pg_servers.first_column(url, SNAPSHOT_COLUMN) == {"snapshot"}
    _, down = await migrate(url, revision="0012", downgrade=True)
    assert down.revision == "0012"
    assert await pg_servers.first_column(url, RECORD_PAUSE_ARITIES) == {"22"}
    assert await pg_servers.first_column(url, SNAPSHOT_COLUMN) == set()
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision()
    assert await pg_servers.first_column(url, RECORD_PAUSE_ARITIES) == {"22", "23", "24", "25"}


async def test_a_checkpoint_that_names_no_snapshot_is_read_with_its_state_and_restored(
    rt: MemoryRuntime, url: str
) -> None:
    """One of an earlier release or an import: its first read brings its state (there is no copy to try)."""
    scope = new_scope()
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await rt.lifecycle.spawn(*ids, initial_state={"a": 1, "b": 2})
    await rt.lifecycle.pause(*ids, checkpoint_id="cp1")
    engine = PostgresStore(url)._create_engine()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE checkpoints SET snapshot = NULL"))
    finally:
        await engine.dispose()
    read = await rt.store.get_packed_checkpoint(scope, None, state_below=1)
    assert read is not None and read.snapshot is None and read.state != ""
    await rt.working.set(scope, "a", 5)
    await rt.lifecycle.resume(*ids)
    assert await rt.working.get(scope, "a") == 1
