"""Tokens, grants, allowed hosts and metrics without a network: settings, the in-process MCP client (the same
``call_tool`` / resources path as every transport), and the ASGI app through httpx's ASGI transport."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from mcp_memory.config import Settings
from mcp_memory.config_sections import HttpSettings, TokenSettings
from mcp_memory.errors import ConfigurationError
from mcp_memory.server import create_server
from mcp_memory.server.auth import (
    EVERYTHING,
    Grant,
    TokenTable,
    generate_token,
    granted,
    hash_token,
    visible_projects,
)
from mcp_memory.server.http import (
    _matches,
    allowed_hosts_and_origins,
    build_app,
    check_http_settings,
    transport_security,
)
from tests.waiting import until

pytestmark = pytest.mark.anyio


def token(name: str, secret: str, *projects: str) -> TokenSettings:
    return TokenSettings(name=name, sha256=hash_token(secret), projects=list(projects))


# -- tokens ------------------------------------------------------------------------------------------------
def test_token_table() -> None:
    p = str(uuid.uuid4())
    secret, other = generate_token(), generate_token()
    assert secret != other and len(secret) > 40
    table = TokenTable([token("a", secret, p), token("ops", other, "*")])
    found = table.verify(secret)
    assert found is not None and found[0] == hash_token(secret)
    assert found[1] == Grant("a", frozenset({UUID(p)}))
    assert table.verify(other) == (hash_token(other), Grant("ops", None))
    assert table.verify("") is None and table.verify(secret + "x") is None and table.verify("\udcff") is None
    assert not TokenTable([])
    with pytest.raises(ValueError, match="same hash"):
        TokenTable([token("a", secret, "*"), token("b", secret, p)])


def test_token_settings() -> None:
    p = uuid.uuid4()
    t = TokenSettings(name="a", sha256="AB" * 32, projects=[str(p).upper(), "*"])
    assert t.sha256 == "ab" * 32 and t.projects == [str(p), "*"]
    for bad in (
        {"name": "a", "sha256": "xyz", "projects": ["*"]},
        {"name": "a", "sha256": "ab" * 32, "projects": []},
        {"name": "a", "sha256": "ab" * 32, "projects": ["project-1"]},
        {"name": "", "sha256": "ab" * 32, "projects": ["*"]},
    ):
        with pytest.raises(ValidationError):
            TokenSettings.model_validate(bad)


def test_http_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    p = str(uuid.uuid4())
    monkeypatch.setenv("MCP_MEMORY_HTTP__TOKENS", f'[{{"name": "a", "sha256": "{"0" * 64}", "projects": ["{p}"]}}]')
    monkeypatch.setenv("MCP_MEMORY_HTTP__ALLOWED_HOSTS", "mem.example:443, mem.internal:*")
    monkeypatch.setenv("MCP_MEMORY_HTTP__ALLOWED_ORIGINS", '["https://app.example"]')
    monkeypatch.setenv("MCP_MEMORY_HTTP__STATELESS", "true")
    http = Settings().http
    assert http.tokens[0].projects == [p] and http.stateless
    assert http.allowed_hosts == ["mem.example:443", "mem.internal:*"]
    assert http.allowed_origins == ["https://app.example"]


# -- binding and Host/Origin --------------------------------------------------------------------------------
def test_only_loopback_may_go_without_tokens() -> None:
    assert not check_http_settings(HttpSettings())
    for host in ("localhost", "::1", "127.0.0.2"):
        check_http_settings(HttpSettings(host=host))
    for host in ("0.0.0.0", "::", "10.0.0.5", "mem.example"):
        with pytest.raises(ConfigurationError, match="tokens"):
            check_http_settings(HttpSettings(host=host))
        assert check_http_settings(HttpSettings(host=host, tokens=[token("a", "s", "*")]))


def test_allowed_hosts_follow_the_bind_address() -> None:
    hosts, origins = allowed_hosts_and_origins(HttpSettings(port=9000))
    assert hosts == ["127.0.0.1:9000", "localhost:9000", "[::1]:9000"]
    assert "http://localhost:9000" in origins and "http://localhost:9001" not in origins
    hosts, _ = allowed_hosts_and_origins(HttpSettings(port=0))
    assert hosts == ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    hosts, origins = allowed_hosts_and_origins(
        HttpSettings(host="10.0.0.5", port=443, allowed_hosts=["mem.example"], allowed_origins=["https://app.example"])
    )
    assert hosts == ["10.0.0.5:443", "10.0.0.5", "mem.example"]
    assert origins[-1] == "https://app.example" and "https://10.0.0.5" in origins
    hosts, _ = allowed_hosts_and_origins(HttpSettings(host="::1", port=8765))
    assert "[::1]:8765" in hosts
    hosts, _ = allowed_hosts_and_origins(HttpSettings(host="0.0.0.0", port=8765))
    assert "localhost:8765" in hosts and len(hosts) == 4  # loopback names and this machine's name

    assert _matches("127.0.0.1:8765", ["127.0.0.1:*"])
    assert not _matches("127.0.0.1:80@evil.example", ["127.0.0.1:*"])
    assert not _matches("127.0.0.1.evil.example:80", ["127.0.0.1:*"])

    sdk = transport_security(HttpSettings(port=9000))
    assert sdk.enable_dns_rebinding_protection and sdk.allowed_hosts[0] == "127.0.0.1:9000"
    assert not transport_security(HttpSettings(allowed_hosts=["*"])).enable_dns_rebinding_protection


# -- grants through the MCP layer ------------------------------------------------------------------------------
def test_visible_projects() -> None:
    """A token lists its own projects, whatever project the server is configured to default to (it may be none of
    them); a grant of every project lists its default project, else the configured one, else every project."""
    a, b = uuid.uuid4(), uuid.uuid4()
    assert visible_projects(None) is None and visible_projects(a) == [a]
    with granted(Grant("t", frozenset({a, b}))):
        assert visible_projects(None) == sorted([a, b])
        assert visible_projects(a) == sorted([a, b])
        assert visible_projects(uuid.uuid4()) == sorted([a, b])
    with granted(Grant("all", None, default_project=b)):
        assert visible_projects(a) == [b]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_default_project_is_subject_to_the_grant(make_settings: Callable[..., Settings], mode: str) -> None:
    """Tools without project_id use MCP_MEMORY_PROJECT_ID; a grant without that project refuses them, and the
    listing of recent resources shows the grant's own projects."""
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    server = create_server(make_settings(project_id=mine))
    s = {"agent_instance_id": str(uuid.uuid4()), "session_id": "s"}
    async with Client(server, mode=mode) as c:
        server.grants.fallback = Grant("mine", frozenset({mine}))
        assert not (await c.call_tool("spawn", s)).is_error
        assert not (await c.call_tool("pause", s)).is_error
        assert len((await c.list_resources()).resources) == 1

        server.grants.fallback = Grant("theirs", frozenset({theirs}))
        for tool in ("memory_list", "spawn", "pause", "list_checkpoints"):
            result = await c.call_tool(tool, s)
            assert result.is_error and result.content[0].text.startswith("forbidden: "), tool  # type: ignore[union-attr]
        result = await c.call_tool("search_episodes", {"query": "x"})
        assert result.content[0].text.startswith("forbidden: ")  # type: ignore[union-attr]
        assert (await c.list_resources()).resources == []  # its own project holds nothing
        with pytest.raises(MCPError, match=r"^forbidden: "):
            await c.read_resource(f"memory://projects/{mine}/agents/{s['agent_instance_id']}/sessions/s")

        # A token for another project than the configured default lists its own project's resources.
        theirs_scope = {**s, "project_id": str(theirs)}
        assert not (await c.call_tool("spawn", theirs_scope)).is_error
        assert not (await c.call_tool("pause", theirs_scope)).is_error
        listed = (await c.list_resources()).resources
        assert len(listed) == 1 and str(listed[0].uri).startswith(f"memory://projects/{theirs}/")

        server.grants.fallback = EVERYTHING
        listed = (await c.list_resources()).resources  # the configured default project only
        assert len(listed) == 1 and str(listed[0].uri).startswith(f"memory://projects/{mine}/")


async def test_metrics_count_every_transport(settings: Settings) -> None:
    """Counted at call_tool: the in-process client takes the same path as stdio and HTTP."""
    server = create_server(settings)
    s = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s"}
    async with Client(server) as c:
        await c.call_tool("spawn", s)
        await c.call_tool("spawn", s)  # conflict
        await c.call_tool("memory_get", {**s, "key": "nope"})
        with pytest.raises(MCPError):  # a protocol error, counted all the same
            await c.call_tool("no_such_tool", {})
    registry = server.metrics.registry
    assert registry.get_sample_value("mcp_memory_tool_calls_total", {"tool": "spawn"}) == 2
    assert registry.get_sample_value("mcp_memory_tool_errors_total", {"tool": "spawn", "code": "conflict"}) == 1
    assert registry.get_sample_value("mcp_memory_tool_errors_total", {"tool": "memory_get", "code": "not_found"}) == 1
    assert registry.get_sample_value("mcp_memory_tool_calls_total", {"tool": "unknown"}) == 1
    assert registry.get_sample_value("mcp_memory_tool_errors_total", {"tool": "unknown", "code": "protocol"}) == 1
    assert registry.get_sample_value("mcp_memory_tool_duration_seconds_count", {"tool": "spawn"}) == 2
    body, content_type = server.metrics.render()
    assert b"mcp_memory_tool_duration_seconds_bucket" in body and content_type.startswith("text/plain")


# -- the ASGI app in process --------------------------------------------------------------------------------------
async def test_probes_and_metrics(make_settings: Callable[..., Settings]) -> None:
    secret = generate_token()
    settings = make_settings(http=HttpSettings(tokens=[token("ops", secret, "*")], metrics_require_token=False))
    server = create_server(settings)
    app = build_app(server)
    transport = httpx.ASGITransport(app=app)  # runs no lifespan: the stores are not open yet
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as h:
        assert (await h.get("/healthz")).status_code == 200
        r = await h.get("/readyz")
        assert r.status_code == 503 and r.json() == {"status": "unavailable"}
        async with server.runtime:
            # The 503 above answers for up to a second (server/readiness.py); then a new probe finds the stores.
            async def ready() -> bool:
                r = await h.get("/readyz")
                return r.status_code == 200 and r.json() == {"status": "ready"}

            await until(ready, what="/readyz ready")
        assert (await h.get("/metrics")).status_code == 200  # metrics_require_token = false
        assert (await h.post("/mcp", json={})).status_code == 401
        assert (await h.get("/healthz", headers={"Host": "evil.example:8765"})).status_code == 200  # probes
        assert (await h.get("/metrics", headers={"Host": "evil.example:8765"})).status_code == 421


def test_http_settings_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The [http] table and [[http.tokens]] entries as config/mcp-memory.toml shows them."""
    p = str(uuid.uuid4())
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[http]
host = "10.0.0.5"
port = 443
allowed_hosts = ["memory.example.com:443"]

[[http.tokens]]
name = "billing-agents"
sha256 = "{"a" * 64}"
projects = ["{p}"]

[[http.tokens]]
name = "ops"
sha256 = "{"b" * 64}"
projects = ["*"]
"""
    )
    for key in [k for k in os.environ if k.startswith("MCP_MEMORY_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MCP_MEMORY_CONFIG", str(path))
    http = Settings().http
    assert [t.name for t in http.tokens] == ["billing-agents", "ops"] and http.tokens[0].projects == [p]
    assert http.port == 443 and http.allowed_hosts == ["memory.example.com:443"]
    assert check_http_settings(http)


def test_a_grant_is_logged_by_its_tokens_name_and_the_start_of_its_hash() -> None:
    token = "sha256:" + "ab" * 32
    assert Grant("ci", None, token=token).label == "ci (sha256:abababab)"
    assert Grant("local", None).label == "local"
