"""SIGTERM while a tool call is in flight is a normal, documented stop: the server's stderr has no ERROR and no
traceback, and one WARNING says how many calls the stop cut off. Before, the call on the 2026 protocol (served in its
own HTTP request) outlived uvicorn's graceful timeout, which logged "ERROR: Cancel 1 running task(s), timeout
graceful shutdown exceeded" and an "Exception in ASGI application" traceback. Now the server cuts the call off
itself after its grace and answers it ``unavailable`` (the 2026 protocol's client, whose request is still open,
gets that answer); on the other transports the call ends with the stream the stop closes, and is counted too.

The call is held in flight by a Redis stopped with SIGSTOP (``tests.stalled_stores.frozen``)."""

from __future__ import annotations

import re
import signal
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.http_helpers import ServerProcess, connect, ok
from tests.http_helpers import server_env as http_env
from tests.redis_servers import RedisServer, unique_prefix
from tests.stalled_stores import frozen
from tests.test_serve_stops_on_signals import STOP_WITH_A_CALL_IN_FLIGHT_WITHIN, _stopped_within

pytestmark = pytest.mark.anyio

LOGGED_ERROR = re.compile(r"^ERROR:|\sERROR\s|Traceback", re.MULTILINE)
CUT_OFF = "stopping: cut off 1 call in flight"


@pytest.mark.parametrize("transport", ["http", "http-legacy", "sse"])
async def test_sigterm_during_a_slow_call_logs_one_warning_and_no_error(tmp_path: Path, transport: str) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
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
    try:
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
                        await anyio.sleep(0.5)  # the call cannot end while Redis is frozen: it is in flight
                        code, took = await anyio.to_thread.run_sync(_stopped_within, proc, signal.SIGTERM)
                        await anyio.sleep(0.2)  # an answer already received is read
                        tg.cancel_scope.cancel()
    finally:
        redis_server.stop()
    log = "".join(server.log)
    assert code == 143, log
    assert took < STOP_WITH_A_CALL_IN_FLIGHT_WITHIN, f"took {took:.2f} s"
    assert not LOGGED_ERROR.search(log), log
    assert log.count(CUT_OFF) == 1, log
    assert next(line for line in server.log if CUT_OFF in line).split()[2] == "WARNING", log
    if transport == "http":
        # Its request was still open: it got the answer, not a dropped connection.
        assert len(answers) == 1 and getattr(answers[0], "is_error", False), answers
        assert answers[0].content[0].text.startswith("unavailable: the server is stopping"), answers
