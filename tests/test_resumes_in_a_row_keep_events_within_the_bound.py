"""A resume prunes its session's lifecycle events as a pause does: resumes in a row, with no pause between them,
leave the newest ``event_retention_count`` events (and the successful spawn, never pruned), on every store kind:
SQLite alone and Postgres alone (one transaction each), Redis with SQLite records and Redis with Postgres records
(the two-step strategy's record of the resume)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests import pg_servers
from tests.conftest import FakeClock
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix

pytestmark = pytest.mark.anyio
BOUND = 4
RESUMES = 10


async def resumes_in_a_row(rt: MemoryRuntime, scope: Scope, clock: FakeClock) -> list[tuple[str, float]]:
    """Spawn, one pause, then :data:`RESUMES` resumes a second apart; the session's events (type, time)."""
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await rt.lifecycle.spawn(p, a, s, initial_state={"k": 1})
    clock.advance(1)
    await rt.lifecycle.pause(p, a, s)
    times: list[float] = []
    for _ in range(RESUMES):
        clock.advance(1)
        times.append(clock.now)
        assert (await rt.lifecycle.resume(p, a, s)).success
    events = [(e.event_type, e.at) for e in await rt.store.list_events(scope, 1000)]
    assert events[0][0] == "spawn"
    # The newest BOUND events are the last resumes; the pause and the older resumes went.
    assert events[1:] == [("resume", pytest.approx(t, abs=1e-3)) for t in times[-BOUND:]]
    return events


@pytest.mark.backends("sqlite", "redis", "postgres")
async def test_resumes_in_a_row_leave_the_newest_events_within_the_bound(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    async with MemoryRuntime(make_settings(event_retention_count=BOUND), clock=clock) as rt:
        events = await resumes_in_a_row(rt, scope, clock)
    assert len(events) == BOUND + 1


@pytest.fixture
async def redis_postgres_settings() -> AsyncIterator[Settings]:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    prefix = unique_prefix()
    yield Settings(database_url=url, redis_url=shared_redis_url(), redis_key_prefix=prefix, event_retention_count=BOUND)
    delete_keys(shared_redis_url(), prefix)


async def test_resumes_in_a_row_on_redis_with_postgres_records_stay_within_the_bound(
    redis_postgres_settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    async with MemoryRuntime(redis_postgres_settings, clock=clock) as rt:
        events = await resumes_in_a_row(rt, scope, clock)
    assert len(events) == BOUND + 1
