"""``resources/list`` is served as a resource read is: its store reads run under the call deadline
(``call_timeout_seconds``, so a stalled store answers ``unavailable`` in time rather than after each store's own
timeouts), and a stop cuts it off like any call in flight (the listing answers ``unavailable``, counted in the
stop's WARNING). Before, it ran outside both: no deadline, and a stop left it running. Through the SDK's in-process
client, with a hook at the listing's fault point."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from mcp_memory import deadlines, faults
from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio


async def test_a_listing_reads_within_the_call_deadline(runtime: MemoryRuntime) -> None:
    left: list[float | None] = []

    async def note(point: str) -> None:
        if point == "listing.read":
            left.append(deadlines.remaining())

    async with Client(create_server(runtime=runtime), mode="legacy") as client:
        with faults.on_fault(note):
            await client.list_resources()
    assert len(left) == 1 and left[0] is not None, left
    assert 0 < left[0] <= runtime.settings.call_timeout_seconds


async def test_a_stop_cuts_off_a_listing_in_flight(runtime: MemoryRuntime) -> None:
    server = create_server(runtime=runtime)
    reached = anyio.Event()

    async def hang(point: str) -> None:
        if point == "listing.read":
            reached.set()
            await anyio.sleep_forever()

    async with Client(server, mode="legacy") as client, anyio.create_task_group() as tg:
        failures: list[MCPError] = []
        answered = anyio.Event()

        async def listing() -> None:
            try:
                await client.list_resources()
            except MCPError as err:
                failures.append(err)
            answered.set()

        with faults.on_fault(hang), anyio.fail_after(10):
            tg.start_soon(listing)
            await reached.wait()
            server.in_flight.cut_off()
            await answered.wait()
        assert failures, "the listing was answered as if nothing had stopped"
        assert failures[0].error.code == INTERNAL_ERROR
        assert failures[0].error.message.startswith("unavailable: the server is stopping"), failures[0].error
        assert server.in_flight.cut_off_count == 1
