"""``mcp-memory serve --transport http|sse`` as a subprocess on a free loopback port, and SDK clients for it.

The server is started with ``--port 0`` (the kernel picks a free port, so tests running side by side never
collide) and the port is read from its "listening on" log line. Used by the HTTP tests and by
``benchmarks/bench_http_load.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from mcp_memory.server.auth import hash_token
from tests.waiting import wait_until

EXE = Path(sys.executable).parent / "mcp-memory"
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
TIMEOUT = 60


def token_config(*tokens: tuple[str, str, Sequence[str]]) -> str:
    """``MCP_MEMORY_HTTP__TOKENS`` for (name, token, projects) triples."""
    return json.dumps([{"name": n, "sha256": hash_token(t), "projects": list(p)} for n, t, p in tokens])


def server_env(db: Path, **extra: str) -> dict[str, str]:
    """Our environment without MCP_MEMORY_* settings, on the given SQLite file, without a config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env["MCP_MEMORY_DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
    env["MCP_MEMORY_CONFIG"] = ""  # set but empty: no settings file, not even the user's own
    env["XDG_DATA_HOME"] = str(db.parent / "data")  # the installation identity of stdio: not the user's
    env["MCP_MEMORY_OWNER_TOOLS"] = "true"  # the suite exercises every tool (conftest.py)
    env.update(extra)
    return env


class ServerProcess:
    """``mcp-memory serve`` over HTTP; ``url`` is ``http://127.0.0.1:<port>`` once started."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.args = ["serve", "--transport", "http", "--port", "0", *args]
        self.url = ""
        self.log: list[str] = []
        self._ready = threading.Event()
        self._proc: subprocess.Popen[str] | None = None

    def _drain(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self.log.append(line)
            match = LISTENING.search(line)
            if match and not self.url:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it (start several at once, then :meth:`start` each)."""
        if self._proc is None:
            self._proc = subprocess.Popen(
                [str(EXE), *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            threading.Thread(target=self._drain, daemon=True).start()
        return self

    @property
    def pid(self) -> int | None:
        """The process id once launched (benchmarks read its CPU time from /proc)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> ServerProcess:
        """Start the process (if :meth:`launch` has not) and wait until it listens."""
        self.launch()
        if not self._ready.wait(TIMEOUT) or not self.url:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(self.log))
        return self

    def interrupt(self) -> None:
        """Ask the process to shut down (Ctrl-C) without waiting for it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)

    def stop(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.interrupt()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@asynccontextmanager
async def connect(
    url: str,
    token: str | None,
    transport: str = "http",
    *,
    transport_for_httpx: httpx2.AsyncBaseTransport | None = None,
    on_sse_session: Any = None,
    message_handler: Any = None,
) -> AsyncIterator[Client]:
    """An SDK client over ``transport``: "http" (Streamable HTTP, protocol negotiated), "http-legacy"
    (Streamable HTTP with the initialize handshake) or "sse"; ``message_handler`` gets its notifications."""
    if transport == "sse":
        stream = sse_client(f"{url}/sse", headers=auth(token), on_session_created=on_sse_session)
        async with Client(stream, read_timeout_seconds=TIMEOUT, message_handler=message_handler) as client:
            yield client
        return
    timeout = httpx2.Timeout(TIMEOUT, read=TIMEOUT)
    async with httpx2.AsyncClient(headers=auth(token), timeout=timeout, transport=transport_for_httpx) as http:
        mode = "legacy" if transport == "http-legacy" else "auto"
        async with Client(
            streamable_http_client(f"{url}/mcp", http_client=http),
            mode=mode,
            read_timeout_seconds=TIMEOUT,
            message_handler=message_handler,
        ) as client:
            yield client


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content[0].text}"  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


async def error(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; its error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


async def read(client: Client, uri: str) -> Any:
    """A resource's JSON body."""
    result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


def assert_ready(h: httpx.Client) -> None:
    """``/readyz`` answers 200, ready."""
    ready = h.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def until_unavailable(h: httpx.Client) -> None:
    """Wait for ``/readyz`` to answer 503, unavailable, while ``/healthz`` answers 200 (the process itself is
    fine)."""
    # A probe's result answers /readyz for up to a second (server/readiness.py), so the 503 follows within it.
    down = wait_until(lambda: (r := h.get("/readyz")).status_code != 200 and r, what="/readyz not ready")
    assert (down.status_code, down.json()) == (503, {"status": "unavailable"})
    assert h.get("/healthz").status_code == 200


class Inbox:
    """The notifications a client received, in order: a client's ``message_handler``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str | None]] = []

    async def __call__(self, message: IncomingMessage) -> None:
        if not isinstance(message, Exception):
            params = getattr(message, "params", None)
            self.received.append((message.method, getattr(params, "uri", None)))

    def updated(self) -> list[str]:
        """The URIs of the ``notifications/resources/updated`` received, in order."""
        return [uri for method, uri in self.received if method == "notifications/resources/updated" and uri]

    def list_changes(self) -> int:
        return sum(1 for method, _ in self.received if method == "notifications/resources/list_changed")


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
"""An initialize request (id 1) of the 2025-06-18 protocol, as a client posts it first."""

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
"""The headers of a JSON-RPC POST to Streamable HTTP (its client accepts a JSON or an SSE answer)."""


async def sse_data(lines: AsyncIterator[str]) -> str:
    """The data of the next event of an SSE stream's lines."""
    async for line in lines:
        if line.startswith("data:"):
            return line[5:].strip()
    raise AssertionError("the SSE stream ended")
