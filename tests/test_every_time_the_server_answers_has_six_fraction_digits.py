"""Every time a tool result or a resource shows is ISO 8601 in UTC with six fraction digits and a ``Z``
(docs/contract.md), even at an exact second, where Python's and pydantic's own formats leave the fraction out: a
client parsing with one fixed format never fails, and times sort as text. On SQLite, Redis + SQLite and Postgres."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from mcp import Client

from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock
from tests.http_helpers import ok

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

NOON = 1_769_860_800.0
"""2026-01-31T12:00:00Z, an exact second."""

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T[^\s\",]*")
_WRITTEN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


def times_in(value: Any) -> list[str]:
    """Every time written anywhere in ``value`` (a result, a resource body), descriptions' text included."""
    return _TIME.findall(json.dumps(value))


async def resource(client: Client, uri: str) -> Any:
    read = await client.read_resource(uri)
    return json.loads(read.contents[0].text)  # type: ignore[union-attr]


async def test_tool_results_and_resources_write_the_fraction_at_an_exact_second(
    runtime: MemoryRuntime, clock: FakeClock
) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    scope = {"project_id": p, "agent_instance_id": a, "session_id": "s"}
    session_uri = f"memory://projects/{p}/agents/{a}/sessions/s"
    seen: list[str] = []
    async with Client(create_server(runtime=runtime), mode="legacy") as client:
        await ok(client, "spawn", **scope, initial_state={"k": 1})
        clock.advance(1)
        set_ = await ok(client, "memory_set", **scope, key="brief", value="x", ttl_seconds=3600)
        assert set_["expires_at"] == "2026-01-31T13:00:01.000000Z"
        clock.advance(1)
        paused = await ok(client, "pause", **scope, checkpoint_id="c1")
        assert paused["created_at"] == "2026-01-31T12:00:02.000000Z"
        clock.advance(1)
        resumed = await ok(client, "resume", **scope)
        assert resumed["checkpoint_created_at"] == "2026-01-31T12:00:02.000000Z"
        listed = await ok(client, "list_checkpoints", **scope)
        assert [c["created_at"] for c in listed["checkpoints"]] == ["2026-01-31T12:00:02.000000Z"]
        sessions = await ok(client, "list_sessions", project_id=p, agent_instance_id=a)
        (row,) = sessions["sessions"]
        assert (row["created_at"], row["updated_at"], row["last_checkpoint"]["created_at"]) == (
            "2026-01-31T12:00:00.000000Z",
            "2026-01-31T12:00:03.000000Z",
            "2026-01-31T12:00:02.000000Z",
        )
        checkpoint = await resource(client, f"{session_uri}/checkpoints/c1")
        assert checkpoint["created_at"] == "2026-01-31T12:00:02.000000Z"
        assert checkpoint["expires_at"] == {"brief": "2026-01-31T13:00:01.000000Z"}
        seen += times_in([set_, paused, resumed, listed, sessions, checkpoint])
        seen += times_in(await resource(client, f"{session_uri}/checkpoints"))
        seen += times_in(await resource(client, f"memory://projects/{p}/agents/{a}/sessions"))

        clock.advance(1)
        await ok(client, "terminate", **scope, task_description="fix the parser")
        session = await resource(client, session_uri)
        assert (session["created_at"], session["updated_at"], session["terminated_at"]) == (
            "2026-01-31T12:00:00.000000Z",
            "2026-01-31T12:00:04.000000Z",
            "2026-01-31T12:00:04.000000Z",
        )
        clock.advance(1)
        recorded = await ok(
            client,
            "record_episode",
            project_id=p,
            agent_instance_id=a,
            task_type="t",
            task_description="tune the parser",
            outcome="success",
        )
        found = await ok(client, "search_episodes", project_id=p, query="parser")
        assert {h["created_at"] for h in found["episodes"]} == {
            "2026-01-31T12:00:04.000000Z",
            "2026-01-31T12:00:05.000000Z",
        }
        episode = await resource(client, f"memory://projects/{p}/episodes/{recorded['episode_id']}")
        assert episode["created_at"] == "2026-01-31T12:00:05.000000Z"
        episodes = await resource(client, f"memory://projects/{p}/episodes")
        assert [e["created_at"] for e in episodes["episodes"]] == [
            "2026-01-31T12:00:05.000000Z",
            "2026-01-31T12:00:04.000000Z",
        ]
        listing = await client.list_resources()
        seen += times_in([session, found, episode, episodes, [r.description for r in listing.resources]])

    assert len(seen) > 20
    assert [t for t in seen if not _WRITTEN.fullmatch(t)] == []
