"""A call holds one of its MCP session's ``max_calls_in_flight_per_mcp_session`` places while it runs and gives it
back however it ends: answered, failed, or cancelled (by its client's ``notifications/cancelled``, or by a stop).
Through the SDK's in-process client (one MCP session), with a hook holding a ``resources/list`` at its fault point;
and :class:`InFlightCalls` itself for the ways a call can end."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Unavailable
from mcp_memory.server.assembly import create_server
from mcp_memory.server.in_flight import InFlightCalls, McpSession
from mcp_memory.services.runtime import MemoryRuntime
from tests.waiting import until

pytestmark = pytest.mark.anyio

REFUSAL = "unavailable: this MCP session has too many calls in flight: 1, the most it may have"


async def test_a_call_its_client_cancels_gives_its_place_back(make_settings: Callable[..., Settings]) -> None:
    scope = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s1"}
    reached = anyio.Event()

    async def hang(point: str) -> None:
        if point == "listing.read":
            reached.set()
            await anyio.sleep_forever()

    async with MemoryRuntime(make_settings(max_calls_in_flight_per_mcp_session=1)) as runtime:
        async with Client(create_server(runtime=runtime), mode="legacy") as client:

            async def memory_list() -> CallToolResult:
                return await client.call_tool("memory_list", scope)

            assert not (await client.call_tool("spawn", scope)).is_error
            with faults.on_fault(hang), anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.list_resources)
                    await reached.wait()
                    refused = await memory_list()
                    assert refused.is_error and refused.content[0].text.startswith(REFUSAL), refused  # type: ignore[union-attr]
                    tg.cancel_scope.cancel()  # the client sends notifications/cancelled; the server cancels it
                answered = await until(lambda: _served(memory_list), what="the cancelled listing's place is free")
                assert answered.structured_content == {"keys": []}, answered


async def _served(call: Callable[[], Any]) -> CallToolResult | None:
    result: CallToolResult = await call()
    if result.is_error:
        assert result.content[0].text.startswith(REFUSAL), result  # type: ignore[union-attr]
        return None
    return result


async def test_a_place_is_given_back_however_the_call_ends() -> None:
    calls = InFlightCalls(per_session=1)
    mine, other = McpSession(object(), "mine"), McpSession(object(), "other")

    with calls.track(mine, "tools/call"):
        with pytest.raises(Unavailable, match="too many calls in flight: 1,"), calls.track(mine, "tools/call"):
            pass
        # Another session, and a call from Python: not counted here.
        with calls.track(other, "tools/call"), calls.track(None, "tools/call"):
            pass
    with pytest.raises(ValueError), calls.track(mine, "tools/call"):
        raise ValueError("the call failed")
    with anyio.CancelScope() as cancelled:
        with calls.track(mine, "tools/call"):
            cancelled.cancel()
            await anyio.sleep_forever()
    running = anyio.Event()

    async def cut_off_by_a_stop() -> None:
        with pytest.raises(Unavailable, match="the server is stopping"), calls.track(mine, "tools/call"):
            running.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cut_off_by_a_stop)
        await running.wait()
        calls.cut_off()
    with calls.track(mine, "tools/call"):  # every way out gave the place back: it is free
        pass
