"""A PIN, a one-time code or a password stored as a number is withheld from the briefing and from the summary that
terminate stores in the session's episode (which every agent of the project can search), as a string one is; a
count such as ``max_tokens`` is still shown. Over MCP (the SDK's in-process client), on SQLite and Redis + SQLite."""

from __future__ import annotations

import uuid

import pytest
from mcp import Client

from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime
from tests.http_helpers import ok

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis")]

SECRETS = {"bank_pin": 4821, "otp": 739201, "password": 12345678, "card_cvv": 123, "api_key": "abc-def"}


async def test_numbers_under_secret_keys_are_named_never_shown(runtime: MemoryRuntime) -> None:
    scope = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s"}
    async with Client(create_server(runtime=runtime)) as client:
        await ok(client, "spawn", **scope, initial_state={**SECRETS, "max_tokens": 4096})
        briefing = (await ok(client, "memory_prompt", **scope))["text"]
        await ok(client, "terminate", **scope, task_description="pay the invoice")
        found = await ok(client, "search_episodes", project_id=scope["project_id"], query="invoice")
    summary = found["episodes"][0]["context_summary"]
    for text in (briefing, summary):
        for key, value in SECRETS.items():
            assert f"{key}: (" in text and "withheld" in text, (key, text)
            assert str(value) not in text, (key, text)
        assert "max_tokens: 4096" in text
