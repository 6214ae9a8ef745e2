"""A lifecycle call that fails on an existing session is recorded as an event (its error code as the outcome), and
that record applies the session's event bounds as a pause or resume does: a loop of failing calls, on a session that
never pauses successfully again (a terminated one, say), leaves the newest ``event_retention_count`` events and the
protected spawn and terminate, on every store kind."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, NotFound
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]
BOUND = 5


async def test_failing_pauses_and_resumes_in_a_loop_keep_the_newest_events_within_the_bound(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    async with MemoryRuntime(make_settings(event_retention_count=BOUND), clock=clock) as rt:
        await rt.lifecycle.spawn(p, a, s, initial_state={"k": 1})
        await rt.lifecycle.pause(p, a, s, checkpoint_id="c1")
        for _ in range(30):
            clock.advance(1)
            with pytest.raises(Conflict):
                await rt.lifecycle.pause(p, a, s, checkpoint_id="c1")  # the id is taken
            clock.advance(1)
            with pytest.raises(NotFound):
                await rt.lifecycle.resume(p, a, s, checkpoint_id="nope")
        events = await rt.store.list_events(scope, 1000)
        assert [e.event_type for e in events[:1]] == ["spawn"]
        newest = [(e.event_type, e.outcome) for e in events[1:]]
        assert newest == [("resume", "not_found"), ("pause", "conflict")] * 2 + [("resume", "not_found")]

        # A terminated session refuses every pause: still bounded, spawn and terminate kept.
        await rt.lifecycle.terminate(p, a, s)
        for _ in range(30):
            clock.advance(1)
            with pytest.raises(Conflict):
                await rt.lifecycle.pause(p, a, s)
        kinds = [e.event_type for e in await rt.store.list_events(scope, 1000)]
    assert kinds[0] == "spawn" and "terminate" in kinds
    assert len(kinds) <= BOUND + 2
