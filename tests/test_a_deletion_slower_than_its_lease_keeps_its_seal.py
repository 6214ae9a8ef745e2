"""``delete_session`` (working memory in Redis) renews its durable seal while it runs. A deletion slower than its
lease (``terminate_lease_seconds``, 2 s here; a stalled store or a large session in production) still holds the
session when a terminate of another server arrives past the lease: the terminate is ``conflict`` with no episode
written, and the deletion completes. Without the renewal the terminate took the seal over and consolidated a
half-erased session (the checkpoint Redis re-opened after the deletion's erase, not the live memory it had)."""

from __future__ import annotations

import uuid

import anyio
import pytest

from mcp_memory.errors import Conflict, NotFound
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests.races import held_at

pytestmark = pytest.mark.anyio

LEASE = 2.0


@pytest.mark.parametrize("server_settings", [{"terminate_lease_seconds": LEASE}])
async def test_a_terminate_past_the_lease_of_a_slow_deletion_is_conflict_and_the_deletion_completes(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await a.lifecycle.spawn(*ids, initial_state={"k": "checkpointed"})
    await a.lifecycle.pause(*ids)
    await a.working.set(scope, "live", "written after the pause")
    answers: dict[str, str] = {}

    async def delete() -> None:
        await b.control.delete_session(*ids)
        answers["delete"] = "ok"

    async def terminate() -> None:
        await anyio.sleep(LEASE * 1.5)  # past the lease the deletion's seal was taken with
        try:
            result = await a.lifecycle.terminate(*ids)
            answers["terminate"] = f"ok, {result.data['state_items_consolidated']} items consolidated"
        except Conflict:
            answers["terminate"] = "conflict"

    # The deletion stalls, Redis erased, until the terminate has answered.
    await held_at("delete.working_erased", delete, terminate)
    assert answers == {"delete": "ok", "terminate": "conflict"}
    assert await a.store.get_session(scope) is None
    assert await a.store.recent_episodes([scope.project_id], 10) == []
    with pytest.raises(NotFound):
        await a.lifecycle.terminate(*ids)
