"""Two calls raced in a forced order: one held at a fault point (:mod:`mcp_memory.faults`) while the other runs
whole. Two runtimes on the same stores stand for two servers, whose calls no in-process lock orders; the fault
points make the interleaving that a real race hits only sometimes happen every time."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from mcp_memory import faults

Call = Callable[[], Coroutine[Any, Any, object]]


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
