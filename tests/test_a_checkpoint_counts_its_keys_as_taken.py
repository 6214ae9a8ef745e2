"""A checkpoint's ``keys_count`` describes it as taken at the pause (docs/contract.md, Lifecycle): a key whose TTL
passes afterwards is still counted by the checkpoint resource and ``list_checkpoints``, while the resource's
``state`` leaves it out and ``resume`` does not restore it. On SQLite, Redis + SQLite and Postgres."""

from __future__ import annotations

import json
import uuid

import pytest
from mcp import Client

from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock
from tests.http_helpers import ok

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def test_a_key_expired_since_the_pause_counts_but_is_neither_shown_nor_restored(
    runtime: MemoryRuntime, clock: FakeClock
) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    scope = {"project_id": p, "agent_instance_id": a, "session_id": "s"}
    async with Client(create_server(runtime=runtime), mode="legacy") as client:
        await ok(client, "spawn", **scope, initial_state={"keep": 1})
        await ok(client, "memory_set", **scope, key="brief", value="x", ttl_seconds=60)
        assert (await ok(client, "pause", **scope, checkpoint_id="c1"))["items_saved"] == 2
        clock.advance(120)

        read = await client.read_resource(f"memory://projects/{p}/agents/{a}/sessions/s/checkpoints/c1")
        checkpoint = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        assert (checkpoint["keys_count"], checkpoint["state"]) == (2, {"keep": 1})
        listed = await ok(client, "list_checkpoints", **scope)
        assert [c["keys_count"] for c in listed["checkpoints"]] == [2]
        assert (await ok(client, "resume", **scope))["items_restored"] == 1
