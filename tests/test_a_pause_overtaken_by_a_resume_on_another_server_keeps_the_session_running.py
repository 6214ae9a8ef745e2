"""The durable status follows the order of the Redis steps it stands for, also across servers. A pause is a Redis
snapshot then a durable record; a resume a Redis restore then a durable record. When a resume on another server
restores (and records) between a pause's snapshot and its record, the resumed working memory is the live one: the
pause's late record keeps its checkpoint (a valid checkpoint of the state before the resume) and its event, but must
not mark the session paused. The other way round, a pause whose snapshot came after a resume's restore is the newer
transition: the resume's late record must not mark the session running. Two runtimes on the same stores stand for
two servers; the fault points (mcp_memory.faults) hold one call between its Redis step and its durable step.
Working memory in Redis, records on SQLite or Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from mcp_memory.models import Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.races import held_at

pytestmark = pytest.mark.anyio


async def test_a_pause_recorded_after_another_servers_resume_leaves_the_session_running(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await a.lifecycle.spawn(*ids, initial_state={"step": 1})
    await a.lifecycle.pause(*ids, checkpoint_id="first")
    await a.working.set(scope, "step", 2)
    answers: dict[str, Any] = {}

    async def pause() -> None:
        answers["pause"] = (await a.lifecycle.pause(*ids, checkpoint_id="late")).data

    async def resume() -> None:
        answers["resume"] = (await b.lifecycle.resume(*ids, checkpoint_id="first")).data

    await held_at("pause.snapshotted", pause, resume)
    assert answers["pause"]["checkpoint_id"] == "late" and answers["resume"]["checkpoint_id"] == "first"
    info = await a.store.get_session(scope)
    assert info is not None and info.status == SessionStatus.RUNNING
    assert await a.working.state(scope) == {"step": 1}
    # The late pause's checkpoint is kept, with the state it snapshotted, and both events are recorded.
    late = await a.store.get_checkpoint(scope, "late")
    assert late is not None and set(late.items) == {"step"} and late.items["step"].value == "2"
    kinds = [(e.event_type, e.outcome) for e in await a.store.list_events(scope, 20)]
    assert kinds[-2:] == [("resume", "ok"), ("pause", "ok")]


async def test_a_resume_recorded_after_another_servers_pause_leaves_the_session_paused(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await a.lifecycle.spawn(*ids, initial_state={"step": 1})
    await a.lifecycle.pause(*ids, checkpoint_id="first")
    await a.working.set(scope, "step", 2)

    async def resume() -> None:
        await a.lifecycle.resume(*ids, checkpoint_id="first")

    async def pause() -> None:
        await b.lifecycle.pause(*ids, checkpoint_id="after")

    await held_at("resume.restored", resume, pause)
    info = await a.store.get_session(scope)
    assert info is not None and info.status == SessionStatus.PAUSED
    after = await a.store.get_checkpoint(scope, "after")
    assert after is not None and after.items["step"].value == "1"
    kinds = [(e.event_type, e.outcome) for e in await a.store.list_events(scope, 20)]
    assert kinds[-2:] == [("pause", "ok"), ("resume", "ok")]


async def test_transitions_after_redis_lost_the_session_still_set_the_status(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    """Redis loses the session's keys, its order key with them (a restart without persistence): the order of the
    next transitions starts again from Redis's clock, above every order recorded before, so they set the status."""
    a, _ = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await a.lifecycle.spawn(*ids, initial_state={"step": 1})
    for _ in range(3):
        await a.lifecycle.pause(*ids)
        await a.lifecycle.resume(*ids)
    working = a.working_store
    assert isinstance(working, RedisWorkingStore)
    await working.client.delete(*working.all_keys(scope))
    await a.lifecycle.pause(*ids, checkpoint_id="after-the-loss")
    info = await a.store.get_session(scope)
    assert info is not None and info.status == SessionStatus.PAUSED
    await a.lifecycle.resume(*ids)
    info = await a.store.get_session(scope)
    assert info is not None and info.status == SessionStatus.RUNNING
