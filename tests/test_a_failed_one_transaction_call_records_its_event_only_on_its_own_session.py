"""A pause, resume or spawn whose whole work is one transaction of the store (SQLite alone, Postgres alone) and that
the store refuses records its failure event (best effort) on the session the store found as it refused, and only
there. The store reports that session's creation time with its error, read in the transaction (or statement) that
refused; the call never read the session itself. Between the refusal and the event another server may delete the
session and spawn its id again: the old call's failure then belongs to neither session's history, and the new
session's events hold none of it. On a session left as it was, the failure is recorded as before.

Two runtimes on the same stores stand for two servers. The other server deletes and spawns the session again at once
after the refusing store call has answered (its method on this runtime's store wrapped to run it then, before the
call goes on to record its failure). A spawn refused because the session exists is also checked with working memory
in Redis (records on SQLite), whose durable step refuses it alike. A pause, resume or terminate that found no
session at all (on every store) records nothing, also when the other server spawns the id before the failure would
be recorded."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from mcp_memory.errors import Conflict, MemoryServiceError, NotFound
from mcp_memory.models import Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock
from tests.races import events_of, ids_of

pytestmark = pytest.mark.anyio

OLD = {"owner": "the deleted session"}
NEW = {"owner": "the new session"}
Ids = tuple[str, str, str]
Step = Callable[[MemoryRuntime, Ids], Awaitable[Any]]


@dataclass(frozen=True)
class Refused:
    """A call the store refuses: what comes before it (``before``), the call, the store method that refuses it (on
    the one-transaction path), the error, and the session's events once its failure is recorded there."""

    before: tuple[Step, ...]
    call: Step
    method: str
    error: type[MemoryServiceError]
    says: str
    events: list[tuple[str, str]]


async def spawn(rt: MemoryRuntime, ids: Ids) -> Any:
    return await rt.lifecycle.spawn(*ids, initial_state=OLD)


async def pause_as_c(rt: MemoryRuntime, ids: Ids) -> Any:
    return await rt.lifecycle.pause(*ids, checkpoint_id="c")


async def pause(rt: MemoryRuntime, ids: Ids) -> Any:
    return await rt.lifecycle.pause(*ids)


async def resume(rt: MemoryRuntime, ids: Ids) -> Any:
    return await rt.lifecycle.resume(*ids)


async def resume_unknown(rt: MemoryRuntime, ids: Ids) -> Any:
    return await rt.lifecycle.resume(*ids, checkpoint_id="nope")


async def terminate(rt: MemoryRuntime, ids: Ids) -> Any:
    return await rt.lifecycle.terminate(*ids)


REFUSED = {
    "pause-of-a-taken-checkpoint-id": Refused(
        (spawn, pause_as_c), pause_as_c, "pause_session", Conflict, "exists already",
        [("spawn", "ok"), ("pause", "ok"), ("pause", "conflict")],
    ),
    "pause-of-a-terminated-session": Refused(
        (spawn, terminate), pause, "pause_session", Conflict, "terminated",
        [("spawn", "ok"), ("terminate", "ok"), ("pause", "conflict")],
    ),
    "resume-of-an-unknown-checkpoint": Refused(
        (spawn, pause_as_c), resume_unknown, "resume_session", NotFound, "checkpoint 'nope' does not exist",
        [("spawn", "ok"), ("pause", "ok"), ("resume", "not_found")],
    ),
    "resume-without-checkpoints": Refused(
        (spawn,), resume, "resume_session", NotFound, "no checkpoints",
        [("spawn", "ok"), ("resume", "not_found")],
    ),
    "resume-of-a-terminated-session": Refused(
        (spawn, pause_as_c, terminate), resume, "resume_session", Conflict, "terminated",
        [("spawn", "ok"), ("pause", "ok"), ("terminate", "ok"), ("resume", "conflict")],
    ),
    "spawn-of-an-existing-session": Refused(
        (spawn,), spawn, "spawn_session", Conflict, "exists already", [("spawn", "ok"), ("spawn", "conflict")],
    ),
}  # fmt: skip


def after_the_store(
    monkeypatch: pytest.MonkeyPatch, rt: MemoryRuntime, method: str, meanwhile: Callable[[], Awaitable[None]]
) -> None:
    """Run ``meanwhile`` once ``rt``'s store has answered its next call of ``method`` (or raised), before the call
    that made it goes on."""

    original = getattr(rt.store, method)
    ran: list[bool] = []

    async def then_meanwhile(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        finally:
            if not ran:
                ran.append(True)
                await meanwhile()

    monkeypatch.setattr(rt.store, method, then_meanwhile)


async def refused_call(
    monkeypatch: pytest.MonkeyPatch,
    servers: tuple[MemoryRuntime, ...],
    case: Refused,
    method: str,
    meanwhile: Callable[[MemoryRuntime, Ids], Awaitable[None]],
) -> Scope:
    """Server A makes ``case``'s call after its steps before; server B runs ``meanwhile`` as soon as A's store has
    refused it. Checks A's error; the session's scope."""
    a, b = servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)
    for step in case.before:
        await step(a, ids)

    async def run_meanwhile() -> None:
        await meanwhile(b, ids)

    after_the_store(monkeypatch, a, method, run_meanwhile)
    with pytest.raises(case.error) as refused:
        await case.call(a, ids)
    assert case.says in refused.value.message, refused.value
    return scope


def deleted_and_spawned_again(clock: FakeClock) -> Callable[[MemoryRuntime, Ids], Awaitable[None]]:
    """Server ``rt`` deletes the session and spawns its id again a second later on ``clock`` (a session record is
    told from another of its id by its creation time)."""

    async def respawn(rt: MemoryRuntime, ids: Ids) -> None:
        await rt.control.delete_session(*ids)
        clock.advance(1)
        await rt.lifecycle.spawn(*ids, initial_state=NEW)

    return respawn


async def nothing(rt: MemoryRuntime, ids: Ids) -> None:
    return None


@pytest.mark.backends("sqlite", "postgres")
@pytest.mark.parametrize("case", list(REFUSED.values()), ids=list(REFUSED))
async def test_a_call_the_store_refused_records_nothing_on_a_session_spawned_again_after_it(
    servers_on_one_clock: tuple[MemoryRuntime, ...], clock: FakeClock, monkeypatch: pytest.MonkeyPatch, case: Refused
) -> None:
    respawn = deleted_and_spawned_again(clock)
    scope = await refused_call(monkeypatch, servers_on_one_clock, case, case.method, respawn)
    b = servers_on_one_clock[1]
    assert await events_of(b, scope) == [("spawn", "ok")]
    info = await b.store.get_session(scope)
    assert info is not None and info.status == SessionStatus.RUNNING
    assert await b.working.state(scope) == NEW


@pytest.mark.backends("sqlite", "postgres")
@pytest.mark.parametrize("case", list(REFUSED.values()), ids=list(REFUSED))
async def test_a_call_the_store_refused_records_its_failure_on_its_unchanged_session(
    servers_on_one_clock: tuple[MemoryRuntime, ...], monkeypatch: pytest.MonkeyPatch, case: Refused
) -> None:
    scope = await refused_call(monkeypatch, servers_on_one_clock, case, case.method, nothing)
    assert await events_of(servers_on_one_clock[1], scope) == case.events


SPAWN = REFUSED["spawn-of-an-existing-session"]


@pytest.mark.backends("redis")
async def test_a_spawn_refused_by_the_records_with_redis_records_nothing_on_a_session_spawned_again_after_it(
    servers_on_one_clock: tuple[MemoryRuntime, ...], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    respawn = deleted_and_spawned_again(clock)
    scope = await refused_call(monkeypatch, servers_on_one_clock, SPAWN, "begin_spawn", respawn)
    b = servers_on_one_clock[1]
    assert await events_of(b, scope) == [("spawn", "ok")]
    assert await b.working.state(scope) == NEW


@pytest.mark.backends("redis")
async def test_a_spawn_refused_by_the_records_with_redis_records_its_failure_on_the_existing_session(
    servers_on_one_clock: tuple[MemoryRuntime, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = await refused_call(monkeypatch, servers_on_one_clock, SPAWN, "begin_spawn", nothing)
    assert await events_of(servers_on_one_clock[1], scope) == SPAWN.events


UNKNOWN_SESSION: dict[str, Step] = {"pause": pause, "resume": resume, "terminate": terminate}
"""Calls on a session that does not exist: ``not_found`` with no session to record the failure on."""


@pytest.mark.backends("sqlite", "redis", "postgres")
@pytest.mark.parametrize("call", list(UNKNOWN_SESSION.values()), ids=list(UNKNOWN_SESSION))
async def test_a_call_that_found_no_session_records_nothing_on_one_spawned_after_it_looked(
    servers_on_one_clock: tuple[MemoryRuntime, ...], monkeypatch: pytest.MonkeyPatch, call: Step
) -> None:
    a, b = servers_on_one_clock
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)

    spawned: list[bool] = []

    async def spawned_meanwhile() -> None:
        if not spawned:
            spawned.append(True)
            await b.lifecycle.spawn(*ids, initial_state=NEW)

    # The other server spawns the id once the call has failed: before the call records its failure, if it does.
    original = a.store.record_event

    async def spawn_first(*args: Any, **kwargs: Any) -> Any:
        await spawned_meanwhile()
        return await original(*args, **kwargs)

    monkeypatch.setattr(a.store, "record_event", spawn_first)
    with pytest.raises(NotFound, match="does not exist"):
        await call(a, ids)
    await spawned_meanwhile()
    assert await events_of(b, scope) == [("spawn", "ok")]
    assert await b.working.state(scope) == NEW
