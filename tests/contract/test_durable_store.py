"""Contract of :class:`~mcp_memory.stores.ports.DurableStore`, run against every adapter.

Only the port's methods are used, so an adapter joins by adding a fixture param in ``tests/conftest.py``.
Records (events, checkpoints, episodes) are built directly; times are epoch seconds passed in by the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import anyio
import pytest

from mcp_memory.embeddings import HashEmbedding
from mcp_memory.errors import Conflict, MemoryServiceError, NotFound
from mcp_memory.models import (
    CheckpointInfo,
    Episode,
    Item,
    Outcome,
    Scope,
    SessionStatus,
    to_datetime,
)
from mcp_memory.stores.ports import DurableStore, EpisodeFilter, EventRecord
from tests.conftest import StorePair, new_scope

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
TOKEN = "terminate-a"
"""The owner of the seals of these tests (a terminate's token)."""
LEASE = 60.0
DAY = 86_400.0
EMBEDDER = HashEmbedding()


def at(epoch: float) -> datetime:
    dt = to_datetime(epoch)
    assert dt is not None
    return dt


def event(event_type: str, when: float, outcome: str = "ok", **detail: Any) -> EventRecord:
    return EventRecord(event_type, when, 1.5, outcome, detail)


def info(checkpoint_id: str, when: float, items: Mapping[str, Item], label: str | None = None) -> CheckpointInfo:
    return CheckpointInfo(
        checkpoint_id=checkpoint_id,
        created_at=at(when),
        keys_count=len(items),
        bytes=sum(len(k.encode()) + len(i.value.encode()) for k, i in items.items()),
        label=label,
        content_hash=f"sha256:{checkpoint_id}:{len(items)}",
        metadata={"by": "test", "n": len(items)},
    )


def episode(
    project_id: uuid.UUID,
    description: str,
    *,
    created: float = T0,
    agent_instance_id: uuid.UUID | None = None,
    task_type: str = "coding",
    outcome: Outcome = Outcome.SUCCESS,
    importance: float = 0.5,
    lessons: Sequence[str] = (),
    session_id: str | None = None,
) -> Episode:
    return Episode(
        episode_id=uuid.uuid4(),
        project_id=project_id,
        agent_instance_id=agent_instance_id or uuid.uuid4(),
        session_id=session_id,
        task_type=task_type,
        task_description=description,
        outcome=outcome,
        outcome_details=f"finished: {outcome.value}",
        lessons_learned=list(lessons),
        importance_score=importance,
        context_summary="",
        metadata={"source": "contract"},
        created_at=at(created),
    )


def embed(text: str) -> list[float]:
    return EMBEDDER.embed_one(text)


async def add(store: DurableStore, ep: Episode, with_embedding: bool = True) -> Episode:
    vector = embed(f"{ep.task_type} {ep.task_description} {' '.join(ep.lessons_learned)}")
    await store.add_episode(ep, vector if with_embedding else None)
    return ep


async def create(stores: StorePair, scope: Scope | None = None, now: float = T0) -> Scope:
    scope = scope or new_scope()
    await stores.durable.create_session(scope, None, {}, now, event("spawn", now))
    return scope


async def pause(
    stores: StorePair, scope: Scope, checkpoint_id: str, when: float, items: Mapping[str, Item] | None = None
) -> CheckpointInfo:
    items = {"k": Item('"v"')} if items is None else items
    cp = info(checkpoint_id, when, items)
    await stores.durable.record_pause(scope, cp, items, event("pause", when, checkpoint_id=checkpoint_id))
    return cp


async def test_adapter_satisfies_the_protocol(stores: StorePair) -> None:
    assert isinstance(stores.durable, DurableStore)


# -- sessions and events --------------------------------------------------------------------------------------
async def test_create_session_and_get_session(stores: StorePair) -> None:
    scope = new_scope("sess-1.a_b")
    agent_type = uuid.uuid4()
    meta = {"model": "x", "nested": {"a": [1, 2]}}
    created = await stores.durable.create_session(scope, agent_type, meta, T0, event("spawn", T0))
    got = await stores.durable.get_session(scope)
    assert got == created
    assert got is not None
    assert (got.project_id, got.agent_instance_id, got.session_id) == (
        scope.project_id,
        scope.agent_instance_id,
        scope.session_id,
    )
    assert got.agent_type_id == agent_type
    assert got.status == SessionStatus.RUNNING
    assert got.created_at == at(T0) and got.updated_at == at(T0)
    assert got.metadata == meta
    assert got.episode_id is None and got.terminated_at is None and got.terminate_result is None


async def test_get_unknown_session_is_none(stores: StorePair) -> None:
    scope = await create(stores)
    assert await stores.durable.get_session(new_scope()) is None
    assert await stores.durable.get_session(Scope(uuid.uuid4(), scope.agent_instance_id, scope.session_id)) is None
    assert await stores.durable.get_session(Scope(scope.project_id, uuid.uuid4(), scope.session_id)) is None


async def test_create_session_twice_is_conflict_and_changes_nothing(stores: StorePair) -> None:
    scope = new_scope()
    first = await stores.durable.create_session(scope, None, {"v": 1}, T0, event("spawn", T0))
    with pytest.raises(Conflict):
        await stores.durable.create_session(scope, uuid.uuid4(), {"v": 2}, T0 + 5, event("spawn", T0 + 5))
    assert await stores.durable.get_session(scope) == first
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == ["spawn"]


async def test_same_session_id_in_another_project_or_agent_is_another_session(stores: StorePair) -> None:
    scope = await create(stores)
    for other in (
        Scope(uuid.uuid4(), scope.agent_instance_id, scope.session_id),
        Scope(scope.project_id, uuid.uuid4(), scope.session_id),
    ):
        made = await stores.durable.create_session(other, None, {}, T0, event("spawn", T0))
        assert made.project_id == other.project_id and made.agent_instance_id == other.agent_instance_id


async def test_record_and_list_events(stores: StorePair) -> None:
    scope = await create(stores)
    other = await create(stores, Scope(scope.project_id, scope.agent_instance_id, "other"))
    await stores.durable.record_event(scope, EventRecord("pause", T0 + 1, 12.25, "conflict", {"why": "dup"}))
    await stores.durable.record_event(scope, event("resume", T0 + 2))
    await stores.durable.record_event(other, event("pause", T0 + 3))
    events = await stores.durable.list_events(scope, 10)
    assert [e.event_type for e in events] == ["spawn", "pause", "resume"]
    assert events[1] == EventRecord("pause", T0 + 1, 12.25, "conflict", {"why": "dup"})
    assert events[0].at == T0 and events[0].outcome == "ok"
    assert [e.event_type for e in await stores.durable.list_events(scope, 2)] == ["spawn", "pause"]
    assert [e.event_type for e in await stores.durable.list_events(other, 10)] == ["spawn", "pause"]
    assert await stores.durable.list_events(new_scope(), 10) == []


async def test_discard_session_removes_a_fresh_session(stores: StorePair) -> None:
    scope = await create(stores)
    keep = await create(stores, Scope(scope.project_id, scope.agent_instance_id, "keep"))
    await stores.durable.discard_session(scope)
    assert await stores.durable.get_session(scope) is None
    assert await stores.durable.list_events(scope, 10) == []
    assert await stores.durable.get_session(keep) is not None
    # The session id is free again.
    again = await stores.durable.create_session(scope, None, {}, T0 + 1, event("spawn", T0 + 1))
    assert again.created_at == at(T0 + 1)
    assert len(await stores.durable.list_events(scope, 10)) == 1


# -- pause, checkpoints ---------------------------------------------------------------------------------------
CHECKPOINT_ITEMS = {
    # Raw JSON text must come back byte for byte: spacing, key order, escapes and number forms kept.
    "doc": Item('{"z": 1,  "a":[1.0, 2e3, "\\u00e9", "é"], "n":null}'),
    "ttl": Item('"expiring"', T0 + 3600.25),
    "unicode key é/😀": Item("[]"),
    "empty": Item('""'),
}


async def test_record_pause_stores_a_checkpoint(stores: StorePair) -> None:
    scope = await create(stores)
    cp = info("cp-1", T0 + 10, CHECKPOINT_ITEMS, label="before the refactor")
    await stores.durable.record_pause(scope, cp, CHECKPOINT_ITEMS, event("pause", T0 + 10, checkpoint_id="cp-1"))
    for wanted in ("cp-1", None):
        data = await stores.durable.get_checkpoint(scope, wanted)
        assert data is not None
        assert data.info == cp
        assert data.items == CHECKPOINT_ITEMS
        for key, it in CHECKPOINT_ITEMS.items():
            assert data.items[key].value.encode() == it.value.encode()
            assert data.items[key].expires_at == it.expires_at
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.PAUSED
    assert session.updated_at == at(T0 + 10)
    events = await stores.durable.list_events(scope, 10)
    assert [e.event_type for e in events] == ["spawn", "pause"]
    assert events[1].detail == {"checkpoint_id": "cp-1"}


async def test_checkpoint_of_an_empty_state(stores: StorePair) -> None:
    scope = await create(stores)
    await pause(stores, scope, "empty", T0 + 1, {})
    data = await stores.durable.get_checkpoint(scope, "empty")
    assert data is not None and data.items == {} and data.info.keys_count == 0


async def test_get_checkpoint_unknown_is_none(stores: StorePair) -> None:
    scope = await create(stores)
    assert await stores.durable.get_checkpoint(scope, None) is None
    await pause(stores, scope, "cp-1", T0 + 1)
    assert await stores.durable.get_checkpoint(scope, "cp-2") is None
    assert await stores.durable.get_checkpoint(new_scope(), None) is None
    assert await stores.durable.get_checkpoint(new_scope(), "cp-1") is None


async def test_get_checkpoint_none_is_the_newest(stores: StorePair) -> None:
    scope = await create(stores)
    await pause(stores, scope, "first", T0 + 1, {"a": Item("1")})
    await pause(stores, scope, "second", T0 + 2, {"b": Item("2")})
    newest = await stores.durable.get_checkpoint(scope, None)
    assert newest is not None and newest.info.checkpoint_id == "second" and newest.items == {"b": Item("2")}
    older = await stores.durable.get_checkpoint(scope, "first")
    assert older is not None and older.items == {"a": Item("1")}


async def test_reused_checkpoint_id_is_conflict_and_first_checkpoint_is_intact(stores: StorePair) -> None:
    scope = await create(stores)
    first = await pause(stores, scope, "cp", T0 + 1, CHECKPOINT_ITEMS)
    await stores.durable.record_resume(scope, event("resume", T0 + 2))
    with pytest.raises(Conflict):
        await pause(stores, scope, "cp", T0 + 3, {"other": Item("0"), "doc": Item("null")})
    data = await stores.durable.get_checkpoint(scope, "cp")
    assert data is not None and data.info == first and data.items == CHECKPOINT_ITEMS
    assert [c.checkpoint_id for c in await stores.durable.list_checkpoints(scope, 10, None)] == ["cp"]
    # Nothing was written: the session is still running and no pause event was added.
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == ["spawn", "pause", "resume"]


async def test_same_checkpoint_id_in_another_session_is_fine(stores: StorePair) -> None:
    one = await create(stores)
    two = await create(stores, Scope(one.project_id, one.agent_instance_id, "two"))
    three = await create(stores, Scope(uuid.uuid4(), one.agent_instance_id, one.session_id))
    await pause(stores, one, "cp", T0 + 1, {"a": Item("1")})
    await pause(stores, two, "cp", T0 + 2, {"a": Item("2")})
    await pause(stores, three, "cp", T0 + 3, {"a": Item("3")})
    for scope, value in ((one, "1"), (two, "2"), (three, "3")):
        data = await stores.durable.get_checkpoint(scope, "cp")
        assert data is not None and data.items == {"a": Item(value)}


async def test_record_pause_on_an_unknown_session_is_not_found(stores: StorePair) -> None:
    scope = new_scope()
    with pytest.raises(NotFound):
        await pause(stores, scope, "cp", T0)
    assert await stores.durable.get_checkpoint(scope, None) is None


async def test_list_checkpoints_newest_first_with_paging(stores: StorePair) -> None:
    scope = await create(stores)
    ids = [f"cp-{i}" for i in range(5)]
    made = [
        await pause(stores, scope, cid, T0 + i, {f"k{j}": Item(str(j)) for j in range(i)}) for i, cid in enumerate(ids)
    ]
    listed = await stores.durable.list_checkpoints(scope, 50, None)
    assert listed == made[::-1]
    assert [c.checkpoint_id for c in await stores.durable.list_checkpoints(scope, 2, None)] == ["cp-4", "cp-3"]
    assert [c.checkpoint_id for c in await stores.durable.list_checkpoints(scope, 2, "cp-3")] == ["cp-2", "cp-1"]
    assert [c.checkpoint_id for c in await stores.durable.list_checkpoints(scope, 2, "cp-1")] == ["cp-0"]
    assert await stores.durable.list_checkpoints(scope, 2, "cp-0") == []
    assert [c.checkpoint_id for c in await stores.durable.list_checkpoints(scope, 50, "cp-4")] == ids[3::-1]


async def test_list_checkpoints_orders_by_creation_not_by_id(stores: StorePair) -> None:
    scope = await create(stores)
    for i, cid in enumerate(["zeta", "alpha", "mid"]):
        await pause(stores, scope, cid, T0 + i)
    listed = await stores.durable.list_checkpoints(scope, 10, None)
    assert [c.checkpoint_id for c in listed] == ["mid", "alpha", "zeta"]
    newest = await stores.durable.get_checkpoint(scope, None)
    assert newest is not None and newest.info.checkpoint_id == "mid"


async def test_list_checkpoints_unknown_before_is_not_found(stores: StorePair) -> None:
    scope = await create(stores)
    other = await create(stores, Scope(scope.project_id, scope.agent_instance_id, "other"))
    await pause(stores, scope, "cp-1", T0 + 1)
    await pause(stores, other, "theirs", T0 + 2)
    with pytest.raises(NotFound):
        await stores.durable.list_checkpoints(scope, 10, "nope")
    # A checkpoint id of another session is unknown here.
    with pytest.raises(NotFound):
        await stores.durable.list_checkpoints(scope, 10, "theirs")


async def test_list_checkpoints_goes_on_from_the_time_of_a_before_that_is_gone(stores: StorePair) -> None:
    """With ``before_at`` (the time a cursor carries), a ``before`` no longer in the session is a position: those of
    that time and older follow (ties at that instant all of them: the gone row's place among them went with it)."""
    scope = await create(stores)
    times = [T0 + 0.123457 * i for i in range(5)]  # to the microsecond, not whole seconds
    for i, when in enumerate(times):
        await pause(stores, scope, f"cp-{i}", when)
        if i == 2:
            await pause(stores, scope, "tie-2", when)  # the same instant, made later: listed before cp-2

    async def listed(before: str, before_at: datetime | None) -> list[str]:
        return [c.checkpoint_id for c in await stores.durable.list_checkpoints(scope, 10, before, before_at)]

    assert await listed("cp-3", at(times[3])) == ["tie-2", "cp-2", "cp-1", "cp-0"]  # there: after it, as ever
    assert await listed("tie-2", at(times[2])) == ["cp-2", "cp-1", "cp-0"]
    for gone in ("cp-3", "cp-2"):
        assert await stores.durable.delete_checkpoint(scope, gone, event("delete_checkpoint", T0 + 9))
    assert await listed("cp-3", at(times[3])) == ["tie-2", "cp-1", "cp-0"]
    assert await listed("cp-2", at(times[2])) == ["tie-2", "cp-1", "cp-0"]  # tie-2 (listed before cp-2) again
    with pytest.raises(NotFound):
        await listed("cp-2", None)  # a plain id names a checkpoint, which is gone
    # The id names a checkpoint of another time (made again since): the position holds, not the id.
    assert await listed("cp-4", at(times[1] + 0.000001)) == ["cp-1", "cp-0"]


async def test_list_checkpoints_is_per_session(stores: StorePair) -> None:
    scope = await create(stores)
    await pause(stores, scope, "mine", T0 + 1)
    for other in (
        Scope(uuid.uuid4(), scope.agent_instance_id, scope.session_id),
        Scope(scope.project_id, uuid.uuid4(), scope.session_id),
        Scope(scope.project_id, scope.agent_instance_id, "other"),
    ):
        assert await stores.durable.list_checkpoints(other, 10, None) == []
        assert await stores.durable.get_checkpoint(other, "mine") is None
        assert await stores.durable.get_checkpoint(other, None) is None


async def test_recent_checkpoints_filtered_by_project(stores: StorePair) -> None:
    a = await create(stores)
    a2 = await create(stores, Scope(a.project_id, uuid.uuid4(), "a2"))
    b = await create(stores)
    c = await create(stores)
    cp_a = await pause(stores, a, "a-1", T0 + 1)
    cp_b = await pause(stores, b, "b-1", T0 + 2)
    cp_a2 = await pause(stores, a2, "a2-1", T0 + 3)
    cp_c = await pause(stores, c, "c-1", T0 + 4)
    assert await stores.durable.recent_checkpoints([a.project_id], 10) == [(a2, cp_a2), (a, cp_a)]
    assert await stores.durable.recent_checkpoints([a.project_id], 1) == [(a2, cp_a2)]
    assert await stores.durable.recent_checkpoints([b.project_id, c.project_id], 10) == [(c, cp_c), (b, cp_b)]
    assert await stores.durable.recent_checkpoints([uuid.uuid4()], 10) == []
    assert await stores.durable.recent_checkpoints([], 10) == []
    assert await stores.durable.recent_checkpoints(None, 10) == [
        (c, cp_c),
        (a2, cp_a2),
        (b, cp_b),
        (a, cp_a),
    ]


# -- resume, terminate ----------------------------------------------------------------------------------------
async def test_record_resume_sets_running(stores: StorePair) -> None:
    scope = await create(stores)
    await pause(stores, scope, "cp", T0 + 1)
    await stores.durable.record_resume(scope, event("resume", T0 + 2, checkpoint_id="cp"))
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING
    assert session.updated_at == at(T0 + 2)
    events = await stores.durable.list_events(scope, 10)
    assert [e.event_type for e in events] == ["spawn", "pause", "resume"]
    assert events[2].detail == {"checkpoint_id": "cp"}


async def test_record_resume_on_an_unknown_session_is_not_found(stores: StorePair) -> None:
    with pytest.raises(NotFound):
        await stores.durable.record_resume(new_scope(), event("resume", T0))


async def test_record_terminate_stores_episode_and_result(stores: StorePair) -> None:
    scope = await create(stores)
    ep = episode(
        scope.project_id,
        "finish the parser",
        agent_instance_id=scope.agent_instance_id,
        session_id=scope.session_id,
        created=T0 + 5,
        lessons=["test first"],
    )
    result = {"episode_id": str(ep.episode_id), "items_cleared": 3, "outcome": "success"}
    returned = await stores.durable.record_terminate(
        scope, ep, embed(ep.task_description), result, EventRecord("terminate", T0 + 5, 1.5, "ok", result)
    )
    assert returned == result
    session = await stores.durable.get_session(scope)
    assert session is not None
    assert session.status == SessionStatus.TERMINATED
    assert session.episode_id == ep.episode_id
    assert session.terminated_at == at(T0 + 5)
    assert session.terminate_result == result
    stored = await stores.durable.get_episode(scope.project_id, ep.episode_id)
    assert stored is not None
    assert stored.model_dump(exclude={"embedded"}) == ep.model_dump(exclude={"embedded"})
    assert stored.embedded
    events = await stores.durable.list_events(scope, 10)
    assert [e.event_type for e in events] == ["spawn", "terminate"]
    assert events[1].detail == result


async def test_record_terminate_without_episode(stores: StorePair) -> None:
    scope = await create(stores)
    result = {"episode_id": None, "outcome": "failure"}
    assert await stores.durable.record_terminate(scope, None, None, result, event("terminate", T0 + 1)) == result
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.TERMINATED
    assert session.episode_id is None and session.terminate_result == result
    assert await stores.durable.recent_episodes([scope.project_id], 10) == []


async def test_record_terminate_is_idempotent(stores: StorePair) -> None:
    scope = await create(stores)
    first_ep = episode(scope.project_id, "first", session_id=scope.session_id, created=T0 + 1)
    first = {"episode_id": str(first_ep.episode_id), "outcome": "success", "items_cleared": 2}
    assert await stores.durable.record_terminate(scope, first_ep, None, first, event("terminate", T0 + 1)) == first

    second_ep = episode(scope.project_id, "second", session_id=scope.session_id, created=T0 + 2)
    second = {"episode_id": str(second_ep.episode_id), "outcome": "failure", "items_cleared": 0}
    again = await stores.durable.record_terminate(scope, second_ep, embed("second"), second, event("terminate", T0 + 2))
    assert again == first
    assert await stores.durable.get_episode(scope.project_id, second_ep.episode_id) is None
    assert [e.episode_id for e in await stores.durable.recent_episodes([scope.project_id], 10)] == [first_ep.episode_id]
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == ["spawn", "terminate"]
    session = await stores.durable.get_session(scope)
    assert session is not None
    assert session.episode_id == first_ep.episode_id and session.terminated_at == at(T0 + 1)
    assert session.terminate_result == first


async def test_record_terminate_on_an_unknown_session_is_not_found(stores: StorePair) -> None:
    scope = new_scope()
    ep = episode(scope.project_id, "ghost")
    with pytest.raises(NotFound):
        await stores.durable.record_terminate(scope, ep, None, {"x": 1}, event("terminate", T0))
    assert await stores.durable.get_episode(scope.project_id, ep.episode_id) is None


async def test_a_sealed_session_accepts_no_pause_or_resume_until_unsealed(stores: StorePair) -> None:
    # terminate seals the durable record first: a pause or resume of another process must not slip in.
    scope = await create(stores)
    await pause(stores, scope, "cp", T0 + 1)
    await stores.durable.seal(scope, TOKEN, T0, LEASE)
    session = await stores.durable.get_session(scope)
    assert session is not None and session.sealed and session.status == SessionStatus.PAUSED
    with pytest.raises(Conflict, match="being terminated"):
        await pause(stores, scope, "cp-sealed", T0 + 2)
    with pytest.raises(Conflict, match="being terminated"):
        await stores.durable.record_resume(scope, event("resume", T0 + 3))
    assert [c.checkpoint_id for c in await stores.durable.list_checkpoints(scope, 10, None)] == ["cp"]
    await stores.durable.unseal(scope, TOKEN)  # the terminate failed before it was recorded
    session = await stores.durable.get_session(scope)
    assert session is not None and not session.sealed
    await pause(stores, scope, "cp-after", T0 + 4)
    await stores.durable.record_resume(scope, event("resume", T0 + 5))
    await stores.durable.seal(scope, TOKEN, T0, LEASE)
    await stores.durable.record_terminate(scope, None, None, {"done": True}, event("terminate", T0 + 6))
    await stores.durable.unseal(scope, TOKEN)  # a no-op once terminated
    session = await stores.durable.get_session(scope)
    assert session is not None and session.sealed and session.status == SessionStatus.TERMINATED


async def test_a_seal_belongs_to_its_token_until_its_lease_runs_out(stores: StorePair) -> None:
    # The durable seal decides between two terminates of one session (of two processes): the second is refused
    # while the first holds it; once the first's lease ran out (it crashed), the second takes it over, and the
    # first's late unseal leaves the second's seal alone.
    scope = await create(stores)
    assert await stores.durable.seal(scope, TOKEN, T0, LEASE)
    assert await stores.durable.seal(scope, TOKEN, T0 + 1, LEASE)  # the same terminate again: idempotent
    with pytest.raises(Conflict, match="already in progress"):
        await stores.durable.seal(scope, "terminate-b", T0 + LEASE - 1, LEASE)
    await stores.durable.unseal(scope, "terminate-b")  # not its seal: no-op
    session = await stores.durable.get_session(scope)
    assert session is not None and session.sealed
    await stores.durable.seal(scope, "terminate-b", T0 + 1 + LEASE, LEASE)  # the first's lease ran out: taken over
    await stores.durable.unseal(scope, TOKEN)
    with pytest.raises(Conflict, match="being terminated"):
        await pause(stores, scope, "cp", T0 + LEASE + 1)
    with pytest.raises(Conflict, match="already in progress"):
        await stores.durable.seal(scope, TOKEN, T0 + LEASE + 1, LEASE)
    await stores.durable.unseal(scope, "terminate-b")
    session = await stores.durable.get_session(scope)
    assert session is not None and not session.sealed
    await pause(stores, scope, "cp", T0 + LEASE + 2)
    # A missing session's seal is a no-op, as is any seal once terminated: it says so (a terminate of another
    # process recorded the session since the caller read it), and nothing changes.
    assert not await stores.durable.seal(new_scope(), TOKEN, T0, LEASE)
    assert await stores.durable.seal(scope, TOKEN, T0 + LEASE + 3, LEASE)
    await stores.durable.record_terminate(scope, None, None, {"done": True}, event("terminate", T0 + LEASE + 4))
    assert not await stores.durable.seal(scope, "terminate-b", T0 + LEASE + 5, LEASE)
    await stores.durable.unseal(scope, TOKEN)
    session = await stores.durable.get_session(scope)
    assert session is not None and session.sealed and session.status == SessionStatus.TERMINATED


async def test_only_the_terminate_that_recorded_a_session_ends_its_lease_and_only_once_recorded(
    stores: StorePair,
) -> None:
    # A terminate whose last step failed after its record ends its lease, so that a retry does not take it for one
    # still finishing (services/terminate_lease.py). Before the record the lease is the seal's, never ended so.
    scope = await create(stores)
    assert await stores.durable.seal(scope, TOKEN, T0, LEASE)
    await stores.durable.end_terminate_lease(scope, TOKEN)
    session = await stores.durable.get_session(scope)
    assert session is not None and session.seal_until == at(T0 + LEASE)
    await stores.durable.record_terminate(scope, None, None, {"done": True}, event("terminate", T0 + 1), None, TOKEN)
    await stores.durable.end_terminate_lease(scope, "terminate-b")
    session = await stores.durable.get_session(scope)
    assert session is not None and session.seal_token == TOKEN and session.seal_until == at(T0 + LEASE)
    await stores.durable.end_terminate_lease(scope, TOKEN)
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.TERMINATED and session.sealed
    assert session.seal_until is None and session.terminate_result == {"done": True}
    await stores.durable.end_terminate_lease(new_scope(), TOKEN)  # no session: nothing to do


async def test_terminated_session_accepts_no_transitions_and_keeps_checkpoints(stores: StorePair) -> None:
    scope = await create(stores)
    cp = await pause(stores, scope, "cp", T0 + 1, CHECKPOINT_ITEMS)
    await stores.durable.record_resume(scope, event("resume", T0 + 2))
    await stores.durable.record_terminate(scope, None, None, {"done": True}, event("terminate", T0 + 3))
    with pytest.raises(Conflict):
        await pause(stores, scope, "cp-after", T0 + 4)
    with pytest.raises(Conflict):
        await stores.durable.record_resume(scope, event("resume", T0 + 5))
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.TERMINATED
    data = await stores.durable.get_checkpoint(scope, None)
    assert data is not None and data.info == cp and data.items == CHECKPOINT_ITEMS
    assert await stores.durable.get_checkpoint(scope, "cp-after") is None
    assert await stores.durable.list_checkpoints(scope, 10, None) == [cp]
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == [
        "spawn",
        "pause",
        "resume",
        "terminate",
    ]


# -- episodes -------------------------------------------------------------------------------------------------
async def test_add_and_get_episode(stores: StorePair) -> None:
    project = uuid.uuid4()
    ep = episode(
        project,
        "Build the CSV exporter",
        lessons=["stream rows", "quote fields"],
        importance=0.9,
        outcome=Outcome.PARTIAL,
        session_id="s-1",
        created=T0 + 0.123456,
    )
    await stores.durable.add_episode(ep, embed("csv exporter"))
    bare = episode(project, "no vector")
    await stores.durable.add_episode(bare, None)
    got = await stores.durable.get_episode(project, ep.episode_id)
    assert got is not None
    assert got.model_dump(exclude={"embedded"}) == ep.model_dump(exclude={"embedded"})
    assert got.embedded is True
    got_bare = await stores.durable.get_episode(project, bare.episode_id)
    assert got_bare is not None and got_bare.embedded is False
    assert await stores.durable.get_episode(uuid.uuid4(), ep.episode_id) is None
    assert await stores.durable.get_episode(project, uuid.uuid4()) is None


async def test_recent_episodes_order_projects_and_limit(stores: StorePair) -> None:
    p1, p2, p3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    e1 = await add(stores.durable, episode(p1, "one", created=T0 + 1))
    e3 = await add(stores.durable, episode(p1, "three", created=T0 + 3))
    e2 = await add(stores.durable, episode(p2, "two", created=T0 + 2))
    e4 = await add(stores.durable, episode(p1, "four", created=T0 + 4), with_embedding=False)
    e5 = await add(stores.durable, episode(p3, "five", created=T0 + 5))

    def ids(eps: Sequence[Episode]) -> list[uuid.UUID]:
        return [e.episode_id for e in eps]

    assert ids(await stores.durable.recent_episodes([p1], 10)) == ids([e4, e3, e1])
    assert ids(await stores.durable.recent_episodes([p1], 2)) == ids([e4, e3])
    assert ids(await stores.durable.recent_episodes([p1, p2], 10)) == ids([e4, e3, e2, e1])
    assert ids(await stores.durable.recent_episodes(None, 10)) == ids([e5, e4, e3, e2, e1])
    assert await stores.durable.recent_episodes([], 10) == []
    assert await stores.durable.recent_episodes([uuid.uuid4()], 10) == []


async def test_recent_episodes_filter(stores: StorePair) -> None:
    project = uuid.uuid4()
    agent = uuid.uuid4()
    old = await add(stores.durable, episode(project, "old", created=T0, agent_instance_id=agent))
    fail = await add(stores.durable, episode(project, "fail", created=T0 + 10, outcome=Outcome.FAILURE))
    review = await add(
        stores.durable, episode(project, "review", created=T0 + 20, task_type="review", agent_instance_id=agent)
    )
    await add(stores.durable, episode(uuid.uuid4(), "elsewhere", created=T0 + 30, outcome=Outcome.FAILURE))

    async def ids(flt: EpisodeFilter) -> list[uuid.UUID]:
        return [e.episode_id for e in await stores.durable.recent_episodes([project], 10, flt)]

    assert await ids(EpisodeFilter()) == [review.episode_id, fail.episode_id, old.episode_id]
    assert await ids(EpisodeFilter(outcome=Outcome.FAILURE)) == [fail.episode_id]
    assert await ids(EpisodeFilter(task_type="review")) == [review.episode_id]
    assert await ids(EpisodeFilter(agent_instance_id=agent)) == [review.episode_id, old.episode_id]
    assert await ids(EpisodeFilter(since=T0 + 10)) == [review.episode_id, fail.episode_id]
    assert await ids(EpisodeFilter(until=T0 + 20)) == [fail.episode_id, old.episode_id]  # strictly before
    assert await ids(EpisodeFilter(since=T0 + 5, until=T0 + 15)) == [fail.episode_id]
    assert await ids(EpisodeFilter(since=T0 + 11, until=T0 + 20)) == []
    assert await ids(EpisodeFilter(outcome=Outcome.SUCCESS, agent_instance_id=agent, since=T0 + 1)) == [
        review.episode_id
    ]
    assert await ids(EpisodeFilter(task_type="review", outcome=Outcome.FAILURE)) == []


# -- search ---------------------------------------------------------------------------------------------------
async def test_search_ranks_the_relevant_episode_first(stores: StorePair) -> None:
    project = uuid.uuid4()
    target = await add(
        stores.durable,
        episode(
            project,
            "Fix the flaky database migration test",
            lessons=["pin the migration order"],
            created=T0,
        ),
    )
    await add(stores.durable, episode(project, "Write release notes for the database client", created=T0))
    await add(stores.durable, episode(project, "Refactor the authentication middleware", created=T0))
    await add(stores.durable, episode(project, "Tune the CI cache", created=T0))
    found = await stores.durable.search_episodes(project, "flaky migration test", None, EpisodeFilter(), 5, T0 + 60)
    assert found and found[0].episode_id == target.episode_id
    assert found[0].task_description == target.task_description
    assert all(s.project_id == project for s in found)
    scores = [s.score for s in found]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


async def test_search_relevance_dominates_recency(stores: StorePair) -> None:
    project = uuid.uuid4()
    now = T0 + 30 * DAY
    query = "fix flaky postgres migration deadlock"
    exact = await add(stores.durable, episode(project, query, created=T0), with_embedding=False)
    await add(stores.durable, episode(project, "update postgres docs", created=now), with_embedding=False)
    found = await stores.durable.search_episodes(project, query, None, EpisodeFilter(), 5, now)
    assert [s.episode_id for s in found][:1] == [exact.episode_id], [(s.task_description, s.score) for s in found]


async def test_search_matches_word_forms_and_lessons(stores: StorePair) -> None:
    project = uuid.uuid4()
    ep = await add(stores.durable, episode(project, "Clean up logging", lessons=["Deployments need a canary"]))
    await add(stores.durable, episode(project, "Unrelated chores"))
    found = await stores.durable.search_episodes(project, "deployment canaries", None, EpisodeFilter(), 5, T0)
    assert [s.episode_id for s in found][:1] == [ep.episode_id]


async def test_search_respects_limit(stores: StorePair) -> None:
    project = uuid.uuid4()
    for i in range(8):
        await add(stores.durable, episode(project, f"deploy service number {i}", created=T0 + i))
    found = await stores.durable.search_episodes(project, "deploy", None, EpisodeFilter(), 3, T0 + 10)
    assert len(found) == 3
    found = await stores.durable.search_episodes(project, "deploy", embed("deploy"), EpisodeFilter(), 3, T0 + 10)
    assert len(found) == 3


async def test_search_applies_filters(stores: StorePair) -> None:
    project = uuid.uuid4()
    agent = uuid.uuid4()
    base = await add(stores.durable, episode(project, "deploy the api", created=T0))
    failed = await add(
        stores.durable, episode(project, "deploy the api again", created=T0 + DAY, outcome=Outcome.FAILURE)
    )
    typed = await add(stores.durable, episode(project, "deploy the api docs", created=T0 + 2 * DAY, task_type="docs"))
    by_agent = await add(
        stores.durable, episode(project, "deploy the api worker", created=T0 + 3 * DAY, agent_instance_id=agent)
    )
    now = T0 + 4 * DAY
    cases: list[tuple[EpisodeFilter, set[uuid.UUID]]] = [
        (EpisodeFilter(), {base.episode_id, failed.episode_id, typed.episode_id, by_agent.episode_id}),
        (EpisodeFilter(outcome=Outcome.FAILURE), {failed.episode_id}),
        (EpisodeFilter(outcome=Outcome.PARTIAL), set()),
        (EpisodeFilter(task_type="docs"), {typed.episode_id}),
        (EpisodeFilter(agent_instance_id=agent), {by_agent.episode_id}),
        (EpisodeFilter(since=T0 + 2 * DAY), {typed.episode_id, by_agent.episode_id}),
        (EpisodeFilter(since=T0 + 2 * DAY, task_type="coding"), {by_agent.episode_id}),
        (EpisodeFilter(until=T0 + 2 * DAY), {base.episode_id, failed.episode_id}),  # strictly before
        (EpisodeFilter(since=T0 + DAY, until=T0 + 3 * DAY), {failed.episode_id, typed.episode_id}),
        (EpisodeFilter(since=T0 + 3 * DAY, until=T0 + 3 * DAY), set()),
    ]
    for flt, expected in cases:
        # Filters hold on the full-text path, the vector path, and both fused.
        for query, vector in (
            ("deploy api", None),
            ("", embed("deploy the api")),
            ("deploy api", embed("deploy the api")),
        ):
            found = await stores.durable.search_episodes(project, query, vector, flt, 10, now)
            assert {s.episode_id for s in found} == expected, (flt, query, vector is not None)


async def test_search_never_returns_another_projects_episodes(stores: StorePair) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    text = "rotate the signing keys"
    own = await add(stores.durable, episode(mine, "rotate keys for staging", importance=0.1))
    await add(stores.durable, episode(theirs, text, importance=1.0, created=T0 + 10))
    for vector in (None, embed(text)):
        found = await stores.durable.search_episodes(mine, text, vector, EpisodeFilter(), 10, T0 + 10)
        assert [s.episode_id for s in found] == [own.episode_id]
        assert await stores.durable.search_episodes(uuid.uuid4(), text, vector, EpisodeFilter(), 10, T0 + 10) == []


FTS_SYNTAX_QUERIES = [
    '"foo" OR (bar* NEAR',
    'foo" AND NOT',
    "NEAR(foo bar, 2)",
    "task_description:foo",
    "^foo -bar +baz",
    "{foo bar}: ***",
    "'; DROP TABLE episodes; --",
    "AND",
    '"',
    "",
    "   ",
    "?!.,;",
    "é ü 日本語",
]


async def test_search_query_syntax_is_never_an_error(stores: StorePair) -> None:
    project = uuid.uuid4()
    ep = await add(stores.durable, episode(project, "foo bar baz near and or not"))
    for query in FTS_SYNTAX_QUERIES:
        found = await stores.durable.search_episodes(project, query, None, EpisodeFilter(), 5, T0)
        assert all(s.episode_id == ep.episode_id for s in found), query
        fused = await stores.durable.search_episodes(project, query, embed("foo bar"), EpisodeFilter(), 5, T0)
        assert [s.episode_id for s in fused] == [ep.episode_id], query
    assert await stores.durable.recent_episodes([project], 5)  # the store is still fine


async def test_search_text_operators_are_plain_words(stores: StorePair) -> None:
    project = uuid.uuid4()
    foo = await add(stores.durable, episode(project, "foo handling"))
    await add(stores.durable, episode(project, "unrelated chores"))
    found = await stores.durable.search_episodes(project, '"foo" OR (bar* NEAR', None, EpisodeFilter(), 5, T0)
    assert [s.episode_id for s in found] == [foo.episode_id]


async def test_search_vector_only(stores: StorePair) -> None:
    project = uuid.uuid4()
    target = await add(stores.durable, episode(project, "provision kubernetes clusters with terraform"))
    await add(stores.durable, episode(project, "write unit tests for the tokenizer"))
    await add(
        stores.durable,
        episode(project, "provision kubernetes clusters with terraform (no vector)"),
        with_embedding=False,
    )
    # No word of the query is in any episode: only the vector can find anything.
    found = await stores.durable.search_episodes(
        project, "qqqq", embed("kubernetes clusters provisioning"), EpisodeFilter(), 5, T0
    )
    assert found and found[0].episode_id == target.episode_id
    assert all(s.embedded for s in found)
    scores = [s.score for s in found]
    assert scores == sorted(scores, reverse=True)


async def test_search_fuses_text_and_vector(stores: StorePair) -> None:
    project = uuid.uuid4()
    both = await add(stores.durable, episode(project, "migrate the billing database to postgres"))
    text_only = await add(stores.durable, episode(project, "postgres billing migration notes"), with_embedding=False)
    await add(stores.durable, episode(project, "paint the office"))
    query = "migrate billing database postgres"
    found = await stores.durable.search_episodes(project, query, embed(query), EpisodeFilter(), 10, T0)
    ids = [s.episode_id for s in found]
    assert ids[0] == both.episode_id
    # An episode without a vector is still found by its words.
    assert text_only.episode_id in ids
    scores = [s.score for s in found]
    assert scores == sorted(scores, reverse=True)
    assert len(set(ids)) == len(ids)


async def test_search_with_nothing_to_match_is_empty(stores: StorePair) -> None:
    project = uuid.uuid4()
    await add(stores.durable, episode(project, "something"))
    assert await stores.durable.search_episodes(project, "zzzz", None, EpisodeFilter(), 5, T0) == []
    assert await stores.durable.search_episodes(uuid.uuid4(), "something", None, EpisodeFilter(), 5, T0) == []


# -- races ----------------------------------------------------------------------------------------------------
async def race(n: int, attempt: Any) -> list[str]:
    """Run ``attempt(i)`` for i < n concurrently; the code of each outcome (``ok`` or an error code)."""
    outcomes: list[str] = []

    async def one(i: int) -> None:
        try:
            await attempt(i)
            outcomes.append("ok")
        except MemoryServiceError as exc:
            outcomes.append(exc.code)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return sorted(outcomes)


async def test_concurrent_create_session_one_wins(stores: StorePair) -> None:
    scope = new_scope()

    async def attempt(i: int) -> None:
        await stores.durable.create_session(scope, None, {"i": i}, T0 + i, event("spawn", T0 + i))

    assert await race(6, attempt) == ["conflict"] * 5 + ["ok"]
    assert len(await stores.durable.list_events(scope, 10)) == 1


async def test_concurrent_pauses_with_one_checkpoint_id_one_wins(stores: StorePair) -> None:
    scope = await create(stores)

    async def attempt(i: int) -> None:
        await pause(stores, scope, "same", T0 + 1 + i, {"who": Item(str(i))})

    assert await race(6, attempt) == ["conflict"] * 5 + ["ok"]
    listed = await stores.durable.list_checkpoints(scope, 10, None)
    assert [c.checkpoint_id for c in listed] == ["same"]
    data = await stores.durable.get_checkpoint(scope, "same")
    assert data is not None
    winner = data.items["who"].value
    assert data.info == info("same", T0 + 1 + int(winner), {"who": Item(winner)})
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == ["spawn", "pause"]


async def test_concurrent_terminates_all_return_the_winners_result(stores: StorePair) -> None:
    scope = await create(stores)
    episodes = [episode(scope.project_id, f"attempt {i}", session_id=scope.session_id) for i in range(6)]
    returned: list[dict[str, Any]] = []

    async def attempt(i: int) -> None:
        result = {"episode_id": str(episodes[i].episode_id), "i": i}
        returned.append(
            await stores.durable.record_terminate(scope, episodes[i], None, result, event("terminate", T0 + i))
        )

    assert await race(6, attempt) == ["ok"] * 6
    session = await stores.durable.get_session(scope)
    assert session is not None and session.terminate_result is not None
    assert all(r == session.terminate_result for r in returned)
    assert [e.episode_id for e in await stores.durable.recent_episodes([scope.project_id], 10)] == [session.episode_id]
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == ["spawn", "terminate"]
