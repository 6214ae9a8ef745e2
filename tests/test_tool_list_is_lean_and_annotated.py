"""``tools/list`` is paid for in every conversation: the whole list within one budget as compact JSON, annotated.

Issue 12: the list was 18.2 KB (the scope triple repeated in every tool, output schemas, generated per-field
titles, indented docstrings). Every tool carries a title and all four hints, set explicitly (openWorldHint false:
the store is closed); every argument is described except the scope triple, which the server's instructions
describe once; results are compact JSON text next to their structured content.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import TextContent

from mcp_memory.config import Settings
from mcp_memory.server import create_server

pytestmark = pytest.mark.anyio

MAX_TOOL_LIST_BYTES = 9 * 1000
"""The default list (the tools an agent works with every day: lifecycle, working memory, episodes, sessions,
briefing) as compact JSON."""
OWNER_TOOLS = {"forget_episodes", "update_episode", "delete_session", "delete_checkpoint"}
"""Offered only with ``owner_tools`` on; each carries a budget of its own."""
MAX_OWNER_TOOL_BYTES = 850
README = Path(__file__).resolve().parent.parent / "README.md"
SCOPE = {"project_id", "agent_instance_id", "session_id"}
"""Described once, in the instructions (``session_id`` as a session's name; in record_episode it is a filter)."""


def compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


async def tool_list(settings: Settings) -> tuple[list[dict[str, Any]], str | None]:
    async with Client(create_server(settings)) as c:
        result = await c.list_tools()
        instructions = c.instructions
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)["tools"], instructions


async def test_the_default_tool_list_is_at_most_9_kb_as_compact_json(make_settings: Any) -> None:
    tools, _ = await tool_list(make_settings(owner_tools=False))
    assert not OWNER_TOOLS & {t["name"] for t in tools}, "owner tools are off by default"
    size = len(compact({"tools": tools}).encode())
    assert size <= MAX_TOOL_LIST_BYTES, f"the {len(tools)} default tools are {size} bytes as compact JSON"


async def test_owner_tools_are_offered_when_turned_on_each_within_its_budget(make_settings: Any) -> None:
    tools, _ = await tool_list(make_settings(owner_tools=True))
    owner = [t for t in tools if t["name"] in OWNER_TOOLS]
    assert {t["name"] for t in owner} == OWNER_TOOLS
    for tool in owner:
        own = len(compact(tool).encode())
        assert own <= MAX_OWNER_TOOL_BYTES, f"{tool['name']} is {own} bytes; its budget is {MAX_OWNER_TOOL_BYTES}"


async def test_every_tool_has_a_title_and_all_four_hints(settings: Settings) -> None:
    tools, _ = await tool_list(settings)
    assert len(tools) >= 12
    for tool in tools:
        assert tool.get("title"), tool["name"]
        hints = tool.get("annotations", {})
        for hint in ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"):
            assert isinstance(hints.get(hint), bool), f"{tool['name']}: {hint} not set"
        assert hints["openWorldHint"] is False, tool["name"]
    by_name = {t["name"]: t["annotations"] for t in tools}
    for name in ("memory_get", "memory_list", "list_checkpoints", "search_episodes", "memory_prompt"):
        assert by_name[name]["readOnlyHint"] is True, name
    # Destructive: may delete or replace what is stored (a pause prunes the checkpoints past the bound, an update
    # replaces an episode's lessons); the others only add or read.
    destructive = {name for name, hints in by_name.items() if hints["destructiveHint"]}
    assert destructive - OWNER_TOOLS == {"pause", "resume", "terminate", "memory_set", "memory_delete"}
    assert destructive & OWNER_TOOLS == {"delete_session", "delete_checkpoint", "forget_episodes", "update_episode"}
    assert OWNER_TOOLS <= set(by_name)
    assert not any(by_name[name]["readOnlyHint"] for name in destructive)


async def test_schemas_are_lean_and_every_argument_is_described(settings: Settings) -> None:
    tools, instructions = await tool_list(settings)
    for tool in tools:
        name = tool["name"]
        assert "outputSchema" not in tool, f"{name}: output schemas are left out (structuredContent stays)"
        assert "\n " not in tool["description"], f"{name}: description carries a docstring's indentation"
        for arg, prop in tool["inputSchema"].get("properties", {}).items():
            assert "title" not in prop, f"{name}.{arg}: generated title"
            assert "anyOf" not in prop, f"{name}.{arg}: optional arguments are published as their type"
            if arg not in SCOPE:
                assert prop.get("description"), f"{name}.{arg} is not described"
        required = tool["inputSchema"].get("required", [])
        assert "project_id" not in required and "agent_instance_id" not in required, name
    assert instructions is not None
    for arg in SCOPE:
        assert arg in instructions, f"the instructions describe {arg}"
    props = {t["name"]: t["inputSchema"]["properties"] for t in tools}
    assert props["search_episodes"]["since"]["format"] == "date-time"
    assert "string" in props["memory_set"]["value"]["type"] and "object" in props["memory_set"]["value"]["type"]
    assert props["spawn"]["session_id"]["pattern"] == "^[A-Za-z0-9._-]{1,128}$"
    assert props["terminate"]["task_type"]["default"] == "session_completion"


async def test_result_text_is_the_compact_json_of_the_structured_result(settings: Settings) -> None:
    scope = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s"}
    async with Client(create_server(settings)) as c:
        await c.call_tool("spawn", {**scope, "initial_state": {"k": {"nested": [1, "é"]}}})
        result = await c.call_tool("memory_get", {**scope, "key": "k"})
    assert not result.is_error
    assert len(result.content) == 1 and isinstance(result.content[0], TextContent)
    assert result.content[0].text == compact(result.structured_content)
    assert result.structured_content == {"key": "k", "value": {"nested": [1, "é"]}}


async def test_the_readme_tool_tables_list_exactly_the_served_tools(make_settings: Any) -> None:
    """The README's tool table is the default ``tools/list``, its owner-tools table what ``owner_tools`` adds."""
    readme = README.read_text()

    def names(heading: str) -> set[str]:
        start = readme.index(heading)
        table = readme[start : readme.index("\n#", start + 1)]
        return {row.split("`")[1] for row in table.splitlines() if row.startswith("| `")}

    default, _ = await tool_list(make_settings(owner_tools=False))
    everything, _ = await tool_list(make_settings(owner_tools=True))
    assert names("## Tools") == {t["name"] for t in default}
    assert names("### Owner tools") == {t["name"] for t in everything} - {t["name"] for t in default} == OWNER_TOOLS
