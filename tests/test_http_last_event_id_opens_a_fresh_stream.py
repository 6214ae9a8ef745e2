"""A GET on ``/mcp`` with ``Last-Event-ID`` is served as a GET without it: no event store is configured, so
there is nothing to replay, and the MCP spec lets a server ignore the header (it MAY replay). The SDK answered
such a GET with nothing (uvicorn's 500, "ASGI callable returned without starting response", in the log).

Pinned: the GET opens the session's stream (200, ``text/event-stream``); a second one while it is open gets the
SDK's 409 as any second GET does; the session goes on working; and nothing is logged as an error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http_helpers import MCP_HEADERS, ServerProcess, server_env

pytestmark = pytest.mark.anyio

VERSION = "2025-11-25"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(server_env(tmp_path / "memory.db")) as proc:
        yield proc


async def test_a_get_with_last_event_id_opens_a_fresh_stream(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as h:
        r = await h.post("/mcp", json=INIT, headers=MCP_HEADERS)
        assert r.status_code == 200
        session = {"mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": VERSION}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await h.post("/mcp", json=note, headers={**MCP_HEADERS, **session})).status_code == 202

        resume = {**session, "Accept": "text/event-stream", "Last-Event-ID": str(uuid.uuid4())}
        async with h.stream("GET", "/mcp", headers=resume) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            again = await h.get("/mcp", headers=resume)
            assert again.status_code == 409  # one GET stream per session, as without the header

        ping = await h.post(
            "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers={**MCP_HEADERS, **session}
        )
        assert ping.status_code == 200
    log = "".join(server.log)
    assert "ERROR" not in log and "Traceback" not in log, log
