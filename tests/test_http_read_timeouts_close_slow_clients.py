"""Slow or stalled clients are cut off by the read timeouts (``http.header_timeout_seconds``,
``http.body_timeout_seconds``): half-sent headers, a connection that never sends anything, a body that stops
(or trickles) short of its declared length, with or without a valid token.

Before, none of these was ever closed by the server (a 1 MiB body with 10 bytes sent was held past 40 s). The
timeouts are set to 1 s here; each test waits at most :data:`WAIT` seconds for the server to close.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from mcp_memory.server.auth import generate_token
from tests.http_helpers import ServerProcess, auth, server_env, token_config

PROJECT = str(uuid.uuid4())
TOKEN = generate_token()
TIMEOUT_SECONDS = 1.0
WAIT = 15.0  # far above the 1 s timeouts, for a loaded machine; below it on a server that never closes


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = server_env(
        tmp_path_factory.mktemp("timeouts") / "memory.db",
        MCP_MEMORY_HTTP__TOKENS=token_config(("agents", TOKEN, [PROJECT])),
        MCP_MEMORY_HTTP__HEADER_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
        MCP_MEMORY_HTTP__BODY_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
    )
    with ServerProcess(env) as proc:
        yield proc


def _connect(url: str) -> tuple[socket.socket, str]:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    return sock, f"{host}:{port}"


def _read_until_closed(sock: socket.socket, *, keep_sending: bytes = b"") -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took; fails after WAIT.

    With ``keep_sending``, that byte string is sent every 0.2 s meanwhile (a client trickling its body)."""
    started = time.monotonic()
    data = b""
    sock.settimeout(0.2 if keep_sending else WAIT)
    while True:
        elapsed = time.monotonic() - started
        assert elapsed < WAIT, f"the server had not closed the connection after {elapsed:.1f}s; got {data[:200]!r}"
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            try:
                sock.sendall(keep_sending)
            except OSError:
                pass  # closed meanwhile: the next recv says so
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


def _status(data: bytes) -> int | None:
    """The status of the last response in ``data`` (None if there is none)."""
    at = data.rfind(b"HTTP/1.1 ")
    return int(data[at + 9 : at + 12]) if at >= 0 else None


def test_half_sent_headers_get_408_and_the_connection_closed(server: ServerProcess) -> None:
    sock, host = _connect(server.url)
    with sock:
        sock.sendall(f"POST /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n".encode())
        data, elapsed = _read_until_closed(sock)
    assert _status(data) == 408, data
    assert elapsed >= TIMEOUT_SECONDS * 0.9


def test_a_connection_that_sends_nothing_is_closed(server: ServerProcess) -> None:
    sock, _ = _connect(server.url)
    with sock:
        data, _ = _read_until_closed(sock)
    assert data == b""  # nothing was asked, nothing is answered


def test_headers_trickled_byte_by_byte_are_cut_off_at_the_header_timeout(server: ServerProcess) -> None:
    """A slowloris client sending a byte every 0.2 s does not keep its connection past the header timeout."""
    sock, host = _connect(server.url)
    with sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode())
        data, _ = _read_until_closed(sock, keep_sending=b"X")
    assert _status(data) in (408, 400), data  # 400 if the trickled header line grew past h11's limit first


@pytest.mark.parametrize("token", [TOKEN, None], ids=["authenticated", "unauthenticated"])
@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickling"])
def test_a_body_short_of_its_declared_length_is_cut_off(
    server: ServerProcess, token: str | None, trickle: bool
) -> None:
    """A request declaring 1 MiB that sends 10 bytes (then nothing, or a byte every 0.2 s) is closed at the body
    timeout: 408 if nothing was answered yet (authenticated), after its 401 otherwise."""
    sock, host = _connect(server.url)
    headers = "".join(f"{k}: {v}\r\n" for k, v in auth(token).items())
    with sock:
        sock.sendall(
            (
                f"POST /mcp HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Type: application/json\r\n"
                f"Accept: application/json, text/event-stream\r\nContent-Length: {1024 * 1024}\r\n\r\n"
                '{"jsonrpc"'
            ).encode()
        )
        data, elapsed = _read_until_closed(sock, keep_sending=b" " if trickle else b"")
    assert _status(data) == (408 if token else 401), data
    assert elapsed >= TIMEOUT_SECONDS * 0.9


def test_prompt_clients_are_served_as_before(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=WAIT) as h:
        for _ in range(3):  # the same keep-alive connection
            assert h.get("/healthz").status_code == 200
