"""Two requests in flight on one keep-alive connection: uvicorn starts the next request once a response is sent,
while the previous request's task may still be running. This pins that

- such a connection counts once against the per-address cap while both run, and nothing once both are done (the
  count used to grow by one per overlap, until an address with nothing in flight was refused with 429);
- it stays busy until its last request is done, so a new connection past the cap sheds another, idle one (it
  used to count as idle after its first request ended, and could be closed under its second).

A real uvicorn server with the guarded protocol, in this process, serves an app whose tasks go on after their
response until the test lets them end; the client speaks HTTP/1.1 on raw sockets to choose the connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn

from mcp_memory.server.connections import ConnectionLimits, ConnectionRegistry, guarded_protocol

pytestmark = pytest.mark.anyio

PER_CLIENT = 2
QUICK = "quick"
"""A path whose task ends with its response; every other path's task runs on until its gate opens."""


class HeldApp:
    """Answers every request at once; the task of ``/<name>`` then waits for ``open(name)`` before it returns."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.ended: dict[str, asyncio.Event] = {}

    def _gate(self, name: str) -> asyncio.Event:
        self.ended.setdefault(name, asyncio.Event())
        return self.gates.setdefault(name, asyncio.Event())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = scope["path"].strip("/")
        gate = self._gate(name)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        try:
            if name != QUICK:
                await gate.wait()
        finally:
            self.ended[name].set()

    async def end(self, name: str) -> None:
        """Let the task of ``/<name>`` return, and wait until it has been released.

        The registry's release runs in the same task step as the app's return, so it is done by the time the
        event this waits for wakes the test."""
        self._gate(name).set()
        await self.ended[name].wait()


class Connection:
    """One client connection, speaking HTTP/1.1 requests and reading their answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, name: str) -> int:
        """GET ``/<name>``; the status of the answer."""
        self.writer.write(f"GET /{name} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode().split("\r\n")
        length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length:"))
        await asyncio.wait_for(self.reader.readexactly(length), 10)
        return int(lines[0].split()[1])

    async def is_closed_by_the_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 10) == b""

    def close(self) -> None:
        self.writer.close()


@asynccontextmanager
async def serving(app: HeldApp) -> AsyncIterator[tuple[int, list[Connection]]]:
    """The app behind the guarded protocol on a free loopback port; the connections opened are closed after."""
    limits = ConnectionLimits(
        max_connections=100, max_connections_per_client=PER_CLIENT, header_timeout=30, body_timeout=30
    )
    config = uvicorn.Config(
        app,
        http=guarded_protocol(ConnectionRegistry(limits)),
        lifespan="off",
        log_level="warning",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    connections: list[Connection] = []
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1], connections
    finally:
        for conn in connections:
            conn.close()
        for gate in app.gates.values():
            gate.set()
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def connect(port: int, opened: list[Connection]) -> Connection:
    conn = Connection(*await asyncio.open_connection("127.0.0.1", port))
    opened.append(conn)
    return conn


async def test_an_address_whose_overlapping_requests_ended_has_nothing_in_flight() -> None:
    app = HeldApp()
    async with serving(app) as (port, opened):
        a = await connect(port, opened)
        assert await a.get("a1") == 200
        assert await a.get("a2") == 200  # a1's task still runs: two requests in flight on `a`
        await app.end("a1")
        await app.end("a2")
        # Nothing is in flight: the address may have two requests in flight again, and not three.
        held = [await connect(port, opened) for _ in range(PER_CLIENT)]
        assert [await conn.get(f"held{i}") for i, conn in enumerate(held)] == [200] * PER_CLIENT
        third = await connect(port, opened)
        assert await third.get(QUICK) == 429


async def test_overlapping_requests_on_one_connection_count_once_against_the_address() -> None:
    app = HeldApp()
    async with serving(app) as (port, opened):
        a = await connect(port, opened)
        assert await a.get("a1") == 200
        assert await a.get("a2") == 200
        # `a` is one busy connection of the two this address may have busy: another is served.
        b = await connect(port, opened)
        assert await b.get("b") == 200
        c = await connect(port, opened)
        assert await c.get(QUICK) == 429


async def test_a_connection_stays_busy_until_its_last_overlapping_request_ends() -> None:
    app = HeldApp()
    async with serving(app) as (port, opened):
        a = await connect(port, opened)
        assert await a.get("first") == 200
        assert await a.get("second") == 200
        await app.end("first")  # `a` is still serving "second"
        idle = await connect(port, opened)
        assert await idle.get(QUICK) == 200
        # Past the per-address cap of open connections: the idle one is closed, never `a`.
        newest = await connect(port, opened)
        assert await newest.get(QUICK) == 200
        await app.end("second")
        assert await a.get(QUICK) == 200
        assert await idle.is_closed_by_the_server()
