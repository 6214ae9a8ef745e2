"""Two calls raced in a forced order: one held at a fault point (:mod:`mcp_memory.faults`) while the other runs
whole. Two runtimes on the same stores stand for two servers, whose calls no in-process lock orders; the fault
points make the interleaving that a real race hits only sometimes happen every time."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from mcp_memory import faults
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime

Call = Callable[[], Coroutine[Any, Any, object]]


def ids_of(scope: Scope) -> tuple[str, str, str]:
    """A scope as the lifecycle's positional arguments."""
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


async def events_of(rt: MemoryRuntime, scope: Scope) -> list[tuple[str, str]]:
    """The session's events as ``(type, outcome)``, oldest first, as ``rt``'s durable store holds them."""
    return [(e.event_type, e.outcome) for e in await rt.store.list_events(scope, 100)]


async def held_at(point: str, first: Call, second: Call) -> None:
    """Run ``first`` until it reaches ``point``, run ``second`` whole (answer or error), then let ``first`` finish;
    all within 30 s. ``first`` is held at the first time it reaches ``point`` only."""
    reached, done = anyio.Event(), anyio.Event()

    async def hold(at: str) -> None:
        if at == point and not reached.is_set():
            reached.set()
            await done.wait()

    async def run_second() -> None:
        await reached.wait()
        try:
            await second()
        finally:
            done.set()

    with faults.on_fault(hold), anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            tg.start_soon(run_second)
