"""Arguments are checked strictly before anything is written: unknown tool arguments, lone surrogates in any
text, and project and agent ids that are not canonical UUIDs are ``invalid_argument``."""

from __future__ import annotations

import uuid

import pytest
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.errors import InvalidArgument
from mcp_memory.models import Scope
from mcp_memory.server import create_server
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis")]


async def test_unknown_tool_arguments_are_refused(settings: Settings) -> None:
    server = create_server(settings)
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    s = {"project_id": p, "agent_instance_id": a, "session_id": "s1"}
    async with Client(server) as c:
        await c.call_tool("spawn", s)
        result = await c.call_tool("memory_set", {**s, "key": "k", "value": 1, "ttl": 60})
        assert result.is_error
        assert result.content[0].text.startswith("invalid_argument: unknown argument(s) for memory_set: ttl")  # type: ignore[union-attr]
        assert (await c.call_tool("memory_list", s)).structured_content == {"keys": []}


async def test_lone_surrogates_are_invalid_arguments(runtime: MemoryRuntime, scope: Scope) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s)
    for call in (
        lambda: runtime.working.set(scope, "bad\ud800", 1),
        lambda: runtime.working.set(scope, "k", "bad\ud800"),
        lambda: runtime.working.list_keys(scope, "\ud800"),
        lambda: runtime.episodic.record_episode(
            project_id=p, agent_instance_id=a, task_type="t", task_description="x\ud800", outcome="success"
        ),
        lambda: runtime.lifecycle.pause(p, a, s, label="\ud800"),
    ):
        with pytest.raises(InvalidArgument, match="surrogate"):
            await call()
    assert await runtime.working.list_keys(scope) == []


@pytest.mark.parametrize(
    "value",
    [
        "123e4567e89b12d3a456426614174000",
        "{123e4567-e89b-12d3-a456-426614174000}",
        "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
    ],
)
async def test_only_canonical_uuids(runtime: MemoryRuntime, value: str) -> None:
    with pytest.raises(InvalidArgument, match="project_id"):
        await runtime.lifecycle.spawn(value, uuid.uuid4(), "s1")
    upper = "123E4567-E89B-12D3-A456-426614174000"  # either case is canonical enough; stored lower-case
    result = await runtime.lifecycle.spawn(upper, uuid.uuid4(), "s1")
    assert result.success


async def test_an_importance_too_large_for_a_float_is_invalid_argument(runtime: MemoryRuntime, scope: Scope) -> None:
    """Through the Python API an integer past a double is out of range like 1.5 (``invalid_argument``, its hundreds
    of digits not echoed), not an overflow of the float conversion (``internal``); nothing is recorded."""
    p, a = scope.project_id, scope.agent_instance_id
    kept = await runtime.episodic.record_episode(
        project_id=p, agent_instance_id=a, task_type="t", task_description="kept", outcome="success"
    )
    for call in (
        lambda: runtime.episodic.record_episode(
            project_id=p,
            agent_instance_id=a,
            task_type="t",
            task_description="refused",
            outcome="success",
            importance_score=10**400,
        ),
        lambda: runtime.episode_control.update(p, kept.episode_id, importance_score=10**400),
    ):
        with pytest.raises(InvalidArgument) as caught:
            await call()
        assert (
            str(caught.value)
            == "invalid_argument: importance_score must be between 0 and 1, got an integer of 401 digits"
        )
    assert [e.importance_score for e in await runtime.episodic.recent(p)] == [0.5]
