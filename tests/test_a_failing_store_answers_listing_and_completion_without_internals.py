"""A store that fails under ``resources/list`` or ``completion/complete`` never shows the caller the exception: the
listing is a JSON-RPC error -32603 whose message is ``<code>: <sentence>`` (``unavailable`` for a store that is
down, ``internal`` for anything unexpected, its text kept for the server's log); a completion answers an empty
list, and the failure is logged at WARNING. Through the SDK's in-process client: a closed SQLite store, and a
crash at the fault points the two requests pass before they read."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, Completion, ResourceTemplateReference

from mcp_memory import faults
from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio

EPISODES = "memory://projects/{project_id}/episodes/{episode_id}"
SECRET = "/var/lib/secret/path.db: disk I/O error at page 7"


@pytest.fixture
async def client(runtime: MemoryRuntime) -> AsyncIterator[Client]:
    async with Client(create_server(runtime=runtime), mode="legacy") as c:
        p, a = str(uuid.uuid4()), str(uuid.uuid4())
        await c.call_tool("spawn", {"project_id": p, "agent_instance_id": a, "session_id": "s"})
        await c.call_tool("terminate", {"project_id": p, "agent_instance_id": a, "session_id": "s"})
        assert (await c.list_resources()).resources  # the episode is listed while the store serves
        yield c


async def complete_project(client: Client) -> Completion:
    ref = ResourceTemplateReference(type="ref/resource", uri=EPISODES)
    return (await client.complete(ref, {"name": "project_id", "value": ""})).completion


def warnings_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == logging.WARNING]


async def test_a_closed_store_is_unavailable_to_a_listing_and_an_empty_completion(
    client: Client, runtime: MemoryRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    await runtime.store.close()
    with pytest.raises(MCPError) as info:
        await client.list_resources()
    assert info.value.error.code == INTERNAL_ERROR
    assert info.value.error.message.startswith("unavailable: ")

    caplog.set_level(logging.DEBUG)
    assert (await complete_project(client)).values == []
    assert any(
        m.startswith("completion of project_id answered empty: unavailable: ")
        for m in warnings_of(caplog, "mcp_memory.server.completions")
    )


@pytest.mark.parametrize("point", faults.READ_POINTS)
async def test_a_crash_under_a_listing_or_a_completion_stays_in_the_log(
    client: Client, point: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(reached: str) -> None:
        if reached == point:
            raise OSError(SECRET)

    caplog.set_level(logging.DEBUG)
    with faults.on_fault(crash):
        if point == "listing.read":
            with pytest.raises(MCPError) as info:
                await client.list_resources()
            assert info.value.error.code == INTERNAL_ERROR
            assert info.value.error.message == "internal: unexpected error inside the server; details are in its log"
        else:
            assert (await complete_project(client)).values == []
            assert warnings_of(caplog, "mcp_memory.server.completions")
    # The server's log keeps what happened, with its traceback; the caller saw none of it.
    assert any(r.exc_info and SECRET in str(r.exc_info[1]) for r in caplog.records)
