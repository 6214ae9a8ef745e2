"""Stateful Streamable HTTP sessions are capped per token (``http.max_sessions_per_token``), fairly: a token at
its cap gets 429 with ``Retry-After`` on ``initialize``, while another token's ``initialize`` succeeds; closing a
session (DELETE) frees a place. The server-wide ``http.max_sessions`` stays as a backstop (503 + Retry-After).
Each refusal names the limit it hit, and its ``Retry-After`` counts only the sessions that limit counts: the token's
own for 429, every token's for 503.

SSE streams (one session each) are capped per token the same way, counted apart.

Before, only the SDK's server-wide cap (10,000) existed: one token opening sessions in a loop made every other
tenant's initialize 503 until its sessions idled out (30 minutes).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import httpx
import pytest

from mcp_memory.server.auth import generate_token
from mcp_memory.server.sessions import BUSY_RETRY_AFTER_SECONDS
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
TOKEN_A, TOKEN_B, TOKEN_C = generate_token(), generate_token(), generate_token()
PER_TOKEN = 3
IDLE_TIMEOUT = 600


def _env(db: Path, **extra: str) -> dict[str, str]:
    tokens = (("tenant-a", TOKEN_A, [PROJECT]), ("tenant-b", TOKEN_B, [PROJECT]), ("tenant-c", TOKEN_C, [PROJECT]))
    return server_env(
        db,
        MCP_MEMORY_HTTP__TOKENS=token_config(*tokens),
        MCP_MEMORY_HTTP__MAX_SESSIONS_PER_TOKEN=str(PER_TOKEN),
        MCP_MEMORY_HTTP__SESSION_IDLE_TIMEOUT_SECONDS=str(IDLE_TIMEOUT),
        **extra,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(_env(tmp_path / "memory.db")) as proc:
        yield proc


async def _initialize(h: httpx.AsyncClient, token: str) -> httpx.Response:
    return await h.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **auth(token)})


def _assert_refused(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    retry_after = int(r.headers["retry-after"])
    # The sessions are idle: the soonest frees its place when the idle timeout ends it.
    assert 1 <= retry_after <= IDLE_TIMEOUT, retry_after
    assert "mcp-session-id" not in r.headers
    assert r.json()["error"]["message"]


async def test_a_token_at_its_session_cap_is_refused_while_another_token_initializes(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as h:
        opened = []
        for _ in range(PER_TOKEN):
            r = await _initialize(h, TOKEN_A)
            assert r.status_code == 200, r.text
            opened.append(r.headers["mcp-session-id"])
        _assert_refused(await _initialize(h, TOKEN_A), 429)
        assert "limit" in (await _initialize(h, TOKEN_A)).json()["error"]["message"]

        # Another tenant is unaffected, through the SDK's own client too.
        r = await _initialize(h, TOKEN_B)
        assert r.status_code == 200, r.text
        with anyio.fail_after(TIMEOUT):
            async with connect(server.url, TOKEN_B) as client:
                s = {"project_id": PROJECT, "agent_instance_id": str(uuid.uuid4()), "session_id": "s"}
                await ok(client, "spawn", **s)

        # Token A's existing sessions still work, and closing one frees a place.
        headers = {**MCP_HEADERS, **auth(TOKEN_A), "mcp-session-id": opened[0], "mcp-protocol-version": "2025-06-18"}
        r = await h.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers=headers)
        assert r.status_code == 200, r.text
        assert (await h.delete("/mcp", headers=headers)).status_code == 200
        assert (await _initialize(h, TOKEN_A)).status_code == 200
        _assert_refused(await _initialize(h, TOKEN_A), 429)


async def test_the_server_wide_session_cap_answers_503_with_retry_after(tmp_path: Path) -> None:
    env = _env(tmp_path / "memory.db", MCP_MEMORY_HTTP__MAX_SESSIONS=str(PER_TOKEN + 1))
    with ServerProcess(env) as proc:
        async with httpx.AsyncClient(base_url=proc.url, timeout=TIMEOUT) as h:
            for _ in range(PER_TOKEN):
                assert (await _initialize(h, TOKEN_A)).status_code == 200
            assert (await _initialize(h, TOKEN_B)).status_code == 200
            _assert_refused(await _initialize(h, TOKEN_B), 503)
            _assert_refused(await _initialize(h, TOKEN_A), 429)  # its own cap is said first


async def _hold_busy_session(h: httpx.AsyncClient, stack: AsyncExitStack, token: str) -> None:
    """Open a session of ``token`` and keep a GET stream on it open: a session with a stream open never expires
    by idleness, so a refusal that counts only such sessions says :data:`BUSY_RETRY_AFTER_SECONDS`."""
    r = await _initialize(h, token)
    assert r.status_code == 200, r.text
    headers = {
        **auth(token),
        "accept": "text/event-stream",
        "mcp-session-id": r.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-06-18",
    }
    stream = await stack.enter_async_context(h.stream("GET", "/mcp", headers=headers))
    assert stream.status_code == 200, stream.status_code  # its answer has begun: the stream is in flight


def _refusal(r: httpx.Response, status: int, whose: str) -> int:
    """The refusal's ``Retry-After``, after checking its status and that its message names the limit hit."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.json()["error"]["message"].startswith(whose), r.text[:300]
    return int(r.headers["retry-after"])


async def test_retry_after_counts_only_the_sessions_of_the_cap_that_refused(tmp_path: Path) -> None:
    # Token A's sessions all hold a stream (none expires: 60 s), token B's session is idle (it expires in ~600 s):
    # the two figures differ, so each refusal shows whose sessions it was computed from.
    env = _env(tmp_path / "memory.db", MCP_MEMORY_HTTP__MAX_SESSIONS=str(PER_TOKEN + 2))
    with ServerProcess(env) as proc:
        async with httpx.AsyncClient(base_url=proc.url, timeout=TIMEOUT) as h, AsyncExitStack() as streams:
            for _ in range(PER_TOKEN):
                await _hold_busy_session(h, streams, TOKEN_A)
            assert (await _initialize(h, TOKEN_B)).status_code == 200

            # A token at its own cap is told when one of its own sessions frees, not when another tenant's does.
            retry = _refusal(await _initialize(h, TOKEN_A), 429, "this token has")
            assert retry == BUSY_RETRY_AFTER_SECONDS, retry

            # Token C (one session, below its cap) fills the server; its stream keeps its own session busy.
            await _hold_busy_session(h, streams, TOKEN_C)
            # The server's cap counts every tenant's sessions: B's idle one frees a place first, whatever C holds.
            retry = _refusal(await _initialize(h, TOKEN_C), 503, "the server has")
            assert BUSY_RETRY_AFTER_SECONDS < retry <= IDLE_TIMEOUT, retry
            retry = _refusal(await _initialize(h, TOKEN_B), 503, "the server has")
            assert BUSY_RETRY_AFTER_SECONDS < retry <= IDLE_TIMEOUT, retry
            # A, at its own cap on a full server, still hears its own limit and its own sessions' figure.
            retry = _refusal(await _initialize(h, TOKEN_A), 429, "this token has")
            assert retry == BUSY_RETRY_AFTER_SECONDS, retry


def _open_sse(url: str, token: str) -> tuple[socket.socket, bytes]:
    """A raw SSE stream with ``token``: the socket and the response head (and first event, if served)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    sock.sendall(
        f"GET /sse HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    data = b""
    while b"endpoint" not in data and not (b"\r\n\r\n" in data and b" 429 " in data.split(b"\r\n")[0]):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return sock, data


def test_sse_streams_are_capped_per_token_too(server: ServerProcess) -> None:
    held: list[socket.socket] = []
    try:
        for _ in range(PER_TOKEN):
            sock, head = _open_sse(server.url, TOKEN_A)
            held.append(sock)
            assert head.startswith(b"HTTP/1.1 200") and b"endpoint" in head, head
        sock, head = _open_sse(server.url, TOKEN_A)
        held.append(sock)
        assert head.startswith(b"HTTP/1.1 429"), head
        assert b"retry-after: " in head.lower(), head
        sock, head = _open_sse(server.url, TOKEN_B)
        held.append(sock)
        assert head.startswith(b"HTTP/1.1 200") and b"endpoint" in head, head
    finally:
        for sock in held:
            sock.close()
