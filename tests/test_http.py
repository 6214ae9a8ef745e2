"""``mcp-memory serve --transport http`` as a subprocess, through the SDK's real SSE and Streamable HTTP clients.

One server process serves the whole module (tokens for project A, project B and every project); tests use
fresh agent and session ids, so they do not see each other's sessions.
"""

from __future__ import annotations

import io
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from mcp_memory.cli import main
from mcp_memory.server.auth import generate_token
from tests.http_helpers import (
    EXE,
    INITIALIZE,
    MCP_HEADERS,
    TIMEOUT,
    ServerProcess,
    auth,
    connect,
    error,
    ok,
    read,
    server_env,
    token_config,
)

pytestmark = pytest.mark.anyio

PROJECT_A, PROJECT_B = str(uuid.uuid4()), str(uuid.uuid4())
TOKEN_A, TOKEN_B, TOKEN_ALL = generate_token(), generate_token(), generate_token()
MAX_BYTES = 256 * 1024
TRANSPORTS = ["http", "http-legacy", "sse"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("http") / "memory.db"
    env = server_env(
        db,
        MCP_MEMORY_HTTP__TOKENS=token_config(
            ("team-a", TOKEN_A, [PROJECT_A]), ("team-b", TOKEN_B, [PROJECT_B]), ("ops", TOKEN_ALL, ["*"])
        ),
        MCP_MEMORY_HTTP__MAX_REQUEST_BYTES=str(MAX_BYTES),
        # The --port 0 flag must win over the setting (port 1 could not be bound).
        MCP_MEMORY_HTTP__PORT="1",
    )
    with ServerProcess(env) as proc:
        yield proc


def ids(project: str) -> dict[str, str]:
    return {"project_id": project, "agent_instance_id": str(uuid.uuid4()), "session_id": f"s-{uuid.uuid4().hex[:8]}"}


def session_uri(s: dict[str, str]) -> str:
    return f"memory://projects/{s['project_id']}/agents/{s['agent_instance_id']}/sessions/{s['session_id']}"


# -- a whole session ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_session_walk(server: ServerProcess, transport: str) -> None:
    s = ids(PROJECT_A)
    uri = session_uri(s)
    state: dict[str, Any] = {f"note/{i}": {"i": i, "text": f"note {i} ✓"} for i in range(10)}
    state["goal"] = "ship the HTTP transport"
    with anyio.fail_after(TIMEOUT):
        async with connect(server.url, TOKEN_A, transport) as c:
            assert c.server_info is not None and c.server_info.name == "mcp-memory"
            assert len((await c.list_tools()).tools) == 17
            assert len((await c.list_resource_templates()).resource_templates) == 7

            assert (await ok(c, "spawn", **s, initial_state={"goal": state["goal"]}))["initial_items"] == 1
            for key, value in state.items():
                await ok(c, "memory_set", **s, key=key, value=value)
            assert (await ok(c, "memory_list", **s))["keys"] == sorted(state)
            assert (await ok(c, "memory_get", **s, key="note/3"))["value"] == state["note/3"]

            paused = await ok(c, "pause", **s, label="end of day")
            cp = paused["checkpoint_id"]
            assert paused["items_saved"] == len(state)
            await ok(c, "memory_set", **s, key="goal", value="changed")
            await ok(c, "memory_delete", **s, key="note/0")
            resumed = await ok(c, "resume", **s)
            assert resumed["checkpoint_id"] == cp and resumed["items_restored"] == len(state)
            assert (await ok(c, "memory_get", **s, key="goal"))["value"] == state["goal"]
            assert (await error(c, "resume", **s, checkpoint_id="missing")).startswith("not_found: ")

            listed = await ok(c, "list_checkpoints", **s)
            assert [x["checkpoint_id"] for x in listed["checkpoints"]] == [cp]
            assert (await read(c, uri))["working_memory"] == state
            assert [x["checkpoint_id"] for x in (await read(c, uri + "/checkpoints"))["checkpoints"]] == [cp]
            assert (await read(c, f"{uri}/checkpoints/{cp}"))["state"] == state

            ended = await ok(c, "terminate", **s, task_description=f"Walk over {transport}", lessons_learned=["x"])
            episode = ended["episode_id"]
            assert ended["state_items_consolidated"] == len(state)
            assert await ok(c, "terminate", **s) == ended
            hits = (await ok(c, "search_episodes", project_id=PROJECT_A, query=f"walk over {transport}"))["episodes"]
            assert hits and hits[0]["episode_id"] == episode
            assert (await read(c, f"memory://projects/{PROJECT_A}/episodes/{episode}"))["outcome"] == "success"
            listing = {str(r.uri) for r in (await c.list_resources()).resources}
            assert {f"{uri}/checkpoints/{cp}", f"memory://projects/{PROJECT_A}/episodes/{episode}"} <= listing


# -- projects: a token touches its own only -----------------------------------------------------------------
async def _foreign_world(server: ServerProcess) -> tuple[dict[str, str], str, str]:
    """A paused session and an episode in project B (made with B's token)."""
    s = ids(PROJECT_B)
    async with connect(server.url, TOKEN_B) as c:
        await ok(c, "spawn", **s, initial_state={"secret": "b's plan"})
        cp = (await ok(c, "pause", **s))["checkpoint_id"]
        done = ids(PROJECT_B)
        await ok(c, "spawn", **done)
        episode = (await ok(c, "terminate", **done, task_description="b's secret task"))["episode_id"]
    return s, cp, episode


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_other_projects_are_forbidden_and_reveal_nothing(server: ServerProcess, transport: str) -> None:
    with anyio.fail_after(TIMEOUT):
        s, cp, episode = await _foreign_world(server)
        ghost = {**s, "session_id": "no-such-session"}
        scope_calls: list[tuple[str, dict[str, Any]]] = [
            ("spawn", {}),
            ("pause", {}),
            ("resume", {}),
            ("resume", {"checkpoint_id": cp}),
            ("terminate", {}),
            ("list_checkpoints", {}),
            ("memory_set", {"key": "secret", "value": "overwritten"}),
            ("memory_get", {"key": "secret"}),
            ("memory_delete", {"key": "secret"}),
            ("memory_list", {}),
        ]
        async with connect(server.url, TOKEN_A, transport) as c:
            for tool, extra in scope_calls:
                real = await error(c, tool, **s, **extra)
                assert real.startswith("forbidden: "), (tool, real)
                # The same answer for a session that does not exist: nothing is revealed.
                assert await error(c, tool, **ghost, **extra) == real, tool
            for tool, args in [
                ("search_episodes", {"project_id": PROJECT_B, "query": "secret"}),
                (
                    "record_episode",
                    {
                        "project_id": PROJECT_B,
                        "agent_instance_id": s["agent_instance_id"],
                        "task_type": "t",
                        "task_description": "planted",
                        "outcome": "success",
                    },
                ),
            ]:
                assert (await error(c, tool, **args)).startswith("forbidden: "), tool

            base = session_uri(s)
            uris = [
                base,
                base + "/checkpoints",
                f"{base}/checkpoints/{cp}",
                f"memory://projects/{PROJECT_B}/episodes",
                f"memory://projects/{PROJECT_B}/episodes/{episode}",
            ]
            ghosts = [
                session_uri(ghost),
                session_uri(ghost) + "/checkpoints",
                f"{session_uri(ghost)}/checkpoints/nope",
                f"memory://projects/{uuid.uuid4()}/episodes",
                f"memory://projects/{PROJECT_B}/episodes/{uuid.uuid4()}",
                f"memory://projects/{PROJECT_B}/no-such-kind",
                "memory://elsewhere",
            ]
            for target in uris + ghosts:
                with pytest.raises(MCPError) as info:
                    await c.read_resource(target)
                assert info.value.error.message.startswith("forbidden: "), (target, info.value.error.message)
                assert "b's" not in info.value.error.message

            listing = {str(r.uri) for r in (await c.list_resources()).resources}
            assert not [u for u in listing if PROJECT_B in u]

        # Project B's data is untouched, and B sees it listed; the all-projects token sees both projects.
        async with connect(server.url, TOKEN_B, transport) as c:
            assert (await ok(c, "memory_get", **s, key="secret"))["value"] == "b's plan"
            hits = (await ok(c, "search_episodes", project_id=PROJECT_B, query="planted"))["episodes"]
            assert not [h for h in hits if h["task_description"] == "planted"]
            listing = {str(r.uri) for r in (await c.list_resources()).resources}
            assert f"{base}/checkpoints/{cp}" in listing and not [u for u in listing if PROJECT_A in u]
        async with connect(server.url, TOKEN_ALL, transport) as c:
            assert (await read(c, f"{base}/checkpoints/{cp}"))["state"] == {"secret": "b's plan"}
            await ok(c, "memory_list", **s)


async def test_a_session_stays_with_the_token_that_opened_it(server: ServerProcess) -> None:
    """Another valid token cannot post into an SSE session it did not open (the SDK binds sessions to the
    credential; our middleware gives each token its own identity)."""
    opened: list[str] = []
    with anyio.fail_after(TIMEOUT):
        async with connect(server.url, TOKEN_A, "sse", on_sse_session=opened.append) as c:
            # Got through (the session is just unknown: not_found, not forbidden).
            assert (await error(c, "memory_list", **ids(PROJECT_A))).startswith("not_found: ")
            assert opened
            # A notification: accepted with 202 and answered by nothing, so no stray response reaches the
            # client's SSE stream (a response to a request it never sent made its reader fail at exit).
            body = {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as h:
                r = await h.post(f"/messages/?session_id={opened[0]}", json=body, headers=auth(TOKEN_B))
                assert r.status_code == 404
                r = await h.post(f"/messages/?session_id={opened[0]}", json=body, headers=auth(TOKEN_A))
                assert r.status_code == 202


# -- authentication, Host/Origin, limits ---------------------------------------------------------------------


async def test_missing_or_wrong_token_is_401(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as h:
        for headers in ({}, auth("wrong"), auth(TOKEN_A[:-1]), {"Authorization": f"Basic {TOKEN_A}"}):
            for method, path in [
                ("POST", "/mcp"),
                ("GET", "/sse"),
                ("POST", "/messages/?session_id=0"),
                ("GET", "/metrics"),
            ]:
                r = await h.request(method, path, json=INITIALIZE, headers={**MCP_HEADERS, **headers})
                assert r.status_code == 401, (method, path, headers)
                assert r.headers["www-authenticate"].startswith("Bearer "), r.headers
                assert "error" in r.json()
        r = await h.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **auth("wrong")})
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        assert (await h.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **auth(TOKEN_A)})).status_code == 200
        # Probes need no token.
        assert (await h.get("/healthz")).json() == {"status": "ok"}
        assert (await h.get("/readyz")).json() == {"status": "ready"}
    # The SDK's client with a wrong token does not get a session.
    with anyio.fail_after(TIMEOUT), pytest.raises(Exception):  # noqa: B017 (whatever the client raises)
        async with connect(server.url, "wrong") as c:
            await c.list_tools()


async def test_foreign_host_and_origin_are_refused(server: ServerProcess) -> None:
    port = server.url.rsplit(":", 1)[1]
    headers = {**MCP_HEADERS, **auth(TOKEN_A)}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as h:
        for path, method in [
            ("/mcp", "POST"),
            ("/sse", "GET"),
            ("/messages/?session_id=0", "POST"),
            ("/metrics", "GET"),
        ]:
            r = await h.request(method, path, json=INITIALIZE, headers={**headers, "Origin": "http://evil.example"})
            assert r.status_code == 403, (path, r.status_code)
            r = await h.request(method, path, json=INITIALIZE, headers={**headers, "Host": f"evil.example:{port}"})
            assert r.status_code == 421, (path, r.status_code)
        # A DNS-rebinding page names our port under its own host name: refused before the token is even looked at.
        r = await h.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Host": f"rebind.example:{port}"})
        assert r.status_code == 421
        for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            r = await h.post("/mcp", json=INITIALIZE, headers={**headers, "Origin": origin})
            assert r.status_code == 200, origin
        r = await h.post("/mcp", json=INITIALIZE, headers={**headers, "Host": f"localhost:{port}"})
        assert r.status_code == 200


def _raw(url: str) -> tuple[socket.socket, str]:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock, f"{host}:{port}"


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_large_body_is_413_without_being_read(server: ServerProcess) -> None:
    sock, host = _raw(server.url)
    with sock:
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN_A}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"Content-Length: {100 * MAX_BYTES}\r\n\r\n"
        )
        sock.sendall(head.encode())  # no body at all: the answer must not wait for it
        assert _status(sock) == 413
    # A chunked body that grows past the limit is cut off at the limit.
    sock, host = _raw(server.url)
    with sock:
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN_A}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        chunk = b"x" * 16384
        try:
            for _ in range(2 * MAX_BYTES // len(chunk)):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except OSError:
            pass  # the server answered and closed while we were still sending
        assert _status(sock) == 413


async def test_slow_and_vanished_clients_do_not_hold_up_others(server: ServerProcess) -> None:
    sockets: list[socket.socket] = []
    try:
        # A client trickling a request body, one that sent half its headers, one that vanished mid-body.
        trickler, host = _raw(server.url)
        trickler.sendall(
            (
                f"POST /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN_A}\r\n"
                f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                f"Content-Length: 10000\r\n\r\n{{"
            ).encode()
        )
        half, _ = _raw(server.url)
        half.sendall(f"POST /mcp HTTP/1.1\r\nHost: {host}\r\n".encode())
        gone, _ = _raw(server.url)
        gone.sendall(
            (
                f"POST /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN_A}\r\n"
                "Content-Length: 500\r\n\r\n{"
            ).encode()
        )
        gone.close()
        sockets += [trickler, half]
        with anyio.fail_after(TIMEOUT):
            # An SSE stream held open and never read, and a Streamable HTTP session left idle.
            async with connect(server.url, TOKEN_A, "sse") as idle_sse, connect(server.url, TOKEN_A) as idle_http:
                for idle in (idle_sse, idle_http):  # answered: the session is just unknown
                    assert (await error(idle, "memory_list", **ids(PROJECT_A))).startswith("not_found: ")
                s = ids(PROJECT_A)
                async with connect(server.url, TOKEN_A) as c:
                    await ok(c, "spawn", **s)
                    slowest = 0.0
                    for i in range(30):
                        trickler.sendall(b" ")
                        started = time.perf_counter()
                        await ok(c, "memory_set", **s, key=f"k{i}", value=i)
                        slowest = max(slowest, time.perf_counter() - started)
                    assert slowest < 5.0, f"a call took {slowest:.2f}s while slow clients were connected"
                    assert len((await ok(c, "memory_list", **s))["keys"]) == 30
    finally:
        for sock in sockets:
            sock.close()


def _open_sse(url: str) -> socket.socket:
    """A raw SSE stream (no token), once the server is serving it (its endpoint event has arrived)."""
    sock, host = _raw(url)
    sock.sendall(f"GET /sse HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    data = b""
    while b"endpoint" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return sock


def test_connections_past_the_cap_shed_the_idle_ones_and_get_503_when_all_are_busy(tmp_path: Path) -> None:
    """Past ``http.max_connections`` the longest-idle connection (here: half-sent requests) is closed to make
    room, so a new request is served; only when every connection is serving a request (open SSE streams) is a
    new request answered 503 with Retry-After, at once; once they go, requests are served again."""
    env = server_env(tmp_path / "memory.db", MCP_MEMORY_HTTP__MAX_CONNECTIONS="4")
    with ServerProcess(env) as proc:
        assert httpx.get(proc.url + "/healthz", timeout=10).status_code == 200
        held = [_raw(proc.url)[0] for _ in range(4)]
        try:
            for sock in held:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # half a request, never finished
            assert httpx.get(proc.url + "/healthz", timeout=10).status_code == 200
            held += [_open_sse(proc.url) for _ in range(4)]
            started = time.perf_counter()
            r = httpx.get(proc.url + "/healthz", timeout=10)
            assert r.status_code == 503 and r.headers["retry-after"] == "1", r
            assert time.perf_counter() - started < 5
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 10
        while httpx.get(proc.url + "/healthz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover after the idle clients left"
            time.sleep(0.1)


# -- metrics ----------------------------------------------------------------------------------------------------
async def test_metrics(server: ServerProcess) -> None:
    s = ids(PROJECT_A)
    with anyio.fail_after(TIMEOUT):
        async with connect(server.url, TOKEN_A) as c:
            await ok(c, "spawn", **s)
            await error(c, "memory_get", **s, key="absent")
            await error(c, "memory_list", **{**s, "project_id": PROJECT_B})
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as h:
        assert (await h.get("/metrics")).status_code == 401
        # Every project's calls are counted there: a token of one project may not read them.
        assert (await h.get("/metrics", headers=auth(TOKEN_B))).status_code == 403
        r = await h.get("/metrics", headers=auth(TOKEN_ALL))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = _samples(r.text)
    assert samples[("mcp_memory_tool_calls_total", (("tool", "spawn"),))] >= 1
    assert samples[("mcp_memory_tool_errors_total", (("code", "not_found"), ("tool", "memory_get")))] >= 1
    assert samples[("mcp_memory_tool_errors_total", (("code", "forbidden"), ("tool", "memory_list")))] >= 1
    assert samples[("mcp_memory_tool_duration_seconds_count", (("tool", "spawn"),))] >= 1
    assert samples[("mcp_memory_http_rejected_requests_total", (("reason", "unauthorized"),))] >= 1


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


# -- configuration that must not start -------------------------------------------------------------------------
async def _run(*args: str, env: dict[str, str], stdin: bytes = b"") -> tuple[int, str, str]:
    with anyio.fail_after(TIMEOUT):
        done = await anyio.run_process([str(EXE), *args], input=stdin, env=env, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_refuses_a_public_bind_without_tokens(tmp_path: Path) -> None:
    env = server_env(tmp_path / "m.db")
    code, out, err = await _run("serve", "--transport", "http", "--host", "0.0.0.0", "--port", "0", env=env)
    assert code == 2 and out == ""
    assert "configuration error" in err and "tokens" in err and "0.0.0.0" in err and "Traceback" not in err
    assert not (tmp_path / "m.db").exists(), "nothing was opened"


def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_configuration_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in server_env(tmp_path / "m.db").items():
        monkeypatch.setenv(key, value)
    for host in ("192.0.2.10", "mem.example", "::"):
        code, _, err = _cli(monkeypatch, capsys, "serve", "--transport", "sse", "--host", host)
        assert code == 2 and "tokens" in err and host in err
    monkeypatch.setenv("MCP_MEMORY_HTTP__TOKENS", json.dumps([{"name": "x", "sha256": "abc", "projects": ["*"]}]))
    code, _, err = _cli(monkeypatch, capsys, "serve", "--transport", "http")
    assert code == 2 and "configuration error" in err and "sha256" in err
    code, _, err = _cli(monkeypatch, capsys, "serve", "--transport", "http", "--port", "70000")
    assert code == 2 and "configuration error" in err


def test_hash_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(monkeypatch, capsys, "hash-token", stdin="abc\n")
    assert code == 0 and out.strip() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    code, out, _ = _cli(monkeypatch, capsys, "hash-token", "--generate")
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    code2, out2, _ = _cli(monkeypatch, capsys, "hash-token", stdin=lines["token"])
    assert code == code2 == 0 and out2.strip() == lines["sha256"] and len(lines["token"]) > 40
    code, _, err = _cli(monkeypatch, capsys, "hash-token", stdin="")
    assert code == 2 and "--generate" in err
