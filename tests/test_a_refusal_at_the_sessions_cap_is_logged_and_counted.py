"""Every call refused at its MCP session's cap (``max_calls_in_flight_per_mcp_session``) is counted in
``mcp_memory_calls_refused_total{method,reason}`` and told in the log at WARNING with the session's short id and the
method: the first refusal at once, the ones right after it (a client piling up calls) in one line with their count
per method once the session's calls in flight end, not a line each.

Before, only a refused tool call left a trace (an ``unavailable`` tool error in the metrics, nothing in the log); a
refused resource read, prompt or completion left none. Through the SDK's in-process client (one MCP session) with
the cap at 1, its one place held by a ``resources/list`` stopped at the listing's fault point."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ResourceTemplateReference

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio

REFUSAL = "unavailable: this MCP session has too many calls in flight: 1, the most it may have"
REFUSED = "mcp_memory_calls_refused_total"
SESSION_TEMPLATE = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}"
FIRST_LINE = re.compile(r"MCP session ([0-9a-f]{8}): refused a (\S+): 1 call\(s\) in flight, the most it may have")
SUMMARY_LINE = re.compile(r"MCP session ([0-9a-f]{8}): 3 more call\(s\) refused at its cap of 1 calls in flight: (.*)$")


def in_flight_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "mcp_memory.server.in_flight" and r.levelno == logging.WARNING
    ]


async def test_refused_reads_prompts_completions_and_tool_calls_are_counted_and_logged_once_each(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    scope = {"project_id": p, "agent_instance_id": a, "session_id": "s1"}
    reached, release = anyio.Event(), anyio.Event()

    async def hold(point: str) -> None:
        if point == "listing.read":
            reached.set()
            await release.wait()

    caplog.set_level(logging.WARNING, logger="mcp_memory.server.in_flight")
    async with MemoryRuntime(make_settings(max_calls_in_flight_per_mcp_session=1)) as runtime:
        server = create_server(runtime=runtime)
        async with Client(server, mode="legacy") as client:
            assert not (await client.call_tool("spawn", scope)).is_error
            with faults.on_fault(hold), anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.list_resources)
                    await reached.wait()

                    with pytest.raises(MCPError) as read:
                        await client.read_resource(SESSION_TEMPLATE.format(**scope))
                    assert read.value.error.code == INTERNAL_ERROR
                    assert read.value.error.message.startswith(REFUSAL), read.value.error
                    with pytest.raises(MCPError) as prompt:
                        await client.get_prompt("resume_briefing")
                    assert prompt.value.error.message.startswith(REFUSAL), prompt.value.error
                    ref = ResourceTemplateReference(type="ref/resource", uri=SESSION_TEMPLATE)
                    completion = await client.complete(ref, {"name": "session_id", "value": "s"}, {"project_id": p})
                    assert completion.completion.values == []
                    tool = await client.call_tool("memory_list", scope)
                    assert tool.is_error and tool.content[0].text.startswith(REFUSAL), tool  # type: ignore[union-attr]

                    # The first refusal is logged at once; the others, right after it, wait for the summary.
                    first = [FIRST_LINE.match(m) for m in in_flight_warnings(caplog)]
                    assert len(first) == 1 and first[0] is not None, in_flight_warnings(caplog)
                    assert first[0].group(2) == "resources/read"
                    release.set()

    registry = server.metrics.registry
    refused = {
        method: registry.get_sample_value(REFUSED, {"method": method, "reason": "calls_in_flight"})
        for method in ("resources/list", "resources/read", "prompts/get", "completion/complete", "tools/call")
    }
    # The listing that held the place ran: it was not refused.
    assert refused == {
        "resources/list": None,
        "resources/read": 1,
        "prompts/get": 1,
        "completion/complete": 1,
        "tools/call": 1,
    }
    # Once the listing ended (the session's last call in flight), the three refusals not yet logged are, in one line.
    lines = in_flight_warnings(caplog)
    assert len(lines) == 2, lines
    summary = SUMMARY_LINE.match(lines[1])
    assert summary is not None, lines
    assert summary.group(1) == first[0].group(1), "the two lines name one session alike"
    assert summary.group(2) == "completion/complete 1, prompts/get 1, tools/call 1"
