"""Identity without invented UUIDs (issue 12, item 1): calls that name no project or agent use a default.

- stdio with nothing configured: the installation's identity (``identity.json`` in the user's data directory, made
  once), shared by every server process of the installation, so a second conversation finds the first's session.
  ``mcp-memory doctor`` shows it.
- ``MCP_MEMORY_PROJECT_ID`` / ``MCP_MEMORY_AGENT_INSTANCE_ID`` configure them (and win over the installation's).
- over HTTP a token may name its ``default_project`` and ``default_agent``.
- no default and no argument: ``invalid_argument`` naming the argument, nothing written.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from pydantic import ValidationError

from mcp_memory.config import Settings
from mcp_memory.config_sections import TokenSettings
from mcp_memory.server import create_server
from mcp_memory.server.auth import generate_token, hash_token
from tests import http_helpers
from tests import test_stdio as stdio_helpers

pytestmark = pytest.mark.anyio


def identity_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "mcp-memory" / "identity.json"


async def test_two_stdio_servers_without_configuration_share_the_installation_identity(tmp_path: Path) -> None:
    env = stdio_helpers.server_env(tmp_path)  # same database file, same data directory, no UUID configured
    async with stdio_helpers.Session(env) as first:
        await first.ok("spawn", session_id="notes", initial_state={"goal": "write the report"})
        await first.ok("memory_set", session_id="notes", key="done", value=["outline"])
        await first.ok("pause", session_id="notes")
    stored = json.loads(identity_file(tmp_path).read_text())
    project, agent = stored["project_id"], stored["agent_instance_id"]
    assert uuid.UUID(project) and uuid.UUID(agent)

    async with stdio_helpers.Session(env) as second:
        resumed = await second.ok("resume", session_id="notes")
        assert resumed["items_restored"] == 2
        assert (await second.ok("memory_get", session_id="notes", key="done"))["value"] == ["outline"]
        # The defaults are the stored identity: the same session under its explicit UUIDs.
        uri = f"memory://projects/{project}/agents/{agent}/sessions/notes"
        assert (await second.read(uri))["working_memory"]["goal"] == "write the report"
    assert json.loads(identity_file(tmp_path).read_text()) == stored  # made once

    doctor = await anyio.run_process([str(stdio_helpers.EXE), "doctor"], env=env, check=False)
    report = json.loads(doctor.stdout)
    assert report["identity"]["project_id"] == project and report["identity"]["agent_instance_id"] == agent
    assert report["identity"]["identity_file"] == str(identity_file(tmp_path))


async def test_configured_defaults_win_over_the_installation_identity(tmp_path: Path) -> None:
    project, agent = str(uuid.uuid4()), str(uuid.uuid4())
    env = stdio_helpers.server_env(tmp_path, MCP_MEMORY_PROJECT_ID=project, MCP_MEMORY_AGENT_INSTANCE_ID=agent)
    async with stdio_helpers.Session(env) as s:
        await s.ok("spawn", session_id="cfg", initial_state={"k": 1})
        uri = f"memory://projects/{project}/agents/{agent}/sessions/cfg"
        assert (await s.read(uri))["working_memory"] == {"k": 1}
    assert not identity_file(tmp_path).exists()  # nothing left to fill in: no identity generated


async def test_a_tokens_default_project_and_agent_apply_over_http(tmp_path: Path) -> None:
    project, agent, other = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    with_defaults, bare = generate_token(), generate_token()
    tokens = [
        {
            "name": "desk",
            "sha256": hash_token(with_defaults),
            "projects": [project, other],
            "default_project": project,
            "default_agent": agent,
        },
        {"name": "bare", "sha256": hash_token(bare), "projects": [other]},
    ]
    env = http_helpers.server_env(tmp_path / "memory.db", MCP_MEMORY_HTTP__TOKENS=json.dumps(tokens))
    with http_helpers.ServerProcess(env) as server:
        async with http_helpers.connect(server.url, with_defaults) as c:
            await http_helpers.ok(c, "spawn", session_id="remote", initial_state={"k": "v"})
            assert (await http_helpers.ok(c, "memory_get", session_id="remote", key="k"))["value"] == "v"
            uri = f"memory://projects/{project}/agents/{agent}/sessions/remote"
            assert (await http_helpers.read(c, uri))["working_memory"] == {"k": "v"}
            # An explicit argument wins over the token's default.
            await http_helpers.ok(c, "spawn", project_id=other, session_id="elsewhere")
            listed = await http_helpers.ok(c, "memory_list", project_id=other, session_id="elsewhere")
            assert listed["keys"] == []
        async with http_helpers.connect(server.url, bare) as c:
            text = await http_helpers.error(c, "spawn", session_id="remote")
            assert text.startswith("invalid_argument: project_id is required"), text
            text = await http_helpers.error(c, "spawn", project_id=other, session_id="remote")
            assert text.startswith("invalid_argument: agent_instance_id is required"), text


def test_a_tokens_default_project_must_be_one_of_its_projects() -> None:
    project = str(uuid.uuid4())
    with pytest.raises(ValidationError, match="default_project"):
        TokenSettings(name="t", sha256="0" * 64, projects=[project], default_project=uuid.uuid4())
    TokenSettings(name="t", sha256="0" * 64, projects=["*"], default_project=uuid.uuid4())


async def test_a_call_without_scope_and_without_defaults_is_invalid_argument(settings: Settings) -> None:
    project = str(uuid.uuid4())
    async with Client(create_server(settings)) as c:
        result = await c.call_tool("spawn", {"session_id": "s"})
        assert result.is_error
        assert result.content[0].text.startswith("invalid_argument: project_id is required")  # type: ignore[union-attr]
        result = await c.call_tool("memory_set", {"project_id": project, "session_id": "s", "key": "k", "value": 1})
        assert result.is_error
        text: str = result.content[0].text  # type: ignore[union-attr]
        assert text.startswith("invalid_argument: agent_instance_id is required"), text
        result = await c.call_tool(
            "record_episode", {"project_id": project, "task_type": "t", "task_description": "d", "outcome": "success"}
        )
        assert result.is_error and "agent_instance_id" in result.content[0].text  # type: ignore[union-attr]
        # Nothing was written.
        hits = await c.call_tool("search_episodes", {"project_id": project, "query": "d"})
        assert hits.structured_content == {"episodes": []}


async def test_a_configured_default_agent_applies_in_process(settings: Settings) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    configured = settings.model_copy(update={"project_id": project, "agent_instance_id": agent})
    async with Client(create_server(configured)) as c:
        result: Any = await c.call_tool("spawn", {"session_id": "s", "initial_state": {"a": 1}})
        assert not result.is_error
        uri = f"memory://projects/{project}/agents/{agent}/sessions/s"
        body = json.loads((await c.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        assert body["working_memory"] == {"a": 1}
        result = await c.call_tool("memory_prompt", {"session_id": "s"})
        assert not result.is_error and result.structured_content["session_status"] == "running"
