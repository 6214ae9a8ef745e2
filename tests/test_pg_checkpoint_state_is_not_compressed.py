"""On Postgres a checkpoint's state is stored without pglz compression (migration 0012): a pause does not spend its
time on compressing, or on trying and failing to compress, a large state. The state is still read back whole, and
downgrading past 0012 restores the default storage."""

from __future__ import annotations

import random
import string

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.schema import head_revision, migrate
from tests import pg_servers
from tests.conftest import FakeClock, new_scope

pytestmark = pytest.mark.anyio

STORAGE = (
    "SELECT CAST(attstorage AS text) FROM pg_attribute "
    "WHERE attrelid = CAST('checkpoints' AS regclass) AND attname = 'state'"
)


async def test_a_large_state_is_stored_whole_and_read_back() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    assert await pg_servers.first_column(url, STORAGE) == {"e"}  # EXTERNAL: out of line, not compressed
    rng = random.Random(5)
    state = {f"k{i:04d}": "".join(rng.choices(string.ascii_letters, k=40)) + "-" * 60 for i in range(300)}
    scope = new_scope()
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    async with MemoryRuntime(Settings(database_url=url), clock=FakeClock()) as rt:
        await rt.lifecycle.spawn(*ids, initial_state=state)
        await rt.lifecycle.pause(*ids, checkpoint_id="big")
        # Stored at its full size (the 60 dashes of each value would compress), out of line.
        stored = await pg_servers.first_column(
            url, "SELECT pg_column_size(state) >= octet_length(CAST(state AS text)) FROM checkpoints"
        )
        assert stored == {"True"}
        checkpoint = await rt.store.get_checkpoint(scope, "big")
        assert checkpoint is not None and checkpoint.state() == state


async def test_downgrade_past_0012_restores_the_default_storage() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    _, down = await migrate(url, revision="0011", downgrade=True)
    assert down.revision == "0011" and await pg_servers.first_column(url, STORAGE) == {"x"}  # EXTENDED
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision() and await pg_servers.first_column(url, STORAGE) == {"e"}
