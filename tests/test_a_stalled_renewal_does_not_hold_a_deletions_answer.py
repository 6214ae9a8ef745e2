"""A lease kept by ``services.renewal.renewed`` (``delete_session``'s seal) is renewed beside its holder's steps.
A renewal stalled in its store (queued behind SQLite's write lock, a stopped server) no longer holds the holder
past its steps or its cancellation: the block's end cancels the renewal in flight, which a store's write allows
(its transaction rolls back). Before, the renewal was shielded and the block waited it out (a body of 0.1 s
returned after the 3 s renewal; a deletion answered past its call's deadline)."""

from __future__ import annotations

import time
import uuid

import anyio
import pytest

from mcp_memory import faults
from mcp_memory.models import Scope
from mcp_memory.services.renewal import renewed
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio

STALL = 3.0
LEASE = 0.6  # renewed every 0.2 s


async def stalled() -> None:
    await anyio.sleep(STALL)


async def test_a_block_that_ends_during_a_stalled_renewal_returns_at_once() -> None:
    started = time.monotonic()
    async with renewed(stalled, 0.05, "a test lease"):
        await anyio.sleep(0.1)
    assert time.monotonic() - started < 1.0


async def test_a_block_cancelled_during_a_stalled_renewal_is_cancelled_at_once() -> None:
    started = time.monotonic()
    with anyio.move_on_after(0.2) as cancelled:
        async with renewed(stalled, 0.05, "a test lease"):
            await anyio.sleep(10)
    assert cancelled.cancelled_caught and time.monotonic() - started < 1.0


@pytest.mark.parametrize("server_settings", [{"terminate_lease_seconds": LEASE}])
async def test_a_deletion_answers_without_waiting_for_its_stalled_renewal(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await a.lifecycle.spawn(*ids, initial_state={"k": 1})
    renewing = anyio.Event()

    async def stall(point: str) -> None:
        if point == "delete.working_erased":  # the deletion's steps last until a renewal is in flight
            with anyio.fail_after(5):
                await renewing.wait()
        elif point == "delete.renewing":  # the store does not answer the renewal for 3 s
            renewing.set()
            await stalled()

    started = time.monotonic()
    with faults.on_fault(stall), anyio.fail_after(30):
        result = await b.control.delete_session(*ids)
    assert result.removed.working_keys == 1
    assert time.monotonic() - started < STALL / 2
    assert await a.store.get_session(scope) is None
