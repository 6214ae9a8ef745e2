"""A Redis that lost a session's keys, its order key with them, and whose clock is behind the one that gave the order
last recorded (a failover to another host, a restart after the clock stepped back) re-opens the session from the
durable store with its order key raised to that recorded order: the next pauses and resumes order above it and set
the status, instead of answering ok while the status stays as it was until this Redis's clock catches up. Simulated
by recording an order an hour ahead of Redis's clock and deleting the session's Redis keys. Working memory in Redis,
records on SQLite or Postgres."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import text

from mcp_memory.models import Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore

pytestmark = pytest.mark.anyio

AN_HOUR_AHEAD_US = int((time.time() + 3600) * 1_000_000)
"""An order another Redis, its clock an hour ahead of this one, would have given (microseconds)."""


async def _status(rt: MemoryRuntime, scope: Scope) -> SessionStatus:
    info = await rt.store.get_session(scope)
    assert info is not None
    return info.status


async def _lose_to_a_redis_behind(rt: MemoryRuntime, scope: Scope) -> None:
    """The durable record carries an order an hour ahead of Redis's clock; Redis has none of the session's keys."""
    async with rt.store._write() as conn:  # type: ignore[attr-defined]
        await conn.execute(
            text("UPDATE sessions SET status_order = :o WHERE session_id = :s"),
            {"o": AN_HOUR_AHEAD_US, "s": scope.session_id},
        )
    working = rt.working_store
    assert isinstance(working, RedisWorkingStore)
    await working.client.delete(*working.all_keys(scope))


@pytest.mark.parametrize("first", ["resume", "pause"])
async def test_transitions_after_a_redis_behind_reopened_the_session_set_the_status(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], first: str
) -> None:
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), str(uuid.uuid4()))
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await a.lifecycle.spawn(*ids, initial_state={"step": 1})
    await a.lifecycle.pause(*ids, checkpoint_id="before")
    if first == "pause":
        await a.lifecycle.resume(*ids)
    await _lose_to_a_redis_behind(a, scope)
    # The first call re-opens it (a resume's restore, or a pause's snapshot), then the servers take turns.
    for rt, step in [(a, first), (b, "resume" if first == "pause" else "pause"), (a, first)]:
        if step == "pause":
            await rt.lifecycle.pause(*ids)
            assert await _status(a, scope) == SessionStatus.PAUSED
        else:
            await rt.lifecycle.resume(*ids)
            assert await _status(a, scope) == SessionStatus.RUNNING


async def test_the_durable_record_carries_the_order_of_its_last_transition(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    """What a re-open raises the order key to: the order the last pause or resume recorded (none before one)."""
    a, _ = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), str(uuid.uuid4()))
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await a.lifecycle.spawn(*ids)
    spawned = await a.store.get_session(scope)
    assert spawned is not None and spawned.status_order is None
    await a.lifecycle.pause(*ids)
    paused = await a.store.get_session(scope)
    assert paused is not None and paused.status_order is not None
    await a.lifecycle.resume(*ids)
    resumed = await a.store.get_session(scope)
    assert resumed is not None and resumed.status_order is not None and resumed.status_order > paused.status_order
    assert "status_order" not in resumed.model_dump()  # internal, as the tokens: never shown to a client
