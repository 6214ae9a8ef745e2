"""The README's example session ("What a session looks like from the model's side") is run against a real server,
call by call, and each answer it shows whole is what the server answers: the same fields, the same counts, and
times and ids of the same shape (a time with its microseconds, as the server writes it). An id or a time shown
differs in its digits only; an answer the README shortens (``...`` outside a string) is not compared."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.server.assembly import create_server

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## What a session looks like from the model's side"


def example_calls() -> list[tuple[str, dict[str, Any], Any]]:
    """Each ``-> tool {args}`` of the section, in order, with the answer shown after it (None if it shows none, or
    only part of one)."""
    text = README.read_text()
    start = text.index(SECTION)
    section = text[start : text.index("\n## ", start + 1)]
    calls: list[tuple[str, dict[str, Any], Any]] = []
    for line in section.splitlines():
        if line.startswith("-> "):
            tool, args = line[3:].split(None, 1)
            calls.append((tool, json.loads(args), None))
        elif line.startswith("<- ") and calls:
            try:
                shown = json.loads(line[3:])
            except json.JSONDecodeError:
                continue  # shortened (or not JSON): nothing to compare
            tool, args, _ = calls[-1]
            calls[-1] = (tool, args, shown)
    return calls


def shape(value: str) -> str:
    """A time or an id with its digits and letters after the first three characters made alike."""
    return value[:3] + re.sub(r"[0-9A-Z]", "0", value[3:])


def differences(shown: dict[str, Any], real: dict[str, Any]) -> list[str]:
    if list(shown) != list(real):
        return [f"fields {list(shown)} shown, {list(real)} answered"]
    out = []
    for key, value in shown.items():
        answered = real[key]
        if isinstance(value, str) and key.endswith("_at"):
            if shape(value) != shape(answered):
                out.append(f"{key}: {value!r} shown, the server answers times such as {answered!r}")
        elif isinstance(value, str) and value.endswith("..."):
            if not answered.startswith(value[:3]):
                out.append(f"{key}: {value!r} shown, {answered!r} answered")
        elif value != answered:
            out.append(f"{key}: {value!r} shown, {answered!r} answered")
    return out


async def test_the_readme_example_answers_are_what_the_server_answers(tmp_path: Path) -> None:
    calls = example_calls()
    assert sum(shown is not None for _, _, shown in calls) >= 3, calls
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}",
        project_id=uuid.uuid4(),
        agent_instance_id=uuid.uuid4(),
        embedding_provider="hash",
    )
    problems: list[str] = []
    async with Client(create_server(settings)) as c:
        for tool, args, shown in calls:
            result = await c.call_tool(tool, args)
            assert not result.is_error, (tool, result.content)
            if shown is not None:
                problems += [f"{tool}: {d}" for d in differences(shown, result.structured_content or {})]
    assert not problems, "\n".join(problems)
