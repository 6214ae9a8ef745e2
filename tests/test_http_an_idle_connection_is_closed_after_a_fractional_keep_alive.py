"""``http.keep_alive_timeout_seconds`` is a float all the way to uvicorn: a server started with 0.5 closes an idle
keep-alive connection about half a second after its last response (before, 0.5 was refused at start-up)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.http_helpers import ServerProcess, server_env

KEEP_ALIVE_SECONDS = 0.5
WAIT = 15.0  # far above the keep-alive, for a loaded machine


def test_an_idle_connection_is_closed_after_half_a_second(tmp_path: Path) -> None:
    env = server_env(tmp_path / "memory.db", MCP_MEMORY_HTTP__KEEP_ALIVE_TIMEOUT_SECONDS=str(KEEP_ALIVE_SECONDS))
    with ServerProcess(env) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            answered = time.monotonic()
            assert data.startswith(b"HTTP/1.1 200"), data
            while sock.recv(65536):
                pass  # the rest of the body, then the close
            idle = time.monotonic() - answered
    # Closed by the keep-alive timeout, not by the 10 s header timeout that would close it otherwise.
    assert KEEP_ALIVE_SECONDS * 0.8 <= idle < 5.0
