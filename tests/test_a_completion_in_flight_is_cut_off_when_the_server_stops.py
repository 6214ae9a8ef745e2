"""A completion in flight when the server stops is cut off with the other calls (it answers empty at once and
counts among the calls the stop cut off), instead of running on until its deadline while the server waits to stop.
Through the SDK's in-process client, the completion held at its ``completion.read`` fault point."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import anyio
import pytest
from mcp import Client
from mcp_types import ResourceTemplateReference

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio

SESSION_TEMPLATE = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}"


async def test_a_completion_held_at_the_store_answers_empty_when_the_stop_cuts_calls_off(
    make_settings: Callable[..., Settings],
) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    reached, never = anyio.Event(), anyio.Event()

    async def hold(point: str) -> None:
        if point == "completion.read":
            reached.set()
            await never.wait()  # a store that does not answer: only a cut-off ends the wait

    async with MemoryRuntime(make_settings(call_timeout_seconds=600)) as runtime:
        server = create_server(runtime=runtime)
        async with Client(server, mode="legacy") as client:
            assert not (
                await client.call_tool("spawn", {"project_id": p, "agent_instance_id": a, "session_id": "s1"})
            ).is_error
            ref = ResourceTemplateReference(type="ref/resource", uri=SESSION_TEMPLATE)
            with faults.on_fault(hold), anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    answers: list[list[str]] = []

                    async def complete() -> None:
                        result = await client.complete(ref, {"name": "session_id", "value": "s"}, {"project_id": p})
                        answers.append(result.completion.values)

                    tg.start_soon(complete)
                    await reached.wait()
                    server.in_flight.cut_off()
            assert answers == [[]]
            assert server.in_flight.cut_off_count == 1
