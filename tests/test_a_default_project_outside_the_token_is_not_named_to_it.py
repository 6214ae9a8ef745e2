"""A call that names no project falls back to ``MCP_MEMORY_PROJECT_ID``; for a token that does not cover that project
the answer is ``forbidden`` without the project's id. The caller never sent that id, so naming it told a token of
project A the id of another tenant's project (the server's default). A project the caller names itself is still
repeated: that tells it nothing it did not know."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from mcp_memory.server.auth import generate_token
from tests.http_helpers import TIMEOUT, ServerProcess, connect, error, server_env, token_config

pytestmark = pytest.mark.anyio

OWN, DEFAULT = str(uuid.uuid4()), str(uuid.uuid4())
TOKEN = generate_token()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("default-project") / "memory.db"
    env = server_env(db, MCP_MEMORY_HTTP__TOKENS=token_config(("team", TOKEN, [OWN])), MCP_MEMORY_PROJECT_ID=DEFAULT)
    with ServerProcess(env) as proc:
        yield proc


@pytest.mark.parametrize("transport", ["http", "http-legacy", "sse"])
async def test_a_defaulted_project_outside_the_token_is_forbidden_without_its_id(
    server: ServerProcess, transport: str
) -> None:
    agent = str(uuid.uuid4())
    with anyio.fail_after(TIMEOUT):
        async with connect(server.url, TOKEN, transport) as c:
            answers = [
                await error(c, "spawn", agent_instance_id=agent, session_id="s"),
                await error(c, "list_sessions"),
                await error(c, "search_episodes", query="anything"),
                await error(c, "memory_prompt", agent_instance_id=agent),
            ]
            with pytest.raises(MCPError) as info:
                await c.get_prompt("resume_briefing", {"agent_instance_id": agent})
            answers.append(info.value.error.message)
            for answer in answers:
                assert answer.startswith("forbidden: ") and "project_id" in answer, answer
                assert DEFAULT not in answer, answer
            # Named by the caller, the project may be repeated: the caller sent it.
            named = await error(c, "spawn", project_id=DEFAULT, agent_instance_id=agent, session_id="s")
            assert named.startswith("forbidden: ")
