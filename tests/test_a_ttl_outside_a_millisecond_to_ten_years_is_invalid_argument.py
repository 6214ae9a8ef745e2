"""A ``ttl_seconds`` is refused with ``invalid_argument`` unless it is from 0.001 (a millisecond, the finest expiry
Redis keeps) to ten years, through the Python API and over MCP alike, and nothing is written. Before, a TTL of
1e-7 or 5e-324 answered success for a key already dead, and an integer past float's range (10**400) escaped the
Python API as a raw ``OverflowError``.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from mcp_memory.errors import InvalidArgument
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.working import MAX_TTL_SECONDS
from tests.conftest import new_scope

pytestmark = pytest.mark.anyio

MILLISECOND = 0.001

REFUSED: list[Any] = [10**400, -(10**400), 1e-7, 5e-324, 0.0009, MAX_TTL_SECONDS + 1, float("nan"), float("inf")]


@pytest.mark.backends("sqlite", "redis", "postgres")
async def test_the_python_api_refuses_a_ttl_outside_its_range(runtime: MemoryRuntime) -> None:
    scope = new_scope()
    await runtime.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)
    for ttl in REFUSED:
        with pytest.raises(InvalidArgument, match=r"ttl_seconds must be at least 0\.001"):
            await runtime.working.set(scope, "k", 1, ttl)
    assert await runtime.working.list_keys(scope) == []
    expires = await runtime.working.set(scope, "k", 1, MILLISECOND)
    assert expires is not None
    assert await runtime.working.set(scope, "k", 1, MAX_TTL_SECONDS) is not None


async def test_memory_set_refuses_a_ttl_below_a_millisecond(runtime: MemoryRuntime, client: Client) -> None:
    scope = new_scope()
    await runtime.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)
    args = {"project_id": str(scope.project_id), "agent_instance_id": str(scope.agent_instance_id), "session_id": "s1"}
    for ttl in [1e-7, 5e-324, 0.0009, 10**400]:
        result = await client.call_tool("memory_set", {**args, "key": "k", "value": 1, "ttl_seconds": ttl})
        text = result.content[0].text  # type: ignore[union-attr]
        assert result.is_error and text.startswith("invalid_argument: ") and "ttl_seconds" in text, (ttl, text)
    assert await runtime.working.list_keys(scope) == []
    schema = (await client.list_tools()).tools
    ttl_schema = next(t for t in schema if t.name == "memory_set").input_schema["properties"]["ttl_seconds"]
    assert MILLISECOND in [branch.get("minimum") for branch in ttl_schema.get("anyOf", [ttl_schema])]
