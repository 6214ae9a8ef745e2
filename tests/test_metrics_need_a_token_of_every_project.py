"""``GET /metrics`` counts every project's calls per tool, so with tokens configured only a token of every project
(``projects = ["*"]``) may read it: a token limited to some projects gets 403 (any valid token used to read it,
learning the other tenants' activity). Without tokens (a loopback server) anyone local reads it, as before.

Against real ``mcp-memory serve --transport http`` processes."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from mcp_memory.server.auth import generate_token
from tests.http_helpers import ServerProcess, auth, connect, ok, server_env, token_config

pytestmark = pytest.mark.anyio

PROJECT_A, PROJECT_B = str(uuid.uuid4()), str(uuid.uuid4())
TOKEN_A, TOKEN_ALL = generate_token(), generate_token()


async def test_only_a_token_of_every_project_reads_metrics(tmp_path: Path) -> None:
    tokens = token_config(("team-a", TOKEN_A, [PROJECT_A, PROJECT_B]), ("ops", TOKEN_ALL, ["*"]))
    with ServerProcess(server_env(tmp_path / "memory.db", MCP_MEMORY_HTTP__TOKENS=tokens)) as server:
        scope = {"project_id": PROJECT_A, "agent_instance_id": str(uuid.uuid4()), "session_id": "s"}
        async with connect(server.url, TOKEN_A) as client:
            await ok(client, "spawn", **scope)  # a tenant's activity, which the counts show
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as h:
            assert (await h.get("/metrics")).status_code == 401
            refused = await h.get("/metrics", headers=auth(TOKEN_A))
            assert refused.status_code == 403
            assert refused.json()["error"] == "forbidden" and "mcp_memory_" not in refused.text
            allowed = await h.get("/metrics", headers=auth(TOKEN_ALL))
            assert allowed.status_code == 200 and allowed.headers["content-type"].startswith("text/plain")
            assert 'mcp_memory_tool_calls_total{tool="spawn"} 1.0' in allowed.text
            assert 'mcp_memory_http_rejected_requests_total{reason="forbidden"} 1.0' in allowed.text


async def test_without_tokens_metrics_need_none(tmp_path: Path) -> None:
    with ServerProcess(server_env(tmp_path / "memory.db")) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as h:
            r = await h.get("/metrics")
            assert r.status_code == 200 and "mcp_memory_tool_calls_total" in r.text
