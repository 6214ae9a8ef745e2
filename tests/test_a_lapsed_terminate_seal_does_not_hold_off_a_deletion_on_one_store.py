"""A terminate that crashed after sealing its session (one store holds everything: SQLite alone, Postgres alone)
holds the session only until its seal's lease lapses: a ``delete_session`` then deletes it, as a terminate then takes
the seal over, and as ``delete_session`` does when working memory is in Redis (docs/contract.md, delete_session: a
session held by a terminate is ``conflict``, saying within how many seconds the seal lapses). The ``redis`` run
is the control: there the deletion's claim takes the lapsed seal over."""

from __future__ import annotations

import pytest

from mcp_memory.errors import Conflict
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "postgres", "redis")]


async def test_a_deletion_after_a_crashed_terminates_seal_lapsed_deletes_the_session(
    runtime: MemoryRuntime, scope: Scope, clock: FakeClock
) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s, initial_state={"k": 1})
    lease = runtime.settings.terminate_lease_seconds
    # What a terminate that crashed right after sealing (kill -9 at terminate.sealed) leaves behind.
    await runtime.store.seal(scope, "crashed-terminate", clock(), lease)

    with pytest.raises(Conflict):  # within the lease: the terminate may still be running
        await runtime.control.delete_session(p, a, s)

    clock.advance(lease + 1)
    deleted = await runtime.control.delete_session(p, a, s)
    assert deleted.removed.checkpoints == 0 and deleted.removed.working_keys == 1
    assert await runtime.store.get_session(scope) is None
