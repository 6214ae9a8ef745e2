"""Migrations 0016 and 0017 add overloads: ``mcpmem_record_pause`` (24 arguments: the Redis order of the snapshot),
``mcpmem_record_resume`` (11: the restore's order) and ``mcpmem_pause`` (19: whether to refuse a pause dated before a
checkpoint written while it waited for the lock). The previous release's overloads stay at the head, for its servers
during an upgrade; downgrading drops only the new ones (and ``sessions.status_order``), upgrading brings them back."""

from __future__ import annotations

import pytest

from mcp_memory.stores.postgres.schema import head_revision, migrate
from tests import pg_servers

pytestmark = pytest.mark.anyio

ARITIES = (
    "SELECT proname || '/' || pronargs FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
    "WHERE nspname = 'mcp_memory' AND proname IN ('mcpmem_record_pause', 'mcpmem_record_resume', 'mcpmem_pause')"
)
STATUS_ORDER = (
    "SELECT attname FROM pg_attribute WHERE attrelid = CAST('sessions' AS regclass) AND attname = 'status_order' "
    "AND NOT attisdropped"
)
PREVIOUS = {"mcpmem_record_pause/22", "mcpmem_record_pause/23", "mcpmem_record_resume/10", "mcpmem_pause/18"}
LATER = {"mcpmem_record_pause/25", "mcpmem_record_resume/12"}
"""Migration 0024's overloads, which a downgrade to 0023 drops first."""


async def test_the_previous_overloads_stay_and_a_downgrade_drops_only_the_new_ones() -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    head = PREVIOUS | {"mcpmem_record_pause/24", "mcpmem_record_resume/11", "mcpmem_pause/19"}
    assert await pg_servers.first_column(url, ARITIES) == head | LATER
    _, down = await migrate(url, revision="0023", downgrade=True)
    assert await pg_servers.first_column(url, ARITIES) == head
    assert await pg_servers.first_column(url, STATUS_ORDER) == {"status_order"}
    _, down = await migrate(url, revision="0016", downgrade=True)
    assert down.revision == "0016"
    assert await pg_servers.first_column(url, ARITIES) == head - {"mcpmem_pause/19"}
    _, down = await migrate(url, revision="0015", downgrade=True)
    assert await pg_servers.first_column(url, ARITIES) == PREVIOUS
    assert await pg_servers.first_column(url, STATUS_ORDER) == set()
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision()
    assert await pg_servers.first_column(url, ARITIES) == head | LATER
