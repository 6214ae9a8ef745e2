"""Protocol-level answers (JSON-RPC errors) through the SDK's real client, in process, over stdio and over
Streamable HTTP, each in both protocol eras (the initialize handshake, 2025-11-25, and 2026-07-28).

SPEC.md: an unknown tool or prompt is -32602 with no traceback in the server's log; a resource not found is the
spec's resource-not-found code of the request's protocol version (-32002 up to 2025-11-25; -32602 from
2026-07-28, which retired -32002); a malformed resource URI is -32602 and the error repeats at most 200
characters of it; identifiers in a URI are taken as written (a percent escape is never decoded into another
id). ``memory_list`` of a session that does not exist is ``not_found`` like every other tool.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from mcp_memory.config import Settings
from mcp_memory.server import create_server
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.auth import EVERYTHING, Grant
from tests.http_helpers import EXE, TIMEOUT, ServerProcess, connect, server_env

pytestmark = pytest.mark.anyio

RESOURCE_NOT_FOUND = -32002
TRANSPORTS = ["inprocess", "stdio", "http"]
MODES = ["legacy", "auto"]
"""legacy: the initialize handshake (2025-11-25); auto: what the SDK negotiates first (2026-07-28)."""
ECHO_LIMIT = 200


@dataclass
class Conn:
    """A connected client, the server's log so far, and the protocol version the connection speaks."""

    client: Client
    read_log: Callable[[], str]
    project: str
    agent: str
    server: MemoryServer | None = None
    """The server object when it runs in process."""
    huge_length: int = 1_000_000
    """How long a URI this transport carries to the server (on 2026-07-28 HTTP the URI rides in an ``Mcp-Name``
    header too, and the HTTP server refuses a header of a megabyte before MCP sees it)."""

    @property
    def not_found_code(self) -> int:
        """The resource-not-found code of this connection's protocol version."""
        return RESOURCE_NOT_FOUND if self.client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS else INVALID_PARAMS

    def uri(self, rest: str, project: str | None = None) -> str:
        return f"memory://projects/{project or self.project}/{rest}"

    def session_uri(self, session: str) -> str:
        return self.uri(f"agents/{self.agent}/sessions/{session}")

    async def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        args = {"project_id": self.project, "agent_instance_id": self.agent, **arguments}
        result = await self.client.call_tool(tool, args)
        assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
        content: dict[str, Any] | None = result.structured_content
        assert content is not None
        return content

    async def protocol_error(self, call: Any) -> MCPError:
        with pytest.raises(MCPError) as info:
            await call
        return info.value

    async def read_error(self, uri: str) -> MCPError:
        return await self.protocol_error(self.client.read_resource(uri))


@asynccontextmanager
async def connection(
    transport: str, mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Conn]:
    """A client of a fresh server on its own SQLite file, over ``transport``, in protocol era ``mode``."""
    project, agent = str(uuid.uuid4()), str(uuid.uuid4())
    db = tmp_path / "protocol.db"
    if transport == "inprocess":
        caplog.set_level(logging.INFO)
        server = create_server(Settings(database_url=f"sqlite+aiosqlite:///{db}"))

        def records() -> str:
            lines = [r.getMessage() for r in caplog.records]
            lines += ["Traceback (from exc_info)" for r in caplog.records if r.exc_info]
            return "\n".join(lines)

        async with Client(server, mode=mode) as client:
            yield Conn(client, records, project, agent, server)
    elif transport == "stdio":
        log = tmp_path / "stderr.log"
        params = StdioServerParameters(command=str(EXE), args=["serve"], env=server_env(db))
        with log.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode=mode, read_timeout_seconds=TIMEOUT) as client:
                yield Conn(client, log.read_text, project, agent)
    else:
        with ServerProcess(server_env(db)) as process:
            async with connect(process.url, None, "http-legacy" if mode == "legacy" else "http") as client:
                # The 2026 protocol also sends the URI in a header, and a head past 16 KiB is refused (400).
                huge = 1_000_000 if mode == "legacy" else 10_000
                yield Conn(client, lambda: "".join(process.log), project, agent, huge_length=huge)


@pytest.fixture(params=[(t, m) for t in TRANSPORTS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
async def conn(request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Conn]:
    transport, mode = request.param
    async with connection(transport, mode, tmp_path, caplog) as c:
        expected = HANDSHAKE_PROTOCOL_VERSIONS[-1] if mode == "legacy" else "2026-07-28"
        assert c.client.protocol_version == expected, "both protocol eras must be exercised"
        yield c


def assert_no_traceback(log: str) -> None:
    assert "Traceback" not in log, log[-3000:]


# -- unknown tool, unknown prompt ------------------------------------------------------------------------------
async def test_unknown_tool_is_invalid_params_without_traceback(conn: Conn) -> None:
    for name in ["no_such_tool", "t" * 5000]:
        err = await conn.protocol_error(conn.client.call_tool(name, {"project_id": conn.project}))
        assert err.error.code == INVALID_PARAMS, err.error
        assert err.error.message.startswith("not_found: tool "), err.error.message[:300]
        assert name[:ECHO_LIMIT] in err.error.message and len(err.error.message) < 400
    # The server still answers after it.
    await conn.ok("spawn", session_id="after-unknown-tool")
    assert_no_traceback(conn.read_log())


async def test_unknown_prompt_is_invalid_params_without_traceback(conn: Conn) -> None:
    for name in ["no_such_prompt", "p" * 5000]:
        err = await conn.protocol_error(conn.client.get_prompt(name, {"query": "x"}))
        assert err.error.code == INVALID_PARAMS, err.error
        assert err.error.message.startswith("not_found: prompt "), err.error.message[:300]
        assert len(err.error.message) < 400
    await conn.ok("spawn", session_id="after-unknown-prompt")
    assert_no_traceback(conn.read_log())


# -- resources not found ---------------------------------------------------------------------------------------
async def test_missing_resource_is_resource_not_found(conn: Conn) -> None:
    await conn.ok("spawn", session_id="s1", initial_state={"k": 1})
    missing = [
        conn.session_uri("never-spawned"),
        conn.session_uri("never-spawned") + "/checkpoints",
        conn.session_uri("s1") + "/checkpoints/no-such-checkpoint",
        conn.uri(f"episodes/{uuid.uuid4()}"),
        conn.uri(f"agents/{uuid.uuid4()}/sessions/s1"),  # s1 of another agent
    ]
    no_template = [  # URIs that match none of the server's resources: not found as well
        conn.uri("nothing-here"),
        conn.session_uri("s1") + "/unknown-part",
        "memory://elsewhere/x",
        "file:///etc/passwd",
    ]
    for uri in missing + no_template:
        err = await conn.read_error(uri)
        assert err.error.code == conn.not_found_code, (uri, err.error)
        assert err.error.message.startswith("not_found: "), (uri, err.error.message[:300])
        assert err.error.data == {"uri": uri}
    assert_no_traceback(conn.read_log())


# -- malformed resource URIs -----------------------------------------------------------------------------------
async def test_malformed_resource_uri_is_invalid_params_with_bounded_echo(conn: Conn) -> None:
    await conn.ok("spawn", session_id="s1")
    huge = "x" * conn.huge_length
    for uri in [
        conn.session_uri("a*b"),
        conn.uri("episodes/not-a-uuid"),
        conn.session_uri("s1") + "/checkpoints/" + huge,
        conn.session_uri(huge),
        conn.uri(f"episodes/{huge}"),
        conn.session_uri("a%2Fb" + huge),
    ]:
        err = await conn.read_error(uri)
        assert err.error.code == INVALID_PARAMS, (uri[:120], err.error.code)
        assert err.error.message.startswith("invalid_argument: "), err.error.message[:300]
        assert len(err.error.message) < 1000, len(err.error.message)
        assert isinstance(err.error.data, dict) and err.error.data["uri"] in (uri, uri[:ECHO_LIMIT] + "…")
    # A URI that matches no template is echoed bounded too.
    long_unmatched = conn.uri("nothing/" + "y" * 2000)
    err = await conn.read_error(long_unmatched)
    assert err.error.code == conn.not_found_code and err.error.message.startswith("not_found: ")
    assert len(err.error.message) < 1000 and err.error.data == {"uri": long_unmatched[:ECHO_LIMIT] + "…"}


async def test_resource_ids_are_taken_as_written_never_percent_decoded(conn: Conn) -> None:
    await conn.ok("spawn", session_id="fix", initial_state={"secret": "of fix"})
    cp = (await conn.ok("pause", session_id="fix", checkpoint_id="cp1"))["checkpoint_id"]
    assert cp == "cp1"
    episode = (await conn.ok("record_episode", task_type="t", task_description="d", outcome="success"))["episode_id"]
    await conn.client.read_resource(conn.session_uri("fix"))  # readable as written
    for uri in [
        conn.session_uri("%66ix"),
        conn.session_uri("fi%78"),
        conn.session_uri("fix") + "/checkpoints/%63p1",
        conn.session_uri("%66ix") + "/checkpoints",
        conn.uri(f"episodes/{episode[:-1]}%{ord(episode[-1]):02X}"),
        conn.uri(f"agents/{conn.agent[:-1]}%{ord(conn.agent[-1]):02X}/sessions/fix"),
        f"memory://projects/{conn.project[:-1]}%{ord(conn.project[-1]):02X}/episodes",
    ]:
        err = await conn.read_error(uri)
        assert err.error.code == INVALID_PARAMS, (uri, err.error)
        assert err.error.message.startswith("invalid_argument: "), (uri, err.error.message)
        assert "of fix" not in err.error.message


# -- memory_list of an unknown session -----------------------------------------------------------------------------
async def test_memory_list_of_unknown_session_is_not_found(conn: Conn) -> None:
    await conn.ok("spawn", session_id="empty")
    await conn.ok("spawn", session_id="done", initial_state={"k": 1})
    await conn.ok("terminate", session_id="done")
    await conn.ok("spawn", session_id="kept", initial_state={"k": 1})
    await conn.ok("terminate", session_id="kept", cleanup_working=False)
    for arguments in [{}, {"prefix": "k"}]:
        result = await conn.client.call_tool(
            "memory_list",
            {"project_id": conn.project, "agent_instance_id": conn.agent, "session_id": "never", **arguments},
        )
        assert result.is_error
        text = result.content[0].text  # type: ignore[union-attr]
        assert text.startswith("not_found: ") and "never" in text, text
        assert (await conn.ok("memory_list", session_id="empty", **arguments))["keys"] == []
    # A terminated session lists what memory_get would read: nothing once cleaned up, its keys if kept.
    assert (await conn.ok("memory_list", session_id="done"))["keys"] == []
    assert (await conn.ok("memory_list", session_id="kept"))["keys"] == ["k"]
    assert (await conn.ok("memory_get", session_id="kept", key="k"))["value"] == 1


# -- a restricted token learns nothing from the code (in process: the grant is set on the server) ----------------
@pytest.mark.parametrize("mode", MODES)
async def test_forbidden_resource_answers_the_not_found_code(
    mode: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with connection("inprocess", mode, tmp_path, caplog) as c:
        other, nobody = str(uuid.uuid4()), str(uuid.uuid4())
        assert c.server is not None
        await c.ok("spawn", project_id=other, session_id="s1", initial_state={"secret": "B"})
        grants = c.server.grants
        assert grants.fallback is EVERYTHING
        grants.fallback = Grant("only-mine", frozenset({uuid.UUID(c.project)}))
        answers = []
        for project in (other, nobody):  # the session exists in one, not in the other
            uri = f"memory://projects/{project}/agents/{c.agent}/sessions/s1"
            err = await c.read_error(uri)
            assert err.error.message.startswith("forbidden: "), err.error.message
            answers.append((err.error.code, err.error.message.replace(project, "<P>")))
        assert answers[0] == answers[1]
        # ... and the code is the one an unknown resource in its own project answers.
        mine = await c.read_error(c.session_uri("s1"))
        assert mine.error.message.startswith("not_found: ")
        assert answers[0][0] == mine.error.code == c.not_found_code
        own_unmatched = await c.read_error(c.uri("nothing-here"))
        assert own_unmatched.error.message.startswith("not_found: ")
        assert own_unmatched.error.code == c.not_found_code
        unmatched = await c.read_error("memory://elsewhere/x")
        assert unmatched.error.message.startswith("forbidden: ")
        assert unmatched.error.code == c.not_found_code
