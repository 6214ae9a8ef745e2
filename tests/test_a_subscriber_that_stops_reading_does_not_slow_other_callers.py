"""A subscriber that stops reading its notification stream holds up nobody's tool calls.

A handshake-era Streamable HTTP client subscribes to sessions, opens its GET stream (where notifications go) and
never reads it, with a tiny receive buffer so that the stream fills after a few hundred notifications. Another
client's writes to those sessions keep answering at once: while the stream fills, once the server has given up on it
(its WARNING, logged once, shows the stream is blocked), and for 20 further writes afterwards. A third client,
subscribed to some of the same sessions and reading, gets each of their notifications, in order.

Before, every write sent its notifications inside the call, to each subscriber in turn, waiting up to 2 s each on
a subscriber whose stream was full: once the stream filled, each of those writes took 2 s.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from mcp import Client

from tests.http_helpers import MCP_HEADERS, Inbox, ServerProcess, connect, ok, server_env
from tests.waiting import until

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")]

VERSION = "2025-06-18"
SESSION = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}"
PROMPT = 1.0
"""What a write may take at most (the old per-subscriber wait was 2 s); it takes milliseconds."""
FILL_LIMIT = 20000
"""Writes after which a stream that never blocked fails the test (it blocks after a few hundred)."""


async def subscribe_raw(url: str, uris: list[str]) -> dict[str, str]:
    """A handshake-era Streamable HTTP session subscribed to ``uris``: its session headers."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as h:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        }
        r = await h.post("/mcp", json=init, headers=MCP_HEADERS)
        assert r.status_code == 200, r.text
        session = {"mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": VERSION}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await h.post("/mcp", json=note, headers={**MCP_HEADERS, **session})).status_code == 202
        for i, uri in enumerate(uris, start=2):
            request = {"jsonrpc": "2.0", "id": i, "method": "resources/subscribe", "params": {"uri": uri}}
            r = await h.post("/mcp", json=request, headers={**MCP_HEADERS, **session})
            assert r.status_code == 200 and '"result"' in r.text, r.text
    return session


@contextmanager
def unread_stream(url: str, session: dict[str, str]) -> Iterator[None]:
    """The session's GET stream, opened and never read, on a socket with the smallest receive buffer and segments
    the kernel allows (the server's send buffer then stays small too, so the stream fills quickly)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 88)
    except OSError:
        pass  # a kernel that refuses it: the stream fills all the same, after more writes
    with sock:
        sock.settimeout(30)
        sock.connect((host, int(port)))
        head = "".join(f"{k}: {v}\r\n" for k, v in session.items())
        sock.sendall(f"GET /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n{head}\r\n".encode())
        assert sock.recv(15).startswith(b"HTTP/1.1 200"), "the GET stream was not opened"
        yield  # never read again


async def timed_set(client: Client, scope: dict[str, str], value: int) -> float:
    started = time.perf_counter()
    await ok(client, "memory_set", **scope, key="k", value=value)
    return time.perf_counter() - started


async def test_writes_answer_at_once_while_a_subscribers_stream_is_full(tmp_path: Path) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    # The longest session id: the longer each notification, the sooner the stream fills.
    filler = {"project_id": p, "agent_instance_id": a, "session_id": "f" * 128}
    watched = [{"project_id": p, "agent_instance_id": a, "session_id": f"s{i}"} for i in range(20)]
    watched_uris = [SESSION.format(**s) for s in watched]
    with ServerProcess(server_env(tmp_path / "memory.db")) as server:
        inbox = Inbox()
        reading = connect(server.url, None, "http-legacy", message_handler=inbox)
        async with connect(server.url, None) as writer, reading as reader:
            for scope in (filler, *watched):
                await ok(writer, "spawn", **scope)
            for uri in watched_uris:
                await reader.subscribe_resource(uri)
            stuck = await subscribe_raw(server.url, [SESSION.format(**filler), *watched_uris])
            with unread_stream(server.url, stuck):
                # Fill the stuck stream until the server gives up on it; every write answers at once meanwhile.
                for i in range(FILL_LIMIT):
                    took = await timed_set(writer, filler, i)
                    assert took < PROMPT, f"write {i} took {took:.2f} s while a subscriber's stream filled"
                    if any("dropped" in line and "WARNING" in line for line in server.log):
                        break
                else:
                    raise AssertionError(f"the unread stream never filled in {FILL_LIMIT} writes")

                # The stream is full and stays unread: 20 writes its subscriber watches answer at once.
                started = time.perf_counter()
                for i, scope in enumerate(watched):
                    await ok(writer, "memory_set", **scope, key="k", value=i)
                total = time.perf_counter() - started
                assert total < 1.5, f"20 writes took {total:.2f} s with a subscriber's stream full"

                # The reading subscriber got each of them, in the order they were written.
                await until(lambda: inbox.updated() == watched_uris, what="every notification, in order")
        drops = [line for line in server.log if "dropped" in line]
        assert len(drops) == 1 and "WARNING" in drops[0], drops  # once per connection
