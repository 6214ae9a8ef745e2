"""``delete_session`` (working memory in Redis) meeting a seal it cannot wait out within a call. A live deletion
renews its seal every third of the lease, so a deletion's seal not renewed for longer than that (plus a slack) is a
deletion that stopped (its server crashed): only the lease's end frees the session, so the new deletion answers
``conflict`` at once, saying when the seal lapses, instead of polling its whole call budget and claiming the
session "is being deleted" (it was, before: ~1.4 s of 1.5 and ~28 write transactions per retry). A seal whose token
does not say it is a deletion's (a terminate's, or a deletion of a previous release during a rolling upgrade) is
``conflict`` at once too, with a message true of both."""

from __future__ import annotations

import time
import uuid

import pytest

from mcp_memory import deadlines, faults
from mcp_memory.errors import Conflict
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.session_control import DELETION_TOKEN

pytestmark = pytest.mark.anyio


async def sealed(rt: MemoryRuntime, token: str, sealed_ago: float) -> tuple[Scope, tuple[str, str, str]]:
    """A session sealed by ``token`` (a call that never finishes), last sealed or renewed ``sealed_ago`` s ago."""
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await rt.lifecycle.spawn(*ids, initial_state={"k": 1})
    await rt.store.seal(scope, token, rt.clock() - sealed_ago, rt.settings.terminate_lease_seconds)
    return scope, ids


async def delete_within_a_call(rt: MemoryRuntime, ids: tuple[str, str, str]) -> tuple[float, str, int]:
    """Delete as a tool call would (1.5 s budget): how long it took, the conflict's message, how often it waited."""
    waits = 0

    async def count(point: str) -> None:
        nonlocal waits
        waits += point == "delete.waiting"

    started = time.monotonic()
    with faults.on_fault(count), deadlines.call_deadline(1.5, 0.5), pytest.raises(Conflict) as raised:
        await rt.control.delete_session(*ids)
    return time.monotonic() - started, raised.value.message, waits


async def test_a_deletion_meeting_a_crashed_deletions_seal_is_conflict_at_once_saying_when_it_lapses(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    # Sealed 40 s ago with the default 90 s lease and never renewed (a renewal was due every 30 s).
    scope, ids = await sealed(a, DELETION_TOKEN + "crashed", sealed_ago=40)
    took, message, waits = await delete_within_a_call(b, ids)
    assert waits == 0 and took < 0.5
    assert "held by a deletion that stopped" in message and "within 50 seconds" in message
    assert "is being deleted by another call" not in message
    assert await a.store.get_session(scope) is not None


async def test_a_deletion_meeting_a_live_deletions_seal_still_waits_for_it(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    # Renewed 20 s ago: within its renewal period, its holder may still answer.
    _, ids = await sealed(a, DELETION_TOKEN + "live", sealed_ago=20)
    took, message, waits = await delete_within_a_call(b, ids)
    assert waits > 5 and took > 1.0
    assert "is being deleted by another call" in message


async def test_a_deletion_meeting_an_older_releases_deletion_seal_does_not_call_it_a_terminate(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    # A previous release's deletion sealed with a bare uuid, as a terminate does: the two cannot be told apart.
    _, ids = await sealed(a, uuid.uuid4().hex, sealed_ago=0)
    took, message, waits = await delete_within_a_call(b, ids)
    assert waits == 0 and took < 0.5
    assert "is being terminated or deleted by another call" in message and "within 90 seconds" in message
    assert "delete it once it is terminated" not in message


async def test_a_terminate_meeting_a_crashed_deletions_seal_says_when_that_seal_lapses(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope, ids = await sealed(a, DELETION_TOKEN + "crashed", sealed_ago=40)
    with pytest.raises(Conflict) as raised:
        await b.lifecycle.terminate(*ids)
    assert "within 50 seconds" in raised.value.message, raised.value.message  # not the whole 90 s lease
    assert (await a.store.get_session(scope)) is not None
