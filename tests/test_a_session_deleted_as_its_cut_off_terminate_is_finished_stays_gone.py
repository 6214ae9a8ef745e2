"""A session whose terminate was cut off after its record, deleted (by another server) just as a retried terminate
past the lease, or the terminate sweep, comes to finish that job, stays gone: no Redis key names it and its calls
answer not_found. Before, the claim of the job failed (the row was gone) and the finisher took that for another call
at work: it marked working memory terminated all the same, which wrote the terminated marker into the emptied Redis
for a day, so that the deleted session's calls answered ``conflict`` (terminated) and a key named it after its
deletion. The deletion comes at ``terminate.claiming``, between the finisher's read of the record and its claim; on
Redis with SQLite and with Postgres (the SQL store alone keeps no marker); time moves on a fake clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import NotFound
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.terminate_sweep import SWEEP_MARGIN_SECONDS
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import shared_redis_url
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio


class ServerDied(BaseException):
    """The server stops dead at a fault point: none of the call's own cleanup runs."""


@pytest.fixture(params=["redis+sqlite", "redis+postgres"])
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    async with settings_for(request.param, tmp_path) as settings:
        yield settings


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def redis_keys(rt: MemoryRuntime, scope: Scope) -> list[str]:
    """The session's Redis keys that exist."""
    assert isinstance(rt.working_store, RedisWorkingStore)
    admin = redis.Redis.from_url(shared_redis_url(), decode_responses=True)
    try:
        return [key for key in rt.working_store.keys(scope) if admin.exists(key)]
    finally:
        admin.close()


async def cut_off_after_its_record(rt: MemoryRuntime, scope: Scope) -> None:
    """``rt`` spawns the session and its terminate dies just after the durable record."""
    await rt.lifecycle.spawn(*ids(scope), initial_state={"goal": "ship", "step": 3})

    async def die(point: str) -> None:
        if point == "terminate.recorded":
            raise ServerDied(point)

    with faults.on_fault(die), pytest.raises(ServerDied):
        await rt.lifecycle.terminate(*ids(scope), metadata={"run": 7})
    assert redis_keys(rt, scope)  # the sealed working memory, left for the finisher


def deleted_by(other: MemoryRuntime, scope: Scope) -> faults.FaultHook:
    """A fault hook: ``other`` (another server) deletes the session as the finisher is about to claim its job."""

    async def delete(point: str) -> None:
        if point == "terminate.claiming":
            await other.control.delete_session(*ids(scope))

    return delete


async def assert_gone(rt: MemoryRuntime, scope: Scope) -> None:
    assert redis_keys(rt, scope) == []
    assert await rt.store.get_session(scope) is None
    with pytest.raises(NotFound):
        await rt.working.set(scope, "k", 1)
    with pytest.raises(NotFound):
        await rt.lifecycle.terminate(*ids(scope))


async def test_a_retry_past_the_lease_meeting_the_deletion_answers_not_found_and_leaves_no_key(
    settings: Settings, clock: FakeClock
) -> None:
    scope = new_scope()
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        await cut_off_after_its_record(a, scope)
        clock.advance(a.settings.terminate_lease_seconds + 1)
        with faults.on_fault(deleted_by(b, scope)), pytest.raises(NotFound):
            await a.lifecycle.terminate(*ids(scope))
        await assert_gone(a, scope)


async def test_a_sweep_pass_meeting_the_deletion_finishes_nothing_and_leaves_no_key(
    settings: Settings, clock: FakeClock
) -> None:
    scope = new_scope()
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        await cut_off_after_its_record(a, scope)
        clock.advance(a.settings.terminate_lease_seconds + SWEEP_MARGIN_SECONDS + 1)
        with faults.on_fault(deleted_by(b, scope)):
            assert await a.terminate_sweep.run_once() == 0
        await assert_gone(a, scope)
        assert await a.terminate_sweep.run_once() == 0
