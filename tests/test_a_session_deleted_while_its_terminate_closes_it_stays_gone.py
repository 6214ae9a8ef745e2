"""A session deleted (by another server) between its terminate's record and that terminate's closing of its working
memory stays gone: no Redis key names it and its calls answer not_found, that terminate's included. Before, the
terminate went on to mark working memory terminated, which wrote the terminated marker into the Redis the deletion
had emptied, for a day: the deleted session's writes answered ``conflict`` and a key named it after its deletion. If
the id is spawned again before the terminate goes on, the new session is not the terminate's: its working memory is
left as it is (and the terminate answers ``conflict``). The deletion comes at ``terminate.recorded``; on Redis with
SQLite and with Postgres (the SQL store alone keeps no marker); time moves on a fake clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import NotFound, Respawned
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import shared_redis_url
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio


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
        return [key for key in rt.working_store.all_keys(scope) if admin.exists(key)]
    finally:
        admin.close()


def deleted_by(other: MemoryRuntime, scope: Scope, clock: FakeClock, respawn: bool = False) -> faults.FaultHook:
    """A fault hook: ``other`` (another server) deletes the session just after the terminate recorded it (and, with
    ``respawn``, spawns its id again, a moment later: another incarnation)."""

    async def delete(point: str) -> None:
        if point == "terminate.recorded":
            await other.control.delete_session(*ids(scope))
            if respawn:
                clock.advance(1)
                await other.lifecycle.spawn(*ids(scope), initial_state={"goal": "again"})

    return delete


async def test_a_terminate_closing_a_session_deleted_since_its_record_leaves_no_key(
    settings: Settings, clock: FakeClock
) -> None:
    scope = new_scope()
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        await a.lifecycle.spawn(*ids(scope), initial_state={"goal": "ship", "step": 3})
        with faults.on_fault(deleted_by(b, scope, clock)), pytest.raises(NotFound):
            await a.lifecycle.terminate(*ids(scope))
        assert redis_keys(a, scope) == []
        assert await a.store.get_session(scope) is None
        with pytest.raises(NotFound):
            await a.working.set(scope, "k", 1)
        with pytest.raises(NotFound):
            await b.working.set(scope, "k", 1)
        with pytest.raises(NotFound):
            await a.lifecycle.terminate(*ids(scope))


async def test_a_terminate_closing_a_session_deleted_and_spawned_again_leaves_the_new_one_as_it_is(
    settings: Settings, clock: FakeClock
) -> None:
    scope = new_scope()
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        await a.lifecycle.spawn(*ids(scope), initial_state={"goal": "ship", "step": 3})
        with faults.on_fault(deleted_by(b, scope, clock, respawn=True)), pytest.raises(Respawned):
            await a.lifecycle.terminate(*ids(scope))
        for rt in (a, b):
            assert await rt.working.get(scope, "goal") == "again"
            assert await rt.working.list_keys(scope) == ["goal"]
        await a.working.set(scope, "step", 4)
        assert await b.working.get(scope, "step") == 4
        info = await a.store.get_session(scope)
        assert info is not None and info.status.value == "running"
