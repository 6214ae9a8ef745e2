"""Session discovery, completions and subscriptions through ``mcp-memory serve`` as a subprocess, with the SDK's
real client: over stdio (as a desktop client starts it) and over Streamable HTTP (with tokens limited to projects)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import PromptReference, ResourceTemplateReference

from tests.http_helpers import EXE, TIMEOUT, Inbox, ServerProcess, auth, error, ok, server_env, token_config
from tests.waiting import until

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")]

SESSION = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}"


@asynccontextmanager
async def http_client(url: str, token: str, inbox: Inbox) -> AsyncIterator[Client]:
    """A handshake-era Streamable HTTP client (its GET stream carries the notifications) that records them."""
    async with httpx2.AsyncClient(headers=auth(token), timeout=httpx2.Timeout(TIMEOUT)) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, mode="legacy", message_handler=inbox, read_timeout_seconds=TIMEOUT) as client:
            yield client


async def walk(client: Client, inbox: Inbox) -> None:
    """What a model in a new conversation does: list its sessions, complete an id, read the listing resource, and
    watch a session while writing to it."""
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    for sid in ("refactor-auth", "refactor-db", "docs"):
        await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id=sid, initial_state={"step": 1})
    await ok(client, "pause", project_id=p, agent_instance_id=a, session_id="refactor-auth", label="halfway")

    listed = await ok(client, "list_sessions", project_id=p, limit=2)
    assert [s["session_id"] for s in listed["sessions"]] == ["refactor-auth", "docs"]
    assert listed["sessions"][0]["last_checkpoint"]["label"] == "halfway" and listed["next_before"]
    rest = await ok(client, "list_sessions", project_id=p, before=listed["next_before"])
    assert [s["session_id"] for s in rest["sessions"]] == ["refactor-db"]
    assert [
        s["session_id"] for s in (await ok(client, "list_sessions", project_id=p, status="paused"))["sessions"]
    ] == ["refactor-auth"]

    body = json.loads((await client.read_resource(f"memory://projects/{p}/agents/{a}/sessions")).contents[0].text)  # type: ignore[union-attr]
    assert body["sessions"][0]["session_id"] == "refactor-auth"

    ref = ResourceTemplateReference(type="ref/resource", uri=SESSION)
    # The agent is named: without it the default agent applies (on stdio, the installation's identity).
    context = {"project_id": p, "agent_instance_id": a}
    got = (await client.complete(ref, {"name": "session_id", "value": "refac"}, context)).completion
    assert sorted(got.values) == ["refactor-auth", "refactor-db"] and got.total == 2 and got.has_more is False
    unknown = PromptReference(type="ref/prompt", name="test_prompt_with_arguments")
    assert (await client.complete(unknown, {"name": "arg1", "value": "par"})).completion.values == []

    uri = SESSION.format(project_id=p, agent_instance_id=a, session_id="docs")
    await client.subscribe_resource(uri)
    await client.subscribe_resource("memory://no/such/thing")
    await ok(client, "memory_set", project_id=p, agent_instance_id=a, session_id="docs", key="k", value=[1])
    await until(lambda: inbox.updated() == [uri], what="a notification after memory_set")
    await client.unsubscribe_resource(uri)
    other = SESSION.format(project_id=p, agent_instance_id=a, session_id="refactor-db")
    await client.subscribe_resource(other)
    await ok(client, "memory_set", project_id=p, agent_instance_id=a, session_id="docs", key="k", value=[2])
    await ok(client, "memory_set", project_id=p, agent_instance_id=a, session_id="refactor-db", key="k", value=3)
    # In order on one connection: the unsubscribed session's notification would have come first.
    await until(lambda: inbox.updated() == [uri, other], what="nothing after unsubscribe, the other still fires")


async def test_discovery_over_stdio(tmp_path: Path) -> None:
    env = {**server_env(tmp_path / "desktop.db")}
    inbox = Inbox()
    params = StdioServerParameters(command=str(EXE), args=["serve"], env=env)
    async with Client(params, mode="legacy", message_handler=inbox, read_timeout_seconds=60) as client:
        caps = client.server_capabilities
        assert caps.completions is not None and caps.resources is not None
        assert caps.resources.subscribe and caps.resources.list_changed and caps.logging is None
        await walk(client, inbox)


async def test_discovery_over_streamable_http_within_each_tokens_projects(tmp_path: Path) -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    tokens = token_config(("mine", "tok-mine", [mine]), ("admin", "tok-admin", ["*"]))
    with ServerProcess(server_env(tmp_path / "http.db", MCP_MEMORY_HTTP__TOKENS=tokens)) as server:
        inbox = Inbox()
        async with http_client(server.url, "tok-admin", inbox) as admin:
            await walk(admin, inbox)
            a = str(uuid.uuid4())
            await ok(admin, "spawn", project_id=theirs, agent_instance_id=a, session_id="secret")

        restricted_inbox = Inbox()
        async with http_client(server.url, "tok-mine", restricted_inbox) as restricted:
            assert (await error(restricted, "list_sessions", project_id=theirs)).startswith("forbidden:")
            ref = ResourceTemplateReference(type="ref/resource", uri=SESSION)
            got = await restricted.complete(ref, {"name": "session_id", "value": ""}, {"project_id": theirs})
            assert got.completion.values == []
            projects = await restricted.complete(ref, {"name": "project_id", "value": ""})
            assert projects.completion.values == [mine] or projects.completion.values == []
            secret = SESSION.format(project_id=theirs, agent_instance_id=a, session_id="secret")
            own = SESSION.format(project_id=mine, agent_instance_id=a, session_id="own")
            await restricted.subscribe_resource(secret)  # accepted, never fires
            await restricted.subscribe_resource(own)
            await ok(restricted, "spawn", project_id=mine, agent_instance_id=a, session_id="own")
            async with http_client(server.url, "tok-admin", Inbox()) as admin2:
                await ok(
                    admin2, "memory_set", project_id=theirs, agent_instance_id=a, session_id="secret", key="k", value=1
                )
            await ok(restricted, "memory_set", project_id=mine, agent_instance_id=a, session_id="own", key="k", value=1)
            # spawn and memory_set of its own session; the other project's write came between them and never fired.
            await until(lambda: restricted_inbox.updated() == [own, own], what="only the token's own session notifies")
