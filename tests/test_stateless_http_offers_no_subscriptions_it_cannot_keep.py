"""Stateless Streamable HTTP serves each handshake-era request as a connection of its own, which ends with the
answer: a ``resources/subscribe`` there could never fire. So a 2025-11-25 client is not offered
``resources.subscribe`` or ``resources.listChanged`` and its ``resources/subscribe`` is refused (-32601) with a
sentence saying what works instead; a 2026-07-28 client keeps both, its ``subscriptions/listen`` stream being
served whatever the mode. A stateful server still offers and keeps subscriptions. Over real HTTP, a server process
each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import METHOD_NOT_FOUND

from tests.http_helpers import TIMEOUT, ServerProcess, connect, ok, server_env

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")]


@pytest.fixture(scope="module")
def stateless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("stateless-subscriptions") / "memory.db"
    with ServerProcess(server_env(db, MCP_MEMORY_HTTP__STATELESS="1")) as server:
        yield server


def session_of(project: str, agent: str) -> str:
    return f"memory://projects/{project}/agents/{agent}/sessions/s"


async def test_a_handshake_client_is_offered_no_subscriptions_and_its_subscribe_is_refused(
    stateless: ServerProcess,
) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    with anyio.fail_after(TIMEOUT):
        async with connect(stateless.url, None, "http-legacy") as c:
            assert c.protocol_version == "2025-11-25"
            resources = c.server_capabilities.resources
            assert resources is not None and not resources.subscribe and not resources.list_changed
            await ok(c, "spawn", project_id=p, agent_instance_id=a, session_id="s")
            for call in (c.subscribe_resource, c.unsubscribe_resource):
                with pytest.raises(MCPError) as info:
                    await call(session_of(p, a))
                assert info.value.error.code == METHOD_NOT_FOUND
                assert "stateless HTTP" in info.value.error.message
                assert "subscriptions/listen" in info.value.error.message


async def test_a_2026_client_listens_over_stateless_http(stateless: ServerProcess) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    with anyio.fail_after(TIMEOUT):
        async with connect(stateless.url, None, "http") as c:
            assert c.protocol_version >= "2026"
            resources = c.server_capabilities.resources
            assert resources is not None and resources.subscribe and resources.list_changed
            await ok(c, "spawn", project_id=p, agent_instance_id=a, session_id="s")
            async with c.listen(resource_subscriptions=[session_of(p, a)]) as sub:
                await ok(c, "memory_set", project_id=p, agent_instance_id=a, session_id="s", key="k", value=1)
                async for event in sub:
                    assert event == ResourceUpdated(session_of(p, a))
                    break


async def test_a_stateful_server_still_offers_and_keeps_subscriptions(tmp_path: Path) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    with ServerProcess(server_env(tmp_path / "memory.db")) as server, anyio.fail_after(TIMEOUT):
        async with connect(server.url, None, "http-legacy") as c:
            resources = c.server_capabilities.resources
            assert resources is not None and resources.subscribe and resources.list_changed
            await ok(c, "spawn", project_id=p, agent_instance_id=a, session_id="s")
            await c.subscribe_resource(session_of(p, a))
            await c.unsubscribe_resource(session_of(p, a))
