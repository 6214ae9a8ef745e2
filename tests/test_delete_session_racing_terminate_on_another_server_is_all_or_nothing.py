"""``delete_session`` racing ``terminate`` of the same session on another server: one of them wins whole.
``delete_session`` takes the durable seal a terminate takes before it touches Redis. If the terminate sealed first,
the deletion answers ``conflict`` having erased nothing, and the terminate's episode holds the live working memory
(a key written after the last pause included; kept readable with ``cleanup_working=false``). If the deletion sealed
first, the terminate answers ``conflict`` without writing an episode, the deletion completes, and a later terminate
finds no session. Two runtimes on the same stores stand for two servers; the order is forced with the fault points
(mcp_memory.faults). Working memory in Redis, records on SQLite or Postgres."""

from __future__ import annotations

import uuid

import pytest

from mcp_memory.errors import Conflict, NotFound
from mcp_memory.models import Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime
from tests.races import held_at

pytestmark = pytest.mark.anyio


async def live_session(rt: MemoryRuntime) -> tuple[Scope, tuple[str, str, str]]:
    """A session paused once, resumed, then written to: its live state differs from its checkpoint."""
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await rt.lifecycle.spawn(*ids, initial_state={"k": "checkpointed"})
    await rt.lifecycle.pause(*ids)
    await rt.lifecycle.resume(*ids)
    await rt.working.set(scope, "live", "written after the pause")
    return scope, ids


@pytest.mark.parametrize("cleanup", [True, False])
async def test_a_terminate_that_sealed_first_makes_the_deletion_erase_nothing(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], cleanup: bool
) -> None:
    a, b = two_servers
    scope, ids = await live_session(a)
    answers: dict[str, object] = {}

    async def terminate() -> None:
        answers["terminate"] = (await a.lifecycle.terminate(*ids, cleanup_working=cleanup)).data

    async def delete() -> None:
        try:
            await b.control.delete_session(*ids)
            answers["delete"] = "ok"
        except Conflict:
            answers["delete"] = "conflict"

    await held_at("terminate.sealed", terminate, delete)  # the terminate waits, sealed, until the deletion has answered
    assert answers["delete"] == "conflict"
    result = answers["terminate"]
    assert isinstance(result, dict) and result["state_items_consolidated"] == 2
    episode = await a.store.get_episode(scope.project_id, uuid.UUID(result["episode_id"]))
    assert episode is not None and episode.metadata["state_keys"] == ["k", "live"]
    info = await a.store.get_session(scope)
    assert info is not None and info.status == SessionStatus.TERMINATED
    if not cleanup:
        assert sorted(await b.working.list_keys(scope)) == ["k", "live"]
    # Terminated, it may be deleted now, on either server.
    await b.control.delete_session(*ids)
    assert await a.store.get_session(scope) is None


async def test_a_deletion_that_sealed_first_wins_whole_and_the_terminate_writes_no_episode(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope, ids = await live_session(a)
    answers: dict[str, str] = {}

    async def delete() -> None:
        await b.control.delete_session(*ids)
        answers["delete"] = "ok"

    async def terminate() -> None:
        try:
            await a.lifecycle.terminate(*ids)
            answers["terminate"] = "ok"
        except Conflict:
            answers["terminate"] = "conflict"

    # The deletion waits, Redis erased, until the terminate has answered.
    await held_at("delete.working_erased", delete, terminate)
    assert answers == {"delete": "ok", "terminate": "conflict"}
    assert await a.store.get_session(scope) is None
    assert await a.store.recent_episodes([scope.project_id], 10) == []
    with pytest.raises(NotFound):
        await a.lifecycle.terminate(*ids)
    with pytest.raises(NotFound):
        await a.working.get(scope, "live")
