"""A lifecycle call that fails records its failure event (best effort) on the session it worked on, and only there.
While it ran, another server may delete that session and spawn its id again: the old call's failure then belongs to
neither session's history, and the new session's events hold none of it. The call knows its session by the creation
time of the record it read (terminate), or that its checkpoint named (a two-step resume). On a session left as it was,
the failure is recorded as before. Two runtimes on the same stores stand for two servers; the fault points
(mcp_memory.faults) hold one call between its steps while the other server deletes and spawns again.

- terminate: held sealed (``terminate.sealed``) past its seal's lease, so that the deletion goes through; it then
  fails, ``conflict`` (it overran its lease). On SQLite, Postgres (each alone) and Redis with SQLite.
- resume (working memory in Redis, records on SQLite or Postgres): held after reading its checkpoint
  (``resume.read``) while the session is deleted, spawned again and terminated; its restore then fails, ``conflict``
  (the session now holding the id is terminated), not ``Respawned``, which records nothing anyway."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mcp_memory.errors import Conflict
from mcp_memory.models import Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock
from tests.races import events_of, held_at, ids_of

pytestmark = pytest.mark.anyio

OLD = {"owner": "the deleted session"}
NEW = {"owner": "the new session"}
Ids = tuple[str, str, str]


async def terminate_held_past_its_lease(
    a: MemoryRuntime, clock: FakeClock, ids: Ids, meanwhile: Callable[[], Awaitable[None]]
) -> Any:
    """``a`` terminates the session, held sealed until its seal's lease has lapsed and ``meanwhile`` has run; the
    terminate's error."""
    answers: dict[str, Any] = {}

    async def terminate() -> None:
        try:
            await a.lifecycle.terminate(*ids)
        except Conflict as exc:
            answers["terminate"] = exc

    async def lapse_then(run: Callable[[], Awaitable[None]]) -> None:
        clock.advance(a.settings.terminate_lease_seconds + 1)
        await run()

    await held_at("terminate.sealed", terminate, lambda: lapse_then(meanwhile))
    return answers.get("terminate")


@pytest.mark.backends("sqlite", "postgres", "redis")
async def test_a_terminate_failing_after_its_session_was_spawned_again_records_nothing_on_the_new_one(
    servers_on_one_clock: tuple[MemoryRuntime, MemoryRuntime], clock: FakeClock
) -> None:
    a, b = servers_on_one_clock
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)
    await a.lifecycle.spawn(*ids, initial_state=OLD)

    async def deleted_and_spawned_again() -> None:
        await b.control.delete_session(*ids)
        await b.lifecycle.spawn(*ids, initial_state=NEW)

    failed = await terminate_held_past_its_lease(a, clock, ids, deleted_and_spawned_again)
    assert isinstance(failed, Conflict) and "longer than its seal's lease" in failed.message, failed
    assert await events_of(b, scope) == [("spawn", "ok")]
    info = await b.store.get_session(scope)
    assert info is not None and info.status == SessionStatus.RUNNING
    assert await b.working.state(scope) == NEW
    # The new session terminates as any session, its history its own.
    await b.lifecycle.terminate(*ids)
    assert await events_of(b, scope) == [("spawn", "ok"), ("terminate", "ok")]


@pytest.mark.backends("sqlite", "postgres", "redis")
async def test_a_terminate_failing_on_its_unchanged_session_records_its_failure_there(
    servers_on_one_clock: tuple[MemoryRuntime, MemoryRuntime], clock: FakeClock
) -> None:
    a, b = servers_on_one_clock
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)
    await a.lifecycle.spawn(*ids, initial_state=OLD)

    async def nothing() -> None:
        return None

    failed = await terminate_held_past_its_lease(a, clock, ids, nothing)
    assert isinstance(failed, Conflict) and "longer than its seal's lease" in failed.message, failed
    assert await events_of(b, scope) == [("spawn", "ok"), ("terminate", "conflict")]


async def resume_held_after_its_read(a: MemoryRuntime, ids: Ids, meanwhile: Callable[[], Awaitable[None]]) -> Any:
    """``a`` resumes the session, held after reading its checkpoint until ``meanwhile`` has run; the resume's
    error."""
    answers: dict[str, Any] = {}

    async def resume() -> None:
        try:
            await a.lifecycle.resume(*ids)
        except Conflict as exc:
            answers["resume"] = exc

    await held_at("resume.read", resume, meanwhile)
    return answers.get("resume")


async def test_a_resume_failing_after_its_session_was_spawned_again_records_nothing_on_the_new_one(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)
    await a.lifecycle.spawn(*ids, initial_state=OLD)
    await a.lifecycle.pause(*ids, checkpoint_id="old-checkpoint")

    async def spawned_again_and_terminated() -> None:
        await b.control.delete_session(*ids)
        await b.lifecycle.spawn(*ids, initial_state=NEW)
        await b.lifecycle.terminate(*ids)

    failed = await resume_held_after_its_read(a, ids, spawned_again_and_terminated)
    assert isinstance(failed, Conflict) and "terminated" in failed.message, failed
    assert await events_of(b, scope) == [("spawn", "ok"), ("terminate", "ok")]


async def test_a_resume_failing_on_its_unchanged_session_records_its_failure_there(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)
    await a.lifecycle.spawn(*ids, initial_state=OLD)
    await a.lifecycle.pause(*ids, checkpoint_id="old-checkpoint")

    async def terminated() -> None:
        await b.lifecycle.terminate(*ids)

    failed = await resume_held_after_its_read(a, ids, terminated)
    assert isinstance(failed, Conflict) and "terminated" in failed.message, failed
    events = await events_of(b, scope)
    assert events == [("spawn", "ok"), ("pause", "ok"), ("terminate", "ok"), ("resume", "conflict")]
