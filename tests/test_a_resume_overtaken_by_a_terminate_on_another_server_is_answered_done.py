"""A resume whose restore went through is answered done even when a terminate on another server sealed the session
before the resume could record itself. The resume reads its checkpoint and restores it into Redis before the
terminate seals; the terminate then consolidates the restored state; the resume's record meets the seal. The restore
is done (it replaced the live state, and the episode holds it), so the resume answers ok, and its event is recorded.
Two runtimes on the same stores stand for two servers; the order is forced with the fault points
(mcp_memory.faults). Working memory in Redis, records on SQLite or Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from mcp_memory.models import Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime
from tests.races import held_at

pytestmark = pytest.mark.anyio


async def test_a_restored_resume_is_ok_though_a_terminate_sealed_before_it_was_recorded(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await a.lifecycle.spawn(*ids, initial_state={"old": 1})
    await a.lifecycle.pause(*ids)
    await a.working.delete(scope, "old")
    await a.working.set(scope, "live", "replaced by the resume")
    answers: dict[str, Any] = {}

    async def resume() -> None:
        answers["resume"] = (await a.lifecycle.resume(*ids)).data

    async def terminate() -> None:
        answers["terminate"] = (await b.lifecycle.terminate(*ids)).data

    await held_at("resume.restored", resume, terminate)  # the resume waits, restored, until the terminate is over
    assert answers["resume"]["items_restored"] == 1
    episode = await a.store.get_episode(scope.project_id, uuid.UUID(answers["terminate"]["episode_id"]))
    assert episode is not None and episode.metadata["state_keys"] == ["old"]
    info = await a.store.get_session(scope)
    assert info is not None and info.status == SessionStatus.TERMINATED
    recorded = [(e.event_type, e.outcome) for e in await a.store.list_events(scope, 20)]
    assert ("resume", "ok") in recorded and ("resume", "conflict") not in recorded
