"""``mcp-memory serve`` stopped by a signal, timed; and the stop of a server with a tool call in flight (held there
by a frozen Redis), shared by the tests of what such a stop takes (its time, its exit code) and of what it says (its
log, the call's answer)."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from tests.http_helpers import ServerProcess, connect, ok
from tests.http_helpers import server_env as http_env
from tests.redis_servers import RedisServer, unique_prefix
from tests.stalled_stores import frozen, unread_at
from tests.waiting import until

STOP_WITHIN = 1.0
STOP_WITH_A_CALL_IN_FLIGHT_WITHIN = 3.0
"""The documented bounds (docs/contract.md): a stop within a second, within three with a call in flight."""


def stopped_within(proc: subprocess.Popen[bytes] | subprocess.Popen[str], signum: int) -> tuple[int, float]:
    """Send ``signum``; the exit code and how long the process took to exit."""
    start = time.monotonic()
    proc.send_signal(signum)
    try:
        code = proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"serve did not stop within 10 s of {signal.Signals(signum).name}") from None
    return code, time.monotonic() - start


@dataclass
class StopInFlight:
    """What a SIGTERM with a call in flight came to."""

    code: int
    """The server's exit code."""
    took: float
    """Seconds from the signal to the exit."""
    log: list[str]
    """The server's stderr."""
    answers: list[Any] = field(default_factory=list)
    """What the client got for the call: its answer, or the exception the server's going away raised."""


async def sigterm_with_a_call_in_flight(tmp_path: Path, redis_server: RedisServer, transport: str) -> StopInFlight:
    """Serve over ``transport`` with working memory on ``redis_server``; spawn a session, freeze Redis, call
    ``memory_set``, and once the call waits at Redis (its request sent there, unread), SIGTERM the server."""
    assert redis_server.process is not None
    env = http_env(
        tmp_path / "http.db",
        MCP_MEMORY_PROJECT_ID=str(uuid.uuid4()),
        MCP_MEMORY_REDIS_URL=redis_server.url,
        MCP_MEMORY_REDIS_KEY_PREFIX=unique_prefix(),
        # The call waits on the frozen Redis for longer than the test takes.
        MCP_MEMORY_CALL_TIMEOUT_SECONDS="20",
        MCP_MEMORY_REDIS_TIMEOUT_SECONDS="20",
    )
    scope = {"agent_instance_id": str(uuid.uuid4()), "session_id": "sig"}
    answers: list[Any] = []
    with ServerProcess(env) as server:
        proc = server._proc
        assert proc is not None
        async with connect(server.url, None, transport) as client:
            await ok(client, "spawn", **scope)
            with frozen(redis_server.process.pid):

                async def call_in_flight() -> None:
                    try:
                        answers.append(await client.call_tool("memory_set", {**scope, "key": "k", "value": 1}))
                    except Exception as exc:
                        answers.append(exc)  # the server went away under it

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call_in_flight)
                    await until(lambda: unread_at(redis_server.port), what="the call waits at the frozen Redis")
                    code, took = await anyio.to_thread.run_sync(stopped_within, proc, signal.SIGTERM)
                    await until(lambda: answers, what="the call ended")  # with the server gone, if not before
                    tg.cancel_scope.cancel()
    return StopInFlight(code, took, server.log, answers)
