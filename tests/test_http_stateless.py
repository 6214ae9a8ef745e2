"""Stateless Streamable HTTP: two server processes on one SQLite file (WAL works across processes) serve one
agent whose requests alternate between them, as behind a load balancer without sticky sessions, with the same
results as one process."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from mcp_memory.server.auth import generate_token
from tests.http_helpers import TIMEOUT, ServerProcess, connect, ok, read, server_env, token_config

pytestmark = pytest.mark.anyio

TOKEN = generate_token()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    db = tmp_path_factory.mktemp("stateless") / "shared.db"
    env = server_env(db, MCP_MEMORY_HTTP__TOKENS=token_config(("lb", TOKEN, ["*"])), MCP_MEMORY_HTTP__STATELESS="1")
    first, second = ServerProcess(env).launch(), ServerProcess(env).launch()
    try:
        yield first.start(), second.start()
    finally:
        first.interrupt()
        second.interrupt()
        first.stop()
        second.stop()


class Alternating(httpx2.AsyncBaseTransport):
    """A round-robin balancer in the client: request n goes to ``ports[n % len(ports)]``."""

    def __init__(self, ports: list[int]) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.ports = ports
        self.sent: Counter[int] = Counter()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[sum(self.sent.values()) % len(self.ports)]
        self.sent[port] += 1
        request.url = request.url.copy_with(port=port)
        request.headers["host"] = f"127.0.0.1:{port}"
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def script(c: Client, project: str) -> list[Any]:
    """One agent's working day; every result, in order."""
    s = {"project_id": project, "agent_instance_id": str(uuid.UUID(int=7)), "session_id": "lb-1"}
    uri = f"memory://projects/{project}/agents/{s['agent_instance_id']}/sessions/lb-1"
    out: list[Any] = [await ok(c, "spawn", **s, initial_state={"goal": "balance"})]
    for i in range(8):
        out.append(await ok(c, "memory_set", **s, key=f"k{i}", value={"i": i}))
    out.append(await ok(c, "memory_get", **s, key="k3"))
    out.append(await ok(c, "pause", **s, label="first"))
    out.append(await ok(c, "memory_delete", **s, key="k0"))
    out.append(await ok(c, "memory_set", **s, key="late", value=[1, 2]))
    out.append(await ok(c, "pause", **s, checkpoint_id="second"))
    out.append(await ok(c, "resume", **s, checkpoint_id=out[10]["checkpoint_id"]))
    out.append(await ok(c, "memory_list", **s))
    out.append(await ok(c, "list_checkpoints", **s))
    out.append(await read(c, uri))
    out.append(await read(c, f"{uri}/checkpoints/second"))
    out.append(await ok(c, "terminate", **s, task_description="balanced load", lessons_learned=["no sticky sessions"]))
    out.append(await ok(c, "terminate", **s))
    out.append(await ok(c, "search_episodes", project_id=project, query="balanced load"))
    return out


_TIME = re.compile(r"^\d{4}-\d\d-\d\dT")


def normalise(results: list[Any], project: str) -> Any:
    """Results with what differs between two runs replaced: times, generated ids (numbered by first
    appearance), the project, and search scores (full-text ranking depends on every episode in the file)."""
    names: dict[str, str] = {}

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items() if k != "score"}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str):
            if _TIME.match(value):
                return "<time>"
            if key in ("checkpoint_id", "episode_id", "next_before") and value != "second":
                return names.setdefault(value, f"<{key}#{len(names)}>")
            return value.replace(project, "<project>")
        if isinstance(value, float) and key.endswith("_at"):
            return "<time>"
        return value

    return walk(results)


@pytest.mark.parametrize("transport", ["http", "http-legacy"])
async def test_two_processes_serve_one_agent_alternately(
    pair: tuple[ServerProcess, ServerProcess], transport: str
) -> None:
    first, second = pair
    ports = [int(p.url.rsplit(":", 1)[1]) for p in pair]
    with anyio.fail_after(2 * TIMEOUT):
        alone_project = str(uuid.uuid4())
        async with connect(first.url, TOKEN, transport) as c:
            alone = await script(c, alone_project)

        balancer = Alternating(ports)
        spread_project = str(uuid.uuid4())
        async with connect(first.url, TOKEN, transport, transport_for_httpx=balancer) as c:
            spread = await script(c, spread_project)
        assert min(balancer.sent.values()) >= 10, balancer.sent  # both processes served a good share

    assert normalise(spread, spread_project) == normalise(alone, alone_project)
    assert spread[-3]["state_items_consolidated"] == 9  # goal + k0..k7, as the first checkpoint had them
    assert [h["task_description"] for h in spread[-1]["episodes"]] == ["balanced load"]
    # Each process sees what the other wrote.
    async with connect(second.url, TOKEN, transport) as c:
        listed = await ok(
            c, "list_checkpoints", project_id=spread_project, agent_instance_id=str(uuid.UUID(int=7)), session_id="lb-1"
        )
        assert listed["checkpoints"][0]["checkpoint_id"] == "second"
