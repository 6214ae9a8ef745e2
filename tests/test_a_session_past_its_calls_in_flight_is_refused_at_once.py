"""One MCP session has at most ``max_calls_in_flight_per_mcp_session`` calls in flight: with the cap at 2 and two
calls waiting on a frozen Redis, a third call on the same session (a tool call, a resource read, a prompt) is
answered ``unavailable: this MCP session has too many calls in flight ...`` at once (a completion: empty), while
another session's calls are served; once Redis answers again and the two calls end, the session calls again as
before.

Over SSE each POST is answered 202 at once and over stdio each line is read at once, so before the cap nothing
bounded how many calls one client had waiting (3,000 POSTs on a stalled store held ~130 MB): the third call waited
at Redis with the others. A real server process, the SDK's client, over SSE, stdio and Streamable HTTP."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, CallToolResult, ResourceTemplateReference

from tests.http_helpers import EXE, TIMEOUT, ServerProcess, connect, ok, server_env
from tests.redis_servers import RedisServer, unique_prefix
from tests.stalled_stores import frozen, unread_at
from tests.waiting import until

pytestmark = pytest.mark.anyio

CAP = 2
AT_ONCE = 5.0
"""A refusal takes no store step; the calls it is refused beside wait up to a minute (the deadlines below)."""
REFUSAL = "unavailable: this MCP session has too many calls in flight: 2, the most it may have"


@asynccontextmanager
async def two_sessions(transport: str, env: dict[str, str]) -> AsyncIterator[tuple[Client, Client]]:
    """Two MCP sessions of ``transport``: two streams of one server over HTTP, two server processes on stdio."""
    async with AsyncExitStack() as stack:
        if transport == "stdio":
            params = StdioServerParameters(command=str(EXE), args=["serve"], env=env)
            clients = [
                await stack.enter_async_context(Client(params, mode="legacy", read_timeout_seconds=TIMEOUT))
                for _ in range(2)
            ]
        else:
            server = stack.enter_context(ServerProcess(env))
            clients = [await stack.enter_async_context(connect(server.url, None, transport)) for _ in range(2)]
        yield clients[0], clients[1]


@pytest.mark.parametrize("transport", ["sse", "stdio", "http-legacy"])
async def test_a_call_past_the_sessions_cap_is_unavailable_at_once_and_other_sessions_are_served(
    tmp_path: Path, own_redis: RedisServer, transport: str
) -> None:
    assert own_redis.process is not None
    project, agent = str(uuid.uuid4()), str(uuid.uuid4())
    env = server_env(
        tmp_path / "memory.db",
        MCP_MEMORY_PROJECT_ID=project,
        MCP_MEMORY_AGENT_INSTANCE_ID=agent,
        MCP_MEMORY_REDIS_URL=own_redis.url,
        MCP_MEMORY_REDIS_KEY_PREFIX=unique_prefix(),
        MCP_MEMORY_MAX_CALLS_IN_FLIGHT_PER_MCP_SESSION=str(CAP),
        # The calls wait on the frozen Redis for longer than the test takes.
        MCP_MEMORY_CALL_TIMEOUT_SECONDS="60",
        MCP_MEMORY_REDIS_TIMEOUT_SECONDS="60",
    )
    async with two_sessions(transport, env) as (mine, other):
        await ok(mine, "spawn", session_id="s1", initial_state={"goal": "ship"})
        uri = f"memory://projects/{project}/agents/{agent}/sessions/s1"
        waiting: list[CallToolResult] = []

        async def stalled_call() -> None:
            waiting.append(await mine.call_tool("memory_get", {"session_id": "s1", "key": "goal"}))

        with frozen(own_redis.process.pid) as thaw:
            async with anyio.create_task_group() as tg:
                # Each call, once in flight, sends its request to Redis, which leaves it unread.
                tg.start_soon(stalled_call)
                first = await until(lambda: unread_at(own_redis.port), what="the first call waits at Redis")
                tg.start_soon(stalled_call)
                await until(lambda: unread_at(own_redis.port) > first, what="the second call waits at Redis")

                with anyio.fail_after(AT_ONCE):
                    refused = await mine.call_tool("memory_get", {"session_id": "s1", "key": "goal"})
                    assert refused.is_error, refused.structured_content
                    text: str = refused.content[0].text  # type: ignore[union-attr]
                    assert text.startswith(REFUSAL), text
                    for request in (lambda: mine.read_resource(uri), lambda: mine.get_prompt("resume_briefing")):
                        with pytest.raises(MCPError) as err:
                            await request()
                        assert err.value.error.code == INTERNAL_ERROR
                        assert err.value.error.message.startswith(REFUSAL), err.value.error
                    # A completion past the cap reads nothing: it is answered empty.
                    assert await session_ids(mine) == []
                    # Another session is not held back: its calls run (sessions and episodes are in SQLite).
                    found: dict[str, Any] = await ok(other, "search_episodes", query="anything")
                    assert found["episodes"] == [], found
                    assert await session_ids(other) == ["s1"]

                assert not waiting, "a call waiting at the frozen Redis answered"
                thaw()
        assert len(waiting) == CAP and not any(result.is_error for result in waiting), waiting
        # Both places are free again: the session runs as many calls at once as its cap, and more after them.
        async with anyio.create_task_group() as tg:
            for _ in range(CAP):
                tg.start_soon(functools.partial(ok, mine, "memory_get", session_id="s1", key="goal"))
        assert (await ok(mine, "memory_get", session_id="s1", key="goal"))["value"] == "ship"
        assert await session_ids(mine) == ["s1"]


async def session_ids(client: Client) -> list[str]:
    """The completion of a session id starting with "s" (the default project and agent)."""
    template = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}"
    ref = ResourceTemplateReference(type="ref/resource", uri=template)
    return (await client.complete(ref, {"name": "session_id", "value": "s"})).completion.values
