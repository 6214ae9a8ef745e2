"""Paging ``list_checkpoints`` with ``next_before``: null on the last page (also a full one), and a page goes on
where the last one ended when the checkpoint its cursor names has been deleted or pruned since (a cleanup loop that
deletes each page, retention pruning the oldest listed one), none skipped; a cursor stays within its own session
and a malformed one is ``invalid_argument``. On every backend, through the SDK's in-process client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


@pytest.fixture
async def client(runtime: MemoryRuntime) -> AsyncIterator[Client]:
    async with Client(create_server(runtime=runtime), mode="legacy") as c:
        yield c


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content[0].text}"  # type: ignore[union-attr]
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    return data


async def err(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} succeeded"
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


def new_session() -> dict[str, str]:
    return {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s"}


async def paused(client: Client, s: dict[str, str], n: int, clock: FakeClock | None = None) -> list[str]:
    """A running session with ``n`` checkpoints (one second apart with ``clock``); their ids, oldest first."""
    await ok(client, "spawn", **s, initial_state={"k": 0})
    made = []
    for _ in range(n):
        made.append((await ok(client, "pause", **s))["checkpoint_id"])
        await ok(client, "resume", **s)
        if clock is not None:
            clock.advance(1)
    return made


def ids(page: dict[str, Any]) -> list[str]:
    return [c["checkpoint_id"] for c in page["checkpoints"]]


async def test_the_last_page_has_no_cursor_even_when_it_is_exactly_a_page_long(
    client: Client, clock: FakeClock
) -> None:
    s = new_session()
    made = await paused(client, s, 4, clock)
    whole = await ok(client, "list_checkpoints", **s, limit=4)
    assert ids(whole) == made[::-1] and whole["next_before"] is None
    first = await ok(client, "list_checkpoints", **s, limit=2)
    assert ids(first) == made[:1:-1] and first["next_before"]
    last = await ok(client, "list_checkpoints", **s, limit=2, before=first["next_before"])
    assert ids(last) == made[1::-1] and last["next_before"] is None
