"""Contract of the one-transaction transitions (:class:`~mcp_memory.stores.ports.SameStoreLifecycle`) on the SQL
stores: a refusal that found the session notes its record's creation time on the error
(:attr:`~mcp_memory.errors.MemoryServiceError.session_created_at`), read by the transaction (Postgres: the statement)
that refused, so that the lifecycle records the call's failure event on that session only. A refusal that found no
session notes none. The same for a two-step spawn's durable step (``begin_spawn``) and ``create_session`` refused
because the session exists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mcp_memory.errors import Conflict, MemoryServiceError, NotFound, TooLarge
from mcp_memory.models import Item, Scope
from mcp_memory.stores.ports import EventRecord, Limits, SameStoreLifecycle
from tests.conftest import SQL_ADAPTERS, make_store, new_scope
from tests.contract.test_same_store import LEASE, LIMITS, T0, TOKEN, draft, ev

pytestmark = pytest.mark.anyio


@pytest.fixture(params=sorted(SQL_ADAPTERS))
async def same(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """One SQL store: its one-transaction transitions and its durable port."""
    store = await make_store(request.param, tmp_path)
    try:
        assert isinstance(store, SameStoreLifecycle)
        yield store
    finally:
        await store.close()


async def spawned(same: Any, state: dict[str, Item] | None = None) -> tuple[Scope, datetime]:
    scope = new_scope()
    info, _ = await same.spawn_session(scope, None, {}, T0, ev("spawn", T0), state or {"a": Item("1")}, LIMITS)
    return scope, info.created_at


def noted(refused: pytest.ExceptionInfo[MemoryServiceError]) -> datetime | None:
    return refused.value.session_created_at


async def test_a_refused_spawn_notes_the_session_that_exists(same: Any) -> None:
    scope, created = await spawned(same)
    with pytest.raises(Conflict, match="exists already") as refused:
        await same.spawn_session(scope, None, {}, T0 + 1, ev("spawn", T0 + 1), {}, LIMITS)
    assert noted(refused) == created
    with pytest.raises(Conflict, match="exists already") as refused:
        await same.create_session(scope, None, {}, T0 + 1, ev("spawn", T0 + 1))
    assert noted(refused) == created
    with pytest.raises(Conflict, match="exists already") as refused:
        await same.begin_spawn(scope, None, {}, T0 + 1, ev("spawn", T0 + 1), "tok", LEASE)
    assert noted(refused) == created


async def test_a_refused_pause_notes_the_session_it_found(same: Any) -> None:
    with pytest.raises(NotFound) as refused:
        await same.pause_session(new_scope(), draft("c", T0), T0, ev("pause", T0))
    assert noted(refused) is None
    scope, created = await spawned(same)
    await same.pause_session(scope, draft("c", T0), T0, ev("pause", T0))
    with pytest.raises(Conflict, match="exists already") as refused:
        await same.pause_session(scope, draft("c", T0 + 1), T0 + 1, ev("pause", T0 + 1))
    assert noted(refused) == created
    await same.seal(scope, TOKEN, T0, LEASE)
    with pytest.raises(Conflict, match="being terminated") as refused:
        await same.pause_session(scope, draft("d", T0 + 2), T0 + 2, ev("pause", T0 + 2))
    assert noted(refused) == created


async def test_a_refused_resume_notes_the_session_it_found(same: Any) -> None:
    with pytest.raises(NotFound, match="does not exist") as refused:
        await same.resume_session(new_scope(), None, True, T0, LIMITS, ev("resume", T0))
    assert noted(refused) is None
    scope, created = await spawned(same, {"a": Item("1"), "b": Item("2")})
    with pytest.raises(NotFound, match="no checkpoints") as refused:
        await same.resume_session(scope, None, True, T0, LIMITS, ev("resume", T0))
    assert noted(refused) == created
    await same.pause_session(scope, draft("c", T0), T0, ev("pause", T0))
    with pytest.raises(NotFound, match="checkpoint 'nope'") as refused:
        await same.resume_session(scope, "nope", True, T0, LIMITS, ev("resume", T0))
    assert noted(refused) == created
    with pytest.raises(TooLarge) as refused:
        await same.resume_session(scope, "c", True, T0, Limits(max_keys=1), ev("resume", T0))
    assert noted(refused) == created
    terminated = EventRecord("terminate", T0, 0.0, "ok")
    await same.record_terminate(scope, None, None, {"done": True}, terminated)
    with pytest.raises(Conflict, match="terminated") as refused:
        await same.resume_session(scope, "c", True, T0, LIMITS, ev("resume", T0))
    assert noted(refused) == created
    with pytest.raises(Conflict, match="terminated") as refused:
        await same.pause_session(scope, draft("d", T0 + 2), T0 + 2, ev("pause", T0 + 2))
    assert noted(refused) == created
