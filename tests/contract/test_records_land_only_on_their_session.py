"""Contract of the two-step records (:meth:`~mcp_memory.stores.ports.CheckpointStore.record_pause` and
:meth:`~mcp_memory.stores.ports.SessionStore.record_resume`), on every durable adapter: given the creation time of the
session their working-memory step was made from, they write only on that session. A session record created at
another time (the session was deleted and its id spawned again since) is refused, ``Respawned``, with nothing
written; none given (working memory of an earlier release), they record on whichever session holds the id. So does
:meth:`~mcp_memory.stores.ports.SessionStore.record_event` (a failed call's event), without an error: best effort."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from mcp_memory.errors import Respawned
from mcp_memory.models import CheckpointInfo, Item, Scope, SessionInfo, SessionStatus, pack_state, to_datetime
from mcp_memory.stores.ports import EventRecord
from tests.conftest import StorePair, new_scope

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0


async def spawned(stores: StorePair) -> tuple[Scope, SessionInfo]:
    scope = new_scope()
    info = await stores.durable.create_session(scope, None, {}, T0, EventRecord("spawn", T0, 0.0, "ok"))
    return scope, info


def checkpoint(checkpoint_id: str) -> CheckpointInfo:
    return CheckpointInfo(
        checkpoint_id=checkpoint_id, created_at=to_datetime(T0 + 1), keys_count=1, bytes=3, content_hash="sha256:x"
    )


async def test_a_pause_made_from_another_session_writes_nothing(stores: StorePair) -> None:
    scope, info = await spawned(stores)
    state = pack_state(["k"], ['"v"'], [None])
    other = replace(state, made_from=info.created_at - timedelta(seconds=1))
    with pytest.raises(Respawned, match="deleted and spawned again"):
        await stores.durable.record_pause(scope, checkpoint("old"), other, EventRecord("pause", T0 + 1, 0.0, "ok"))
    assert await stores.durable.list_checkpoints(scope, 10, None) == []
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == ["spawn"]
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING
    own = replace(state, made_from=info.created_at)
    await stores.durable.record_pause(scope, checkpoint("own"), own, EventRecord("pause", T0 + 1, 0.0, "ok"))
    await stores.durable.record_pause(scope, checkpoint("unnoted"), state, EventRecord("pause", T0 + 2, 0.0, "ok"))
    saved = await stores.durable.get_checkpoint(scope, "own")
    assert saved is not None and saved.items == {"k": Item('"v"')}
    assert {c.checkpoint_id for c in await stores.durable.list_checkpoints(scope, 10, None)} == {"own", "unnoted"}


async def test_a_resume_made_from_another_session_records_nothing(stores: StorePair) -> None:
    scope, info = await spawned(stores)
    await stores.durable.record_pause(scope, checkpoint("c"), {}, EventRecord("pause", T0 + 1, 0.0, "ok"))
    later = info.created_at + timedelta(microseconds=1)
    with pytest.raises(Respawned):
        await stores.durable.record_resume(scope, EventRecord("resume", T0 + 2, 0.0, "ok"), made_from=later)
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.PAUSED
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == ["spawn", "pause"]
    await stores.durable.record_resume(scope, EventRecord("resume", T0 + 3, 0.0, "ok"), made_from=info.created_at)
    session = await stores.durable.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING


async def test_an_event_made_from_another_session_is_not_recorded(stores: StorePair) -> None:
    scope, info = await spawned(stores)
    failed = EventRecord("terminate", T0 + 1, 0.0, "conflict", {"error": "of the deleted session"})
    for other in (info.created_at - timedelta(microseconds=1), info.created_at + timedelta(seconds=1)):
        await stores.durable.record_event(scope, failed, made_from=other)
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)] == ["spawn"]
    await stores.durable.record_event(scope, failed, made_from=info.created_at)
    await stores.durable.record_event(scope, EventRecord("pause", T0 + 2, 0.0, "conflict"))  # unnoted: recorded
    events = [(e.event_type, e.outcome) for e in await stores.durable.list_events(scope, 10)]
    assert events == [("spawn", "ok"), ("terminate", "conflict"), ("pause", "conflict")]
