"""A spawn with working memory in Redis that fails once its tool call's deadline is spent still undoes what it wrote:
its incomplete durable record (and spawn event) and its staged keys in Redis. The undo is compensation, which runs in
the call's cleanup window (``call_cleanup_seconds``) like a failed terminate's unseal; before, it ran under the
spent budget, so every store step it took was refused at once and a spawn that was never retried left an invisible
session row and staged keys without an expiry behind for good, and a retry was ``conflict`` until the lease lapsed.

On Redis + SQLite and Redis + Postgres: the leftovers are listed by SCAN over the test's key prefix and by counting
the durable store's rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from mcp_memory import deadlines, faults
from mcp_memory.config import Settings
from mcp_memory.errors import Unavailable
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import new_scope
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix
from tests.waiting import until

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"
    else:
        from tests import pg_servers

        url = pg_servers.database_url(await pg_servers.migrated_database())
    prefix = unique_prefix()
    try:
        yield Settings(database_url=url, redis_url=shared_redis_url(), redis_key_prefix=prefix)
    finally:
        delete_keys(shared_redis_url(), prefix)


def redis_keys(prefix: str) -> list[str]:
    client = redis.Redis.from_url(shared_redis_url(), decode_responses=True)
    try:
        return sorted(client.scan_iter(match=f"{prefix}:*", count=1000))
    finally:
        client.close()


async def durable_rows(rt: MemoryRuntime) -> dict[str, int]:
    """Rows of the durable store's session tables, incomplete sessions included (no call lists those)."""
    engine = rt.store._require_engine()  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        return {
            table: int((await conn.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar_one())
            for table in ("sessions", "events", "working_items")
        }


async def test_a_spawn_that_fails_after_its_call_deadline_is_spent_removes_what_it_wrote(settings: Settings) -> None:
    scope = new_scope("late")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)

    async def spend_the_budget_then_fail(point: str) -> None:
        # The steps so far took the call's whole budget (a slow store); the next one fails for it, as a store step
        # started with the budget spent does.
        if point == "spawn.staged":
            await until(deadlines.spent, within=5, what="the call's budget spent")
            raise Unavailable(deadlines.deadline_message("the store"))

    async with MemoryRuntime(settings) as rt:
        with (
            faults.on_fault(spend_the_budget_then_fail),
            deadlines.call_deadline(0.3, 2.0),
            pytest.raises(Unavailable),
        ):
            await rt.lifecycle.spawn(*ids, initial_state={"k": 1})
        assert redis_keys(settings.redis_key_prefix) == [], "the failed spawn left its staged keys in Redis"
        assert await durable_rows(rt) == {"sessions": 0, "events": 0, "working_items": 0}
        # Nothing holds the session: a retry at once succeeds (no wait for the failed spawn's lease).
        assert (await rt.lifecycle.spawn(*ids, initial_state={"k": 2})).data["initial_items"] == 1
        assert await rt.working.state(scope) == {"k": 2}
