"""The export resource (one session as an export file) over Streamable HTTP with tokens: a token for project A reads
A's session export (``application/jsonl``, a valid file that imports elsewhere); a token for project B is refused
with ``forbidden`` whether or not the session exists (no existence oracle); an unknown session of one's own project
is ``not_found``."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from mcp.shared.exceptions import MCPError

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.http_helpers import ServerProcess, connect, ok, server_env, token_config
from tests.transfer_helpers import comparable, export_to

pytestmark = pytest.mark.anyio

EXPORT = "memory://projects/{p}/agents/{a}/sessions/{s}/export"


async def test_export_resource_is_forbidden_to_another_projects_token(tmp_path: Path) -> None:
    a_project, b_project, agent = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    tokens = token_config(("a", "tok-a", [a_project]), ("b", "tok-b", [b_project]))
    with ServerProcess(server_env(tmp_path / "http.db", MCP_MEMORY_HTTP__TOKENS=tokens)) as server:
        async with connect(server.url, "tok-a") as a_client:
            scope = {"project_id": a_project, "agent_instance_id": agent, "session_id": "work"}
            await ok(a_client, "spawn", **scope, initial_state={"plan": "ship it"})
            await ok(a_client, "memory_set", **scope, key="draft", value={"v": 1}, ttl_seconds=600)
            await ok(a_client, "pause", **scope, label="half")
            templates = {t.uri_template for t in (await a_client.list_resource_templates()).resource_templates}
            assert EXPORT.format(p="{project_id}", a="{agent_instance_id}", s="{session_id}") in templates
            result = await a_client.read_resource(EXPORT.format(p=a_project, a=agent, s="work"))
            content = result.contents[0]
            assert content.mime_type == "application/jsonl"
            body = content.text.encode()  # type: ignore[union-attr]
            lines = [orjson.loads(line) for line in body.splitlines()]
            assert lines[0]["scope"] == {"project_id": a_project, "agent_instance_id": agent, "session_id": "work"}
            assert lines[0]["counts"]["sessions"] == 1 and lines[0]["counts"]["checkpoints"] == 1
            assert {r["key"] for r in lines if r["kind"] == "working"} == {"plan", "draft"}
            with pytest.raises(MCPError, match=r"^not_found: "):
                await a_client.read_resource(EXPORT.format(p=a_project, a=agent, s="nope"))
        async with connect(server.url, "tok-b") as b_client:
            for sid in ("work", "nope"):
                with pytest.raises(MCPError, match=r"^forbidden: "):
                    await b_client.read_resource(EXPORT.format(p=a_project, a=agent, s=sid))
    # The resource's body is an export file like the CLI's: it imports into another store.
    path = tmp_path / "resource.jsonl"
    path.write_bytes(body)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    async with MemoryRuntime(settings) as other:
        assert other.transfer is not None
        await other.transfer.import_file(path)
        sel = Selection(uuid.UUID(a_project), uuid.UUID(agent), "work")
        again = await export_to(other, sel, tmp_path / "again.jsonl")
        assert comparable(again)[0] == comparable(path)[0]
