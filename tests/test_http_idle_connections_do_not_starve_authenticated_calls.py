"""1,100 idle or half-sent unauthenticated connections do not stop an authenticated call from succeeding at once.

Before, uvicorn's ``limit_concurrency`` counted every open connection, so 1,000 sockets that never sent a
request made every request 503 until they closed (and nothing closed them). Now idle connections are the ones
closed to make room, past ``http.max_connections_per_client`` (the default case: every socket here comes from
127.0.0.1) or past ``http.max_connections`` (a per-client cap set out of the way).
"""

from __future__ import annotations

import resource
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from mcp_memory.server.auth import generate_token
from tests.http_helpers import (
    INITIALIZE,
    MCP_HEADERS,
    TIMEOUT,
    ServerProcess,
    auth,
    connect,
    ok,
    server_env,
    token_config,
)

pytestmark = pytest.mark.anyio

PROJECT = str(uuid.uuid4())
TOKEN = generate_token()
IDLE = 1_100


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> Iterator[None]:
    """This process holds 1,100 sockets at once: raise the soft open-file limit if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE + 512
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"the hard open-file limit ({hard}) is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _hold_idle_connections(url: str, count: int) -> list[socket.socket]:
    """``count`` connections: half send nothing at all, half send half a request's headers."""
    host, port = url.removeprefix("http://").split(":")
    held: list[socket.socket] = []
    try:
        for i in range(count):
            sock = socket.create_connection((host, int(port)), timeout=10)
            held.append(sock)
            if i % 2:
                try:
                    sock.sendall(f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n".encode())
                except OSError:
                    pass  # already closed by the server to make room: that is the point
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held


async def _authenticated_call_succeeds_at_once(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as h:
        started = time.perf_counter()
        r = await h.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **auth(TOKEN)})
        elapsed = time.perf_counter() - started
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert elapsed < 1.0, f"an authenticated initialize took {elapsed:.2f}s behind {IDLE} idle connections"
    # And a whole session works, with the idle connections still open.
    with anyio.fail_after(TIMEOUT):
        async with connect(url, TOKEN) as client:
            s = {"project_id": PROJECT, "agent_instance_id": str(uuid.uuid4()), "session_id": "s"}
            await ok(client, "spawn", **s)
            await ok(client, "memory_set", **s, key="k", value=1)


@pytest.mark.parametrize(
    "caps",
    [
        pytest.param({}, id="default caps (per client address)"),
        pytest.param({"MCP_MEMORY_HTTP__MAX_CONNECTIONS_PER_CLIENT": "100000"}, id="server-wide cap"),
    ],
)
async def test_1100_idle_connections_do_not_stop_an_authenticated_call(tmp_path: Path, caps: dict[str, str]) -> None:
    env = server_env(tmp_path / "memory.db", MCP_MEMORY_HTTP__TOKENS=token_config(("agents", TOKEN, [PROJECT])), **caps)
    with ServerProcess(env) as proc:
        # One call first, so the timed one below measures the idle connections, not the first request's warm-up.
        async with httpx.AsyncClient(base_url=proc.url, timeout=30) as h:
            assert (await h.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **auth(TOKEN)})).status_code == 200
        held = _hold_idle_connections(proc.url, IDLE)
        try:
            await _authenticated_call_succeeds_at_once(proc.url)
        finally:
            for sock in held:
                sock.close()
