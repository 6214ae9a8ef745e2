"""A ``resume_briefing`` argument past its limit (a task longer than 4,000 characters) is the caller's mistake: a
JSON-RPC -32602 error starting ``too_large:``, as every other bad prompt argument is. Before, the prompt mapped only
``invalid_argument``, ``not_found`` and ``forbidden`` to -32602 and answered ``too_large`` as an internal error
(-32603), which tells a client to retry rather than to shorten its argument."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from mcp_memory.services.validation import MAX_QUERY
from tests.test_stdio import EXE, TIMEOUT, server_env

pytestmark = pytest.mark.anyio


async def test_a_task_past_its_limit_is_too_large_with_invalid_params(tmp_path: Path) -> None:
    env = server_env(tmp_path, MCP_MEMORY_PROJECT_ID=str(uuid.uuid4()))
    params = StdioServerParameters(command=str(EXE), args=["serve"], env=env)
    with anyio.fail_after(TIMEOUT):
        async with Client(params, read_timeout_seconds=TIMEOUT) as client:
            with pytest.raises(MCPError) as info:
                await client.get_prompt("resume_briefing", {"task": "x" * (MAX_QUERY + 1)})
            assert info.value.error.code == INVALID_PARAMS, info.value.error
            assert info.value.error.message.startswith("too_large: task is"), info.value.error
            # The same prompt within the limit is served.
            briefing = await client.get_prompt("resume_briefing", {"task": "x" * MAX_QUERY})
            assert len(briefing.messages) == 1
