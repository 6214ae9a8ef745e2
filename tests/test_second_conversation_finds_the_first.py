"""Two conversations, two stdio server processes started from the README's Claude Desktop entry (no UUID anywhere):
the second finds the first's paused session using only what a model can know (the tool list, ``list_sessions``,
completions and the briefing prompt) and resumes it with its state.

The test's temporary directories stand in for the user's data and config directories (``XDG_DATA_HOME``,
``XDG_CONFIG_HOME``): the entry itself sets no environment, so the server picks its default SQLite file and the
installation's identity there, as it would on a desktop.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import PromptReference, TextContent

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent / "mcp-memory"
TIMEOUT = 60


def desktop_entry(home: Path) -> StdioServerParameters:
    """The server as Claude Desktop starts it from ``config/claude_desktop_config.json`` (the README's entry)."""
    entry = json.loads((ROOT / "config" / "claude_desktop_config.json").read_text())["mcpServers"]["memory"]
    assert "env" not in entry or not any("_ID" in k for k in entry["env"]), "the entry names no UUID"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env.update(XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"))
    env.update(entry.get("env", {}))
    return StdioServerParameters(command=str(EXE), args=entry["args"], env=env)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content[0].text}"  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


async def test_a_second_conversation_finds_and_resumes_the_first_ones_session(tmp_path: Path) -> None:
    params = desktop_entry(tmp_path)
    state = {"goal": "move auth to OAuth", "done": ["token model", "login route"], "next": "refresh tokens"}

    with anyio.fail_after(TIMEOUT):
        # Conversation 1: the model names its session, works, pauses, and the conversation ends.
        async with Client(params, read_timeout_seconds=TIMEOUT) as first:
            tools = {t.name: t for t in (await first.list_tools()).tools}
            assert "agent_instance_id" not in tools["spawn"].input_schema.get("required", [])
            await call(first, "spawn", session_id="oauth-migration", initial_state={"goal": state["goal"]})
            await call(first, "memory_set", session_id="oauth-migration", key="done", value=state["done"])
            await call(first, "memory_set", session_id="oauth-migration", key="next", value=state["next"])
            paused = await call(first, "pause", session_id="oauth-migration", label="end of day")
            await call(first, "spawn", session_id="unrelated-chore", initial_state={"goal": "tidy imports"})

        # Conversation 2: a new process, a model that knows nothing but what the server tells it.
        async with Client(params, read_timeout_seconds=TIMEOUT) as second:
            listed = await call(second, "list_sessions", status="paused")
            found = [s for s in listed["sessions"] if s["session_id"] == "oauth-migration"]
            assert found and found[0]["last_checkpoint"]["checkpoint_id"] == paused["checkpoint_id"]
            assert found[0]["last_checkpoint"]["label"] == "end of day"
            assert all(s["session_id"] != "unrelated-chore" for s in listed["sessions"]), "the status filter holds"

            # Completions: the briefing prompt's session_id completes from what is stored.
            prompts = {p.name: p for p in (await second.list_prompts()).prompts}
            assert "resume_briefing" in prompts
            completed = await second.complete(
                PromptReference(name="resume_briefing"), {"name": "session_id", "value": "oau"}
            )
            assert completed.completion.values == ["oauth-migration"]

            # The briefing tells the model what it had and what to call next.
            briefing = await second.get_prompt(
                "resume_briefing", {"session_id": "oauth-migration", "task": "finish the OAuth migration"}
            )
            text = "\n".join(m.content.text for m in briefing.messages if isinstance(m.content, TextContent))
            assert "paused" in text and "move auth to OAuth" in text and paused["checkpoint_id"] in text
            assert "resume" in text

            resumed = await call(second, "resume", session_id="oauth-migration")
            assert resumed["checkpoint_id"] == paused["checkpoint_id"] and resumed["items_restored"] == 3
            for key, value in state.items():
                assert (await call(second, "memory_get", session_id="oauth-migration", key=key))["value"] == value
