"""A completion, a prompt and a resource read whose store stops answering (a private Postgres frozen with SIGSTOP)
answer once the call deadline (``call_timeout_seconds``) is spent, as a tool call does, each in its method's way
for a store that is down: the completion an empty list (the failure logged at WARNING: docs/contract.md,
"Completions"), the prompt and the read a JSON-RPC error -32603 ``unavailable: Postgres did not answer within the
call's deadline ...``. Once Postgres answers again the same client completes, as before.

Before, a completion ran outside any call deadline: on a stalled Postgres it waited for the store's own timeout
(``database_timeout_seconds``; here far longer than the test waits), holding one of its session's places on calls
in flight all along. Through the SDK's in-process client."""

from __future__ import annotations

import logging
import uuid

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ResourceTemplateReference

from mcp_memory.config import Settings
from mcp_memory.server import create_server
from tests.stalled_stores import PrivatePostgres, frozen

pytestmark = pytest.mark.anyio

SESSION_TEMPLATE = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}"
STORE_TIMEOUT = 600.0
"""Postgres's own timeout: what a request outside the call deadline would wait for."""
NO_HANG = 60.0
"""Far below ``STORE_TIMEOUT``: an answer by then came from the call deadline (0.3 s), not the store's timeout."""
DEADLINE = "unavailable: Postgres did not answer within the call's deadline (0.3 s); retry later"


async def test_a_stalled_store_ends_a_completion_prompt_and_read_at_the_call_deadline(
    private_postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    from mcp_memory.stores.postgres.schema import migrate

    await migrate(private_postgres.url)
    settings = Settings(
        database_url=private_postgres.url, call_timeout_seconds=0.3, database_timeout_seconds=STORE_TIMEOUT
    )
    scope = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s1"}
    ref = ResourceTemplateReference(type="ref/resource", uri=SESSION_TEMPLATE)
    given = {"project_id": scope["project_id"], "agent_instance_id": scope["agent_instance_id"]}
    caplog.set_level(logging.WARNING, logger="mcp_memory.server.completions")
    async with Client(create_server(settings), mode="legacy") as client:
        assert not (await client.call_tool("spawn", scope)).is_error
        with frozen(private_postgres.pid), anyio.fail_after(NO_HANG):
            completed = await client.complete(ref, {"name": "session_id", "value": "s"}, given)
            assert completed.completion.values == []
            warnings = [r.getMessage() for r in caplog.records if r.name == "mcp_memory.server.completions"]
            assert warnings == [f"completion of session_id answered empty: {DEADLINE}"], warnings

            with pytest.raises(MCPError) as prompt:
                await client.get_prompt("resume_briefing", {k: str(v) for k, v in scope.items()})
            assert (prompt.value.error.code, prompt.value.error.message) == (INTERNAL_ERROR, DEADLINE)
            with pytest.raises(MCPError) as read:
                await client.read_resource(SESSION_TEMPLATE.format(**scope))
            assert (read.value.error.code, read.value.error.message) == (INTERNAL_ERROR, DEADLINE)
        # Thawed: the same client completes again (the connection cut off at the deadline was discarded).
        completed = await client.complete(ref, {"name": "session_id", "value": "s"}, given)
        assert completed.completion.values == ["s1"]
