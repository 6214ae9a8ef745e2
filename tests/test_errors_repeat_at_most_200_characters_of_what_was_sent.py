"""An error repeats at most 200 characters of anything the caller sent, then "…": unknown argument names of a tool
or of the briefing prompt (however many, however long), and a project id that is not even a string, which a
restricted token's check reads before the tool runs. Through the SDK's in-process client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from mcp_memory.server.app import MemoryServer
from mcp_memory.server.assembly import create_server
from mcp_memory.server.auth import Grant
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio

BOUND = 400
"""The sentence around the 200 characters repeated, and then some."""


@pytest.fixture
async def server(runtime: MemoryRuntime) -> MemoryServer:
    return create_server(runtime=runtime)


@pytest.fixture
async def client(server: MemoryServer) -> AsyncIterator[Client]:
    async with Client(server, mode="legacy") as c:
        yield c


async def error_text(client: Client, tool: str, arguments: dict[str, object]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


async def test_unknown_tool_arguments_are_repeated_at_most_200_characters(client: Client) -> None:
    names = {f"{'x' * 50_000}{i}": 1 for i in range(10)}
    text = await error_text(client, "memory_list", {"session_id": "s", **names})
    assert text.startswith("invalid_argument: unknown argument(s) for memory_list: xxx")
    assert text.endswith("…") and len(text) < BOUND
    # A short one is named whole.
    assert (await error_text(client, "memory_list", {"session_id": "s", "ttl": 1})).endswith(": ttl")


async def test_unknown_prompt_arguments_are_repeated_at_most_200_characters(client: Client) -> None:
    with pytest.raises(MCPError) as info:
        await client.get_prompt("resume_briefing", {"q" * 100_000: "1", "r" * 100_000: "2"})
    assert info.value.error.code == INVALID_PARAMS
    message = info.value.error.message
    assert message.startswith("invalid_argument: unknown argument(s) for resume_briefing: qqq")
    assert message.endswith("…") and len(message) < BOUND


async def test_a_project_id_that_is_no_string_is_repeated_at_most_200_characters(
    server: MemoryServer, client: Client
) -> None:
    p, a = uuid.uuid4(), str(uuid.uuid4())
    server.grants.fallback = Grant("one project", frozenset({p}))
    arguments = {"project_id": ["x" * 200_000], "agent_instance_id": a, "session_id": "s", "key": "k"}
    text = await error_text(client, "memory_get", arguments)
    assert text.startswith("invalid_argument: project_id must be a UUID such as ")
    assert text.endswith("…") and len(text) < BOUND
