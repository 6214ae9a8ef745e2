"""The ``key`` argument of memory_set, memory_get and memory_delete tells the model the server's own key limit
(``max_key_length``), not the default's: a model that keeps to the description is never refused ``too_large``.
Through the SDK's in-process client."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from mcp import Client

from mcp_memory.server import create_server

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("limit", [16, 256, 1000])
async def test_the_key_description_names_the_configured_limit(make_settings: Any, limit: int) -> None:
    async with Client(create_server(make_settings(max_key_length=limit))) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        for name in ("memory_set", "memory_get", "memory_delete"):
            assert tools[name].input_schema["properties"]["key"]["description"] == f"Up to {limit} chars."
        # The limit described is the limit kept.
        scope = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s"}
        assert not (await c.call_tool("spawn", scope)).is_error
        assert not (await c.call_tool("memory_set", {**scope, "key": "k" * limit, "value": 1})).is_error
        result = await c.call_tool("memory_set", {**scope, "key": "k" * (limit + 1), "value": 1})
        assert result.is_error
        assert result.content[0].text.startswith("too_large: ")  # type: ignore[union-attr]
