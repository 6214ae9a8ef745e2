"""Contract of :class:`~mcp_memory.stores.ports.SameStoreLifecycle`: a store that is the working store and the
durable store at once (SQLite; Postgres without Redis) does each lifecycle transition in one transaction.

Run on the SQL adapters of the ``stores`` fixture (where the working store is the durable store). Failures are
injected into the event write, the last write of each transaction, so that "all or nothing" is tested where a
two-step path would have left half of it behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, MemoryServiceError, NotFound, TooLarge
from mcp_memory.models import CheckpointInfo, Item, Scope, SessionStatus, content_hash, to_datetime
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.strategies import OneTransaction
from mcp_memory.stores.ports import EventRecord, Limits, SameStoreLifecycle
from tests.conftest import SQL_ADAPTERS, FakeClock, StorePair, make_store, new_scope

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
TOKEN = "terminate-a"
"""The owner of the seals of these tests (a terminate's token)."""
LEASE = 60.0
LIMITS = Limits(max_keys=100)


@pytest.fixture(params=sorted(SQL_ADAPTERS))
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorePair]:
    """One SQL store as both ports (the conftest fixture's pairs with Redis have separate stores)."""
    store = await make_store(request.param, tmp_path)
    try:
        yield StorePair(store, store)
    finally:
        await store.close()


@pytest.fixture
def same(stores: StorePair) -> SameStoreLifecycle:
    assert isinstance(stores.durable, SameStoreLifecycle)
    return stores.durable


def ev(event_type: str, when: float, **detail: Any) -> EventRecord:
    return EventRecord(event_type, when, 1.0, "ok", detail)


def draft(checkpoint_id: str, when: float, label: str | None = None) -> CheckpointInfo:
    return CheckpointInfo(
        checkpoint_id=checkpoint_id,
        created_at=to_datetime(when),
        keys_count=0,
        bytes=0,
        label=label,
        content_hash="",
        metadata={"why": "test"},
    )


@contextmanager
def failing_event_writes(store: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every event insert of the store fails in the database, inside the transition's transaction."""
    from mcp_memory.stores.postgres import store as postgres_store
    from mcp_memory.stores.postgres.statements import event_params
    from mcp_memory.stores.sqlite import statements as sqlite_statements

    def not_json(event: EventRecord) -> dict[str, Any]:
        # The event's detail as text Postgres refuses to read as JSONB: the statement fails in the database.
        return {**event_params(event), "ev_detail": "{not json"}

    with monkeypatch.context() as m:
        if isinstance(store, postgres_store.PostgresStore):
            m.setattr(postgres_store, "event_params", not_json)
        else:
            m.setattr(sqlite_statements, "INSERT_EVENT", "INSERT INTO no_such_table (session_pk) VALUES (:pk)")
        yield


async def spawn(same: SameStoreLifecycle, scope: Scope, items: dict[str, Item] | None = None) -> int:
    _, written = await same.spawn_session(scope, None, {}, T0, ev("spawn", T0), items or {}, LIMITS)
    return written


# -- spawn ----------------------------------------------------------------------------------------------------
async def test_spawn_session_writes_session_event_and_live_items(stores: StorePair, same: SameStoreLifecycle) -> None:
    scope = new_scope()
    items = {"a": Item("1"), "gone": Item('"x"', T0 - 1), "later": Item('"y"', T0 + 60)}
    info, written = await same.spawn_session(scope, None, {"m": 1}, T0, ev("spawn", T0, initial_items=3), items, LIMITS)
    assert written == 2
    assert info == await stores.durable.get_session(scope)
    assert info.status == SessionStatus.RUNNING and info.metadata == {"m": 1}
    assert await stores.working.snapshot(scope, T0) == {"a": Item("1"), "later": Item('"y"', T0 + 60)}
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == ["spawn"]


async def test_spawn_session_of_an_existing_session_is_conflict_and_changes_nothing(
    stores: StorePair, same: SameStoreLifecycle
) -> None:
    scope = new_scope()
    await spawn(same, scope, {"a": Item("1")})
    with pytest.raises(Conflict):
        await spawn(same, scope, {"b": Item("2")})
    assert await stores.working.snapshot(scope, T0) == {"a": Item("1")}
    assert len(await stores.durable.list_events(scope, 10)) == 1


async def test_spawn_session_over_the_key_limit_writes_nothing(stores: StorePair, same: SameStoreLifecycle) -> None:
    scope = new_scope()
    with pytest.raises(TooLarge):
        await spawn(same, scope, {f"k{i}": Item("1") for i in range(LIMITS.max_keys + 1)})
    assert await stores.durable.get_session(scope) is None


async def test_spawn_session_failing_midway_leaves_no_session_and_a_retry_succeeds(
    stores: StorePair, same: SameStoreLifecycle, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = new_scope()
    with failing_event_writes(stores.durable, monkeypatch), pytest.raises(MemoryServiceError):
        await spawn(same, scope, {"a": Item("1")})
    assert await stores.durable.get_session(scope) is None
    assert await stores.working.snapshot(scope, T0) == {}
    assert await spawn(same, scope, {"a": Item("1")}) == 1
    assert await stores.working.snapshot(scope, T0) == {"a": Item("1")}


# -- pause ----------------------------------------------------------------------------------------------------
STATE = {
    "a": Item('{"n": 1, "s": "x"}'),
    "Z": Item("[1, 2.5, null]"),
    "é": Item('"caf\\u00e9 ünïcode"'),
    "日本": Item('"値"', T0 + 3600),
    "a\tb": Item("true"),
    "expired": Item('"old"', T0 + 5),
}


async def test_pause_session_checkpoints_what_the_two_step_path_does(
    stores: StorePair, same: SameStoreLifecycle
) -> None:
    scope = new_scope()
    await spawn(same, scope, STATE)
    now = T0 + 10  # "expired" has expired
    saved = await same.pause_session(scope, draft("one", now, "lbl"), now, ev("pause", now, checkpoint_id="one"))

    # The two-step path on the same state: snapshot, hash in Python, record_pause.
    items = await stores.working.snapshot(scope, now)
    assert "expired" not in items and len(items) == 5
    digest, size = content_hash(items)
    two = draft("two", now).model_copy(update={"keys_count": len(items), "bytes": size, "content_hash": digest})
    await stores.durable.record_pause(scope, two, items, ev("pause", now, checkpoint_id="two", items=len(items)))

    assert (saved.keys_count, saved.bytes, saved.content_hash) == (len(items), size, digest)
    assert saved.label == "lbl" and saved.metadata == {"why": "test"} and saved.created_at == to_datetime(now)
    one_data = await stores.durable.get_checkpoint(scope, "one")
    two_data = await stores.durable.get_checkpoint(scope, "two")
    assert one_data is not None and two_data is not None
    assert one_data.info == saved
    assert one_data.items == two_data.items == items
    keep = ("keys_count", "bytes", "content_hash")
    assert one_data.info.model_dump(include=set(keep)) == two_data.info.model_dump(include=set(keep))

    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.PAUSED
    events = await stores.durable.list_events(scope, 10)
    assert events[1].event_type == "pause" and events[1].detail == {"checkpoint_id": "one", "items": 5}


async def test_pause_session_of_an_empty_session(stores: StorePair, same: SameStoreLifecycle) -> None:
    scope = new_scope()
    await spawn(same, scope)
    saved = await same.pause_session(scope, draft("empty", T0), T0, ev("pause", T0))
    assert (saved.keys_count, saved.bytes, saved.content_hash) == (0, *reversed(content_hash({})))
    data = await stores.durable.get_checkpoint(scope, "empty")
    assert data is not None and data.items == {}


async def test_pause_session_refusals_write_nothing(stores: StorePair, same: SameStoreLifecycle) -> None:
    scope = new_scope()
    with pytest.raises(NotFound):
        await same.pause_session(scope, draft("c", T0), T0, ev("pause", T0))
    await spawn(same, scope, {"a": Item("1")})
    await same.pause_session(scope, draft("c", T0), T0, ev("pause", T0))
    await stores.working.set(scope, "a", Item("2"), T0, LIMITS)
    with pytest.raises(Conflict, match="exists already"):
        await same.pause_session(scope, draft("c", T0 + 1), T0 + 1, ev("pause", T0 + 1))
    data = await stores.durable.get_checkpoint(scope, "c")
    assert data is not None and data.items == {"a": Item("1")}
    assert len(await stores.durable.list_events(scope, 10)) == 2
    await stores.working.seal(scope, TOKEN, T0, LEASE)
    with pytest.raises(Conflict):
        await same.pause_session(scope, draft("d", T0 + 2), T0 + 2, ev("pause", T0 + 2))
    assert len(await stores.durable.list_checkpoints(scope, 10, None)) == 1


async def test_pause_session_failing_at_the_event_writes_nothing(
    stores: StorePair, same: SameStoreLifecycle, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = new_scope()
    await spawn(same, scope, {"a": Item("1")})
    with failing_event_writes(stores.durable, monkeypatch), pytest.raises(MemoryServiceError):
        await same.pause_session(scope, draft("c", T0), T0, ev("pause", T0))
    assert await stores.durable.list_checkpoints(scope, 10, None) == []
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING


# -- resume ---------------------------------------------------------------------------------------------------
async def paused(stores: StorePair, same: SameStoreLifecycle, state: dict[str, Item]) -> Scope:
    scope = new_scope()
    await spawn(same, scope, state)
    await same.pause_session(scope, draft("c", T0), T0, ev("pause", T0))
    return scope


async def test_resume_session_restores_and_records(stores: StorePair, same: SameStoreLifecycle) -> None:
    scope = await paused(stores, same, {"a": Item("1"), "b": Item("2", T0 + 5)})
    await stores.working.set(scope, "a", Item("9"), T0, LIMITS)
    await stores.working.set(scope, "new", Item("3"), T0, LIMITS)
    done = await same.resume_session(scope, None, True, T0 + 10, LIMITS, ev("resume", T0 + 10))
    assert done is not None
    info, restored = done
    assert info.checkpoint_id == "c" and restored == 1  # "b" expired since the pause
    assert await stores.working.snapshot(scope, T0 + 10) == {"a": Item("1")}
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING
    last = (await stores.durable.list_events(scope, 10))[-1]
    assert last.event_type == "resume" and last.detail == {"checkpoint_id": "c", "items": 1}


async def test_resume_session_without_clearing_merges(stores: StorePair, same: SameStoreLifecycle) -> None:
    scope = await paused(stores, same, {"a": Item("1")})
    await stores.working.set(scope, "a", Item("9"), T0, LIMITS)
    await stores.working.set(scope, "new", Item("3"), T0, LIMITS)
    done = await same.resume_session(scope, "c", False, T0, LIMITS, ev("resume", T0))
    assert done is not None and done[1] == 1
    assert await stores.working.snapshot(scope, T0) == {"a": Item("1"), "new": Item("3")}


async def test_resume_session_of_an_unknown_checkpoint_or_session_is_not_found_and_writes_nothing(
    stores: StorePair, same: SameStoreLifecycle
) -> None:
    scope = await paused(stores, same, {"a": Item("1")})
    await stores.working.set(scope, "a", Item("9"), T0, LIMITS)
    with pytest.raises(NotFound, match="checkpoint 'nope' does not exist for this session"):
        await same.resume_session(scope, "nope", True, T0, LIMITS, ev("resume", T0))
    with pytest.raises(NotFound, match="session 's1' does not exist"):
        await same.resume_session(new_scope(), None, True, T0, LIMITS, ev("resume", T0))
    assert await stores.working.snapshot(scope, T0) == {"a": Item("9")}
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.PAUSED
    assert len(await stores.durable.list_events(scope, 10)) == 2


async def test_resume_session_over_the_key_limit_writes_nothing(stores: StorePair, same: SameStoreLifecycle) -> None:
    scope = await paused(stores, same, {"a": Item("1"), "b": Item("2")})
    small = Limits(max_keys=3)
    await stores.working.set(scope, "x", Item("0"), T0, LIMITS)
    await stores.working.set(scope, "y", Item("0"), T0, LIMITS)
    before = await stores.working.snapshot(scope, T0)
    with pytest.raises(TooLarge):
        await same.resume_session(scope, "c", False, T0, small, ev("resume", T0))
    with pytest.raises(TooLarge):
        await same.resume_session(scope, "c", True, T0, Limits(max_keys=1), ev("resume", T0))
    assert await stores.working.snapshot(scope, T0) == before
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.PAUSED


async def test_resume_session_of_a_sealed_or_terminated_session_is_conflict(
    stores: StorePair, same: SameStoreLifecycle
) -> None:
    scope = await paused(stores, same, {"a": Item("1")})
    await stores.working.seal(scope, TOKEN, T0, LEASE)
    with pytest.raises(Conflict):
        await same.resume_session(scope, None, True, T0, LIMITS, ev("resume", T0))
    await stores.durable.record_terminate(scope, None, None, {"done": True}, ev("terminate", T0))
    with pytest.raises(Conflict, match="terminated"):
        await same.resume_session(scope, None, True, T0, LIMITS, ev("resume", T0))


async def test_resume_session_failing_at_the_event_leaves_working_memory_and_status(
    stores: StorePair, same: SameStoreLifecycle, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = await paused(stores, same, {"a": Item("1")})
    await stores.working.set(scope, "a", Item("9"), T0, LIMITS)
    await stores.working.set(scope, "new", Item("3"), T0, LIMITS)
    before = await stores.working.snapshot(scope, T0)
    with failing_event_writes(stores.durable, monkeypatch), pytest.raises(MemoryServiceError):
        await same.resume_session(scope, None, True, T0, LIMITS, ev("resume", T0))
    assert await stores.working.snapshot(scope, T0) == before
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.PAUSED
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == ["spawn", "pause"]


# -- through the lifecycle ------------------------------------------------------------------------------------
@pytest.fixture(params=sorted(SQL_ADAPTERS))
async def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MemoryRuntime]:
    """A runtime with no Redis: its working store is its durable store."""
    if request.param == "postgres":
        from tests import pg_servers

        url = pg_servers.database_url(await pg_servers.migrated_database())
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"
    async with MemoryRuntime(Settings(database_url=url), clock=FakeClock(T0)) as rt:
        yield rt


def failure_code(rt: MemoryRuntime) -> str:
    """The code of an injected event-write failure: SQLite's OperationalError is unavailable, Postgres's
    unknown column is internal."""
    from mcp_memory.stores.postgres.store import PostgresStore

    return "internal" if isinstance(rt.store, PostgresStore) else "unavailable"


async def test_the_lifecycle_uses_one_transaction_per_call(runtime: MemoryRuntime) -> None:
    assert runtime.working_store is runtime.store
    assert isinstance(runtime.lifecycle._strategy, OneTransaction)


async def test_spawn_failing_midway_leaves_nothing_and_a_retry_succeeds(
    runtime: MemoryRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = new_scope()
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    with failing_event_writes(runtime.store, monkeypatch), pytest.raises(MemoryServiceError) as caught:
        await runtime.lifecycle.spawn(p, a, s, initial_state={"a": 1})
    assert caught.value.code == failure_code(runtime)
    assert await runtime.store.get_session(scope) is None
    result = await runtime.lifecycle.spawn(p, a, s, initial_state={"a": 1})
    assert result.data == {"session_id": s, "status": "running", "initial_items": 1}
    with pytest.raises(Conflict):
        await runtime.lifecycle.spawn(p, a, s)
    assert [(e.event_type, e.outcome) for e in await runtime.store.list_events(scope, 10)] == [
        ("spawn", "ok"),
        ("spawn", "conflict"),
    ]


async def test_pause_and_resume_results_and_events(runtime: MemoryRuntime) -> None:
    scope = new_scope()
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s, initial_state={"a": 1, "b": "two"})
    paused = await runtime.lifecycle.pause(p, a, s, label="L", metadata={"m": 1})
    items = await runtime.working_store.snapshot(scope, T0)
    digest, size = content_hash(items)
    cp_id = paused.data["checkpoint_id"]
    created = paused.data["created_at"]
    assert paused.data == {"checkpoint_id": cp_id, "items_saved": 2, "bytes": size, "created_at": created}
    data = await runtime.store.get_checkpoint(scope, cp_id)
    assert data is not None and data.info.content_hash == digest and data.info.label == "L"
    with pytest.raises(Conflict):
        await runtime.lifecycle.pause(p, a, s, checkpoint_id=cp_id)
    await runtime.working.set(scope, "a", 5)
    resumed = await runtime.lifecycle.resume(p, a, s, metadata={"r": 1})
    assert resumed.data == {
        "checkpoint_id": cp_id,
        "items_restored": 2,
        "checkpoint_created_at": paused.data["created_at"],
    }
    assert await runtime.working_store.snapshot(scope, T0) == items
    events = await runtime.store.list_events(scope, 10)
    assert [(e.event_type, e.outcome) for e in events] == [
        ("spawn", "ok"),
        ("pause", "ok"),
        ("pause", "conflict"),
        ("resume", "ok"),
    ]
    assert events[1].detail == {"checkpoint_id": cp_id, "items": 2, "metadata": {"m": 1}}
    assert events[3].detail == {"checkpoint_id": cp_id, "items": 2, "metadata": {"r": 1}}


async def test_resume_failing_at_its_event_fails_and_changes_nothing(
    runtime: MemoryRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = new_scope()
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s, initial_state={"a": 1})
    await runtime.lifecycle.pause(p, a, s)
    await runtime.working.set(scope, "a", 2)
    await runtime.working.set(scope, "b", 3)
    before = await runtime.working_store.snapshot(scope, T0)
    with failing_event_writes(runtime.store, monkeypatch), pytest.raises(MemoryServiceError) as caught:
        await runtime.lifecycle.resume(p, a, s)
    assert caught.value.code == failure_code(runtime)
    assert await runtime.working_store.snapshot(scope, T0) == before
    session = await runtime.store.get_session(scope)
    assert session is not None and session.status == SessionStatus.PAUSED


async def test_resume_refusals_keep_their_errors(runtime: MemoryRuntime) -> None:
    scope = new_scope()
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    with pytest.raises(NotFound, match="does not exist"):
        await runtime.lifecycle.resume(p, a, s)
    await runtime.lifecycle.spawn(p, a, s)
    with pytest.raises(NotFound, match="no checkpoints"):
        await runtime.lifecycle.resume(p, a, s)
    with pytest.raises(NotFound, match="checkpoint 'x' does not exist"):
        await runtime.lifecycle.resume(p, a, s, checkpoint_id="x")
    await runtime.lifecycle.pause(p, a, s)
    await runtime.lifecycle.terminate(p, a, s)
    with pytest.raises(Conflict, match="terminated"):
        await runtime.lifecycle.resume(p, a, s)
    with pytest.raises(Conflict, match="terminated"):
        await runtime.lifecycle.resume(p, a, s, checkpoint_id="x")
