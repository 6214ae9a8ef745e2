"""Terminates cut off by their server's death right after their durable record (the job after it undone: working
memory not closed, hooks not run), for the tests of the terminate sweep, and what those tests look at: the sessions
the durable store lists unfinished."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from mcp_memory import faults
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.terminate_sweep import SWEEP_MARGIN_SECONDS
from mcp_memory.stores.ports import UnfinishedTerminates
from tests.conftest import FakeClock
from tests.cut_off_spawns import ids


class ServerDied(BaseException):
    """The server stops dead at a fault point (not an ``Exception``, which the call's own cleanup might catch)."""


async def cut_off_terminates(
    rt: MemoryRuntime, clock: FakeClock, scopes: Sequence[Scope], initial: Mapping[str, Any]
) -> None:
    """Terminates of ``scopes`` (spawned with ``initial`` in this order: the listing's), each cut off by its server's
    death right after its record, all lapsed past the sweep's margin."""
    for scope in scopes:
        await rt.lifecycle.spawn(*ids(scope), initial_state=dict(initial))

    async def die(point: str) -> None:
        if point == "terminate.recorded":
            raise ServerDied(point)

    with faults.on_fault(die):
        for scope in scopes:
            with pytest.raises(ServerDied):
                await rt.lifecycle.terminate(*ids(scope))
    clock.advance(rt.settings.terminate_lease_seconds + SWEEP_MARGIN_SECONDS + 1)


async def unfinished(rt: MemoryRuntime, clock: FakeClock) -> list[str]:
    """The session ids of the terminates the durable store lists unfinished and lapsed now, in its order."""
    assert isinstance(rt.store, UnfinishedTerminates)
    return [s.scope.session_id for s in await rt.store.unfinished_terminates(clock(), 100)]


__all__ = ["ServerDied", "cut_off_terminates", "unfinished"]
