"""The ``resume_briefing`` prompt and its tool twin ``memory_prompt``, from the SDK's real client over stdio and
Streamable HTTP (``mcp-memory serve`` subprocesses), on SQLite and on Redis + SQLite.

A starting agent gets, in one read: its session's status and state summary, the newest checkpoints, and the
past episodes relevant to its task with their lessons, within a token budget (estimated as UTF-8 bytes / 4).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, TextContent

from mcp_memory.server.auth import generate_token
from tests.http_helpers import EXE, ServerProcess, connect, error, ok, server_env, token_config

pytestmark = pytest.mark.anyio

TIMEOUT = 120
TASK = "deploy the billing service"
SECRET = "sk-live-0123456789abcdefSECRET"


def _env(tmp_path: Path, backend_settings: dict[str, Any], **extra: str) -> dict[str, str]:
    env = server_env(tmp_path / "unused.db", **extra)
    env["MCP_MEMORY_DATABASE_URL"] = backend_settings["database_url"]
    if "redis_url" in backend_settings:
        env["MCP_MEMORY_REDIS_URL"] = backend_settings["redis_url"]
        env["MCP_MEMORY_REDIS_KEY_PREFIX"] = backend_settings["redis_key_prefix"]
    return env


@asynccontextmanager
async def client_over(transport: str, env: dict[str, str], token: str | None = None) -> AsyncIterator[Client]:
    """A real SDK client of a fresh ``mcp-memory serve`` subprocess."""
    if transport == "stdio":
        params = StdioServerParameters(command=str(EXE), args=["serve"], env=env)
        async with Client(params, read_timeout_seconds=TIMEOUT) as c:
            yield c
        return
    with ServerProcess(env) as proc:
        async with connect(proc.url, token) as c:
            yield c


@dataclass
class World:
    project: str
    agent: str
    session: str
    checkpoints: list[str]
    """Newest first."""
    own_episode: str
    other_episode: str


async def seed(c: Client, project: str) -> World:
    """A paused session with two checkpoints; two relevant episodes (the agent's own and another's), one not."""
    agent, other = str(uuid.uuid4()), str(uuid.uuid4())
    s = {"project_id": project, "agent_instance_id": agent, "session_id": "deploy-billing"}
    state = {"goal": "deploy billing to staging", "step": 3, "api_key": SECRET, "hosts": ["a", "b"]}
    await ok(c, "spawn", **s, initial_state=state)
    first = (await ok(c, "pause", **s, label="before migrations"))["checkpoint_id"]
    await ok(c, "memory_set", **s, key="step", value=4)
    second = (await ok(c, "pause", **s, label="after migrations"))["checkpoint_id"]

    async def episode(who: str, task: str, outcome: str, lessons: list[str]) -> str:
        args = {"project_id": project, "agent_instance_id": who, "task_type": "deployment"}
        done = await ok(c, "record_episode", **args, task_description=task, outcome=outcome, lessons_learned=lessons)
        return str(done["episode_id"])

    own = await episode(agent, "Deploy the billing service to staging", "failure", ["Run migrations before workers"])
    theirs = await episode(other, "Deploy the billing service to production", "success", ["Use a canary first"])
    await episode(other, "Write the quarterly newsletter", "success", ["Keep it short"])
    return World(project, agent, "deploy-billing", [second, first], own, theirs)


def prompt_text(result: Any) -> str:
    assert len(result.messages) == 1 and result.messages[0].role == "user"
    content = result.messages[0].content
    assert isinstance(content, TextContent)
    return content.text


def tokens(text: str) -> float:
    return len(text.encode()) / 4


@pytest.mark.parametrize("transport", ["stdio", "http"])
@pytest.mark.backends("sqlite", "redis")
async def test_briefing_prompt_and_tool_give_state_checkpoints_and_episodes_within_budget(
    transport: str, backend_settings: dict[str, Any], tmp_path: Path
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with client_over(transport, _env(tmp_path, backend_settings)) as c:
            # The prompts capability is declared, and prompts/list shows it, every argument described, none
            # required (all have a default).
            assert c.server_capabilities.prompts is not None
            prompts = {p.name: p for p in (await c.list_prompts()).prompts}
            brief = prompts["resume_briefing"]
            assert brief.description and "token budget" in brief.description
            args = {a.name: a for a in brief.arguments or []}
            assert set(args) == {"task", "session_id", "agent_instance_id", "project_id", "token_budget"}
            assert all(a.description and not a.required for a in args.values())

            w = await seed(c, str(uuid.uuid4()))
            scope = {"project_id": w.project, "agent_instance_id": w.agent, "session_id": w.session}
            text = prompt_text(await c.get_prompt("resume_briefing", {"task": TASK, **scope}))

            assert text.startswith(f"# Briefing: {TASK}")
            assert "Status **paused**" in text
            assert '- goal: "deploy billing to staging"' in text and "- step: 4" in text
            assert SECRET not in text and "withheld" in text
            assert text.index(w.checkpoints[0]) < text.index(w.checkpoints[1]), "newest checkpoint first"
            assert '"after migrations", 4 keys' in text
            assert "Run migrations before workers" in text and "Use a canary first" in text
            assert text.index("Run migrations") < text.index("Use a canary"), "the agent's own episode first"
            assert text.index("Status") < text.index(w.checkpoints[0]) < text.index("Run migrations")
            assert f'`resume` session_id "{w.session}"' in text
            assert tokens(text) <= 1500 and "Left out" not in text

            # The tool gives the same briefing as its text, and what it holds as structured content.
            result = await c.call_tool("memory_prompt", {"task": TASK, **scope})
            assert not result.is_error
            assert isinstance(result.content[0], TextContent) and result.content[0].text == text
            data = result.structured_content
            assert data is not None and data["text"] == text
            assert data["session_status"] == "paused" and data["checkpoint_ids"] == w.checkpoints
            assert data["episode_ids"][:2] == [w.own_episode, w.other_episode]
            assert data["tokens"] <= 1500 and data["left_out"] == []

            # A small budget: shorter, within it, still leading with the session and its state; it says what is out.
            small = prompt_text(await c.get_prompt("resume_briefing", {"task": TASK, **scope, "token_budget": "120"}))
            assert tokens(small) <= 120 < tokens(text)
            assert small.startswith(f"# Briefing: {TASK}")
            assert "Status **paused**" in small and '- goal: "deploy billing to staging"' in small
            assert "Left out (token_budget 120)" in small and "Use a canary first" not in small
            tool_small = await ok(c, "memory_prompt", task=TASK, **scope, token_budget=120)
            assert tool_small["text"] == small and tool_small["left_out"]

            # Bad arguments: a clear invalid-params error naming the problem, never a generic rendering failure.
            for bad, expected in [
                ({"token_budget": "lots"}, "invalid_argument: token_budget must be a whole number"),
                ({"token_budget": "²"}, "invalid_argument: token_budget must be a whole number"),  # a digit to isdigit
                ({"token_budget": "1e3"}, "invalid_argument: token_budget must be a whole number"),
                ({"token_budget": "5"}, "invalid_argument: token_budget must be from 100"),
                ({"budget": "100"}, "invalid_argument: unknown argument(s) for resume_briefing: budget"),
                ({"session_id": "no-such-session"}, "not_found: session 'no-such-session'"),
            ]:
                with pytest.raises(MCPError) as info:
                    await c.get_prompt("resume_briefing", {**scope, **bad})
                assert info.value.error.code == INVALID_PARAMS and info.value.error.message.startswith(expected)
            assert (await error(c, "memory_prompt", **scope, token_budget="lots")).startswith("invalid_argument:")
            assert (await error(c, "memory_prompt", **scope, token_budget=5)).startswith("invalid_argument:")


@pytest.mark.backends("sqlite")
async def test_briefing_of_a_project_outside_the_token_is_forbidden(
    backend_settings: dict[str, Any], tmp_path: Path
) -> None:
    token_a, token_b = generate_token(), generate_token()
    project_a, project_b = str(uuid.uuid4()), str(uuid.uuid4())
    env = _env(
        tmp_path,
        backend_settings,
        MCP_MEMORY_HTTP__TOKENS=token_config(("a", token_a, [project_a]), ("b", token_b, [project_b])),
    )
    with anyio.fail_after(TIMEOUT), ServerProcess(env) as proc:
        async with connect(proc.url, token_b) as c:
            w = await seed(c, project_b)
            scope = {"project_id": w.project, "agent_instance_id": w.agent, "session_id": w.session}
            assert "Use a canary first" in prompt_text(await c.get_prompt("resume_briefing", {"task": TASK, **scope}))
        async with connect(proc.url, token_a) as c:
            messages = []
            for target in (scope, {**scope, "session_id": "no-such-session"}, {"project_id": project_b}):
                with pytest.raises(MCPError) as info:
                    await c.get_prompt("resume_briefing", {"task": TASK, **target})
                assert info.value.error.code == INVALID_PARAMS
                messages.append(info.value.error.message)
                assert messages[-1].startswith("forbidden: ") and "canary" not in messages[-1]
            assert len(set(messages)) == 1, "the answer does not tell whether the session exists"
            assert (await error(c, "memory_prompt", task=TASK, **scope)).startswith("forbidden: ")
            assert (await error(c, "memory_prompt", task=TASK, project_id=project_b)).startswith("forbidden: ")
