"""What ``mcp-memory serve --transport http`` refuses before a request reaches MCP, against a real subprocess: a
Streamable HTTP session used with another token, malformed or misplaced bearer tokens, foreign Hosts and Origins, a
chunked body past the size limit, request headers past 16 KiB (however they arrive), and a WebSocket upgrade."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest

from mcp_memory.server.auth import generate_token
from tests.http_helpers import INITIALIZE, MCP_HEADERS, ServerProcess, auth, server_env, token_config
from tests.waiting import until

pytestmark = pytest.mark.anyio

PROJECT_A, PROJECT_B = str(uuid.uuid4()), str(uuid.uuid4())
TOKEN_A, TOKEN_B = generate_token(), generate_token()
MAX_BYTES = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024  # documented (docs/configuration.md, "Limits and metrics")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("httpguard") / "memory.db"
    env = server_env(
        db,
        MCP_MEMORY_HTTP__TOKENS=token_config(("team-a", TOKEN_A, [PROJECT_A]), ("team-b", TOKEN_B, [PROJECT_B])),
        MCP_MEMORY_HTTP__MAX_REQUEST_BYTES=str(MAX_BYTES),
    )
    with ServerProcess(env) as proc:
        yield proc


async def test_a_stateful_streamable_http_session_stays_with_its_token(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as h:
        r = await h.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **auth(TOKEN_A)})
        assert r.status_code == 200
        sid = r.headers["mcp-session-id"]
        sh = {**MCP_HEADERS, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await h.post("/mcp", json=note, headers={**sh, **auth(TOKEN_A)})).status_code == 202
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "memory_list",
                "arguments": {"project_id": PROJECT_A, "agent_instance_id": str(uuid.uuid4()), "session_id": "s"},
            },
        }
        r = await h.post("/mcp", json=call, headers={**sh, **auth(TOKEN_B)})
        assert r.status_code == 404, r.text
        r = await h.get("/mcp", headers={**sh, **auth(TOKEN_B)})
        assert r.status_code == 404
        r = await h.delete("/mcp", headers={**sh, **auth(TOKEN_B)})
        assert r.status_code == 404
        r = await h.post("/mcp", json=call, headers={**sh, **auth(TOKEN_A)})
        # Answered for its owner: a tool result (the session is just unknown), not a refusal.
        assert r.status_code == 200 and '"text":"not_found: session' in r.text, r.text


async def test_authorization_header_variants(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as h:
        cases = {
            "lower scheme": ([("Authorization", f"bearer {TOKEN_A}")], 200),
            "double space": ([("Authorization", f"Bearer  {TOKEN_A}")], 200),
            "tab": ([("Authorization", f"Bearer\t{TOKEN_A}")], 401),
            "wrong then right": ([("Authorization", "Bearer nope"), ("Authorization", f"Bearer {TOKEN_A}")], 401),
            "comma list": ([("Authorization", f"Bearer nope, Bearer {TOKEN_A}")], 401),
            "scheme only": ([("Authorization", "Bearer")], 401),
        }
        got = {}
        for name, (headers, _) in cases.items():
            r = await h.post("/mcp", json=INITIALIZE, headers=httpx.Headers(list(MCP_HEADERS.items()) + headers))
            got[name] = r.status_code
        r = await h.post(f"/mcp?access_token={TOKEN_A}", json=INITIALIZE, headers=MCP_HEADERS)
        got["query access_token"] = r.status_code
        r = await h.post(f"/mcp?token={TOKEN_A}", json=INITIALIZE, headers=MCP_HEADERS)
        got["query token"] = r.status_code
        print(got)
        assert got == {**{k: v[1] for k, v in cases.items()}, "query access_token": 401, "query token": 401}


async def test_host_and_origin_variants(server: ServerProcess) -> None:
    port = server.url.rsplit(":", 1)[1]
    hdr = {**MCP_HEADERS, **auth(TOKEN_A)}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as h:
        got = {}
        for name, extra in {
            "origin null": {"Origin": "null"},
            "origin other port": {"Origin": "http://127.0.0.1:1"},  # port 0 in config: any port
            "origin ipv6": {"Origin": f"http://[::1]:{port}"},
            "origin file": {"Origin": "file://"},
            "host ipv6": {"Host": f"[::1]:{port}"},
            "host no port": {"Host": "127.0.0.1"},
            "host upper": {"Host": f"LOCALHOST:{port}"},
            "host trailing dot": {"Host": f"localhost.:{port}"},
            "host userinfo": {"Host": f"evil@127.0.0.1:{port}"},
            "host 0.0.0.0": {"Host": f"0.0.0.0:{port}"},
            "host 127.1": {"Host": f"127.0.0.2:{port}"},
        }.items():
            r = await h.post("/mcp", json=INITIALIZE, headers={**hdr, **extra})
            got[name] = r.status_code
        for path in ("/healthz", "/readyz"):
            r = await h.get(path, headers={"Host": "evil.example", "Origin": "http://evil.example"})
            got[path + " foreign"] = r.status_code
        r = await h.get("/metrics", headers=auth(TOKEN_A))
        got["metrics token A"] = r.status_code
        assert PROJECT_A not in r.text and PROJECT_B not in r.text
        print(got)
        assert got["origin null"] == 403 and got["origin file"] == 403 and got["host upper"] == 421
        assert got["metrics token A"] == 403  # a token of one project does not read every project's counts
        assert got["host userinfo"] == 421 and got["host 0.0.0.0"] == 421


def test_chunked_body_past_the_limit_on_messages_is_413(server: ServerProcess) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    with sock:
        head = (
            f"POST /messages/?session_id={uuid.uuid4().hex} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {TOKEN_A}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        chunk = b"x" * 16384
        try:
            for _ in range(4 * MAX_BYTES // len(chunk)):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            pass
        data = sock.recv(4096)
        print(data[:80])
        assert data.split(b" ", 2)[1] in (b"413", b"404")


@pytest.mark.parametrize("header_bytes", [15_000, 17_000, 60_000, 130_000])
def test_request_headers_past_16_kib_get_400_even_in_one_read(server: ServerProcess, header_bytes: int) -> None:
    """h11 limits only what it buffers of an incomplete head: a head past 16 KiB that arrived in one read passed."""
    host, port = server.url.removeprefix("http://").split(":")
    head = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nX-Pad: {'a' * header_bytes}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)  # one write: on loopback it is read at once, so h11 never holds it incomplete
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] == (b"200" if header_bytes < MAX_HEADER_BYTES else b"400"), status_line


async def test_a_websocket_upgrade_is_refused_before_reaching_an_endpoint(server: ServerProcess) -> None:
    """No endpoint speaks WebSocket, but Starlette's Mount (``/messages/``) matches websocket scopes too: an upgrade
    with no token and a foreign Origin that got past our middleware would reach the SDK's ``handle_post_message``,
    which crashes on ``scope["method"]`` (a 500 and a traceback in the log, each time, for anyone who can connect).
    Our middleware refuses it (403/401) like any foreign request, and nothing is logged as an error."""
    websockets = pytest.importorskip("websockets")

    url = server.url.replace("http://", "ws://") + f"/messages/?session_id={uuid.uuid4().hex}"
    before = len(server.log)
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(url, additional_headers={"Origin": "http://evil.example"}, open_timeout=10):
            pass
    status = info.value.response.status_code
    # A refused Host is logged at once; once that line is in, whatever the upgrade logged before it is in too (one
    # stderr, read in order).
    marker = f"marker-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as h:
        assert (await h.get("/mcp", headers={"Host": marker})).status_code == 421
    await until(lambda: any(marker in line for line in server.log[before:]), what="the marker request's log line")
    new_log = "".join(server.log[before:])
    assert "Traceback" not in new_log and "KeyError" not in new_log, new_log[-800:]
    assert status in (401, 403), status
