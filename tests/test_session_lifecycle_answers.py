"""What the lifecycle tools tell a model, on every store (issue 12, item 8), through the SDK's in-process client.

- ``spawn`` of a terminated session says it is terminated for good (it used to suggest ``resume``, which fails).
- ``terminate`` takes the episode's ``task_type`` (default ``session_completion``).
- Pause semantics: a paused session accepts writes; it stays ``paused`` (pause is a durable checkpoint, not a
  lock) until ``resume``, which restores the checkpoint over what was written since (``clear_current=false``
  keeps keys the checkpoint does not have).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.server import create_server
from tests.http_helpers import error, ok

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


def new_scope() -> dict[str, str]:
    return {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "work-1"}


async def session(c: Client, scope: dict[str, str]) -> Any:
    uri = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}".format(**scope)
    return json.loads((await c.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]


async def test_spawn_of_a_terminated_session_says_it_is_terminated_for_good(settings: Settings) -> None:
    scope = new_scope()
    async with Client(create_server(settings)) as c:
        await ok(c, "spawn", **scope)
        await ok(c, "terminate", **scope)
        text = await error(c, "spawn", **scope)
        assert text.startswith("conflict: ") and "terminated for good" in text, text
        assert "resume" not in text, text
        # What it says holds: resume fails too, and a new session_id works.
        assert (await error(c, "resume", **scope)).startswith("conflict: ")
        await ok(c, "spawn", **{**scope, "session_id": "work-2"})
        # A paused session's spawn still points at resume (which works).
        paused = {**scope, "session_id": "work-3"}
        await ok(c, "spawn", **paused)
        await ok(c, "pause", **paused)
        assert "use resume" in await error(c, "spawn", **paused)


async def test_terminate_records_the_episode_with_the_given_task_type(settings: Settings) -> None:
    scope = new_scope()
    async with Client(create_server(settings)) as c:
        await ok(c, "spawn", **scope, initial_state={"step": 3})
        done = await ok(c, "terminate", **scope, task_type="deployment", task_description="ship billing")
        uri = f"memory://projects/{scope['project_id']}/episodes/{done['episode_id']}"
        episode = json.loads((await c.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        assert episode["task_type"] == "deployment"
        hits = await ok(c, "search_episodes", project_id=scope["project_id"], query="billing", task_type="deployment")
        assert [h["episode_id"] for h in hits["episodes"]] == [done["episode_id"]]
        # Without task_type: the default.
        other = {**scope, "session_id": "work-2"}
        await ok(c, "spawn", **other)
        default = await ok(c, "terminate", **other)
        uri = f"memory://projects/{scope['project_id']}/episodes/{default['episode_id']}"
        episode = json.loads((await c.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        assert episode["task_type"] == "session_completion"
        # An empty task_type is refused and nothing is terminated.
        third = {**scope, "session_id": "work-3"}
        await ok(c, "spawn", **third)
        assert (await error(c, "terminate", **third, task_type="")).startswith("invalid_argument: ")
        assert (await session(c, third))["status"] == "running"


async def test_a_paused_session_accepts_writes_stays_paused_and_resume_restores_the_checkpoint(
    settings: Settings,
) -> None:
    scope = new_scope()
    async with Client(create_server(settings)) as c:
        await ok(c, "spawn", **scope, initial_state={"plan": "a", "keep": 1})
        await ok(c, "pause", **scope)
        # Writes after pause are accepted (set and delete) and readable; the status stays paused.
        await ok(c, "memory_set", **scope, key="plan", value="b")
        await ok(c, "memory_set", **scope, key="late", value=True)
        assert (await ok(c, "memory_delete", **scope, key="keep"))["deleted"] is True
        assert (await ok(c, "memory_get", **scope, key="plan"))["value"] == "b"
        state = await session(c, scope)
        assert state["status"] == "paused"
        assert state["working_memory"] == {"plan": "b", "late": True}
        # resume (clear_current=true) restores the checkpoint over them: the writes since pause are gone.
        await ok(c, "resume", **scope)
        state = await session(c, scope)
        assert state["status"] == "running" and state["working_memory"] == {"plan": "a", "keep": 1}
        # clear_current=false merges: checkpoint keys win, keys the checkpoint lacks stay.
        await ok(c, "pause", **scope)
        await ok(c, "memory_set", **scope, key="plan", value="c")
        await ok(c, "memory_set", **scope, key="late", value=2)
        await ok(c, "resume", **scope, clear_current=False)
        assert (await session(c, scope))["working_memory"] == {"plan": "a", "keep": 1, "late": 2}
