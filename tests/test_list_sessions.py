"""``list_sessions`` and the sessions resource: filters, newest activity first, position paging that stays stable
while sessions change, a bounded summary, and token scope; on every backend, through the SDK's in-process client."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from mcp import Client

from mcp_memory.server.app import MemoryServer
from mcp_memory.server.auth import Grant
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock
from tests.http_helpers import error, ok

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


def ids(page: dict[str, Any]) -> list[str]:
    return [s["session_id"] for s in page["sessions"]]


async def test_sessions_list_newest_activity_first_and_filter_by_agent_and_status(
    client: Client, clock: FakeClock
) -> None:
    p, a, b = (str(uuid.uuid4()) for _ in range(3))
    for agent, sid in ((a, "a1"), (a, "a2"), (b, "b1"), (a, "a3")):
        await ok(client, "spawn", project_id=p, agent_instance_id=agent, session_id=sid, initial_state={"k": 1})
        clock.advance(1)
    await ok(client, "pause", project_id=p, agent_instance_id=a, session_id="a1", label="before lunch")
    clock.advance(1)
    await ok(client, "terminate", project_id=p, agent_instance_id=a, session_id="a2", task_description="ship it")

    everything = await ok(client, "list_sessions", project_id=p)
    assert ids(everything) == ["a2", "a1", "a3", "b1"]  # terminate and pause are the latest activity
    assert everything["next_before"] is None
    assert ids(await ok(client, "list_sessions", project_id=p, agent_instance_id=a)) == ["a2", "a1", "a3"]
    assert ids(await ok(client, "list_sessions", project_id=p, status="running")) == ["a3", "b1"]
    assert ids(await ok(client, "list_sessions", project_id=p, agent_instance_id=b, status="paused")) == []

    by_id = {s["session_id"]: s for s in everything["sessions"]}
    paused = by_id["a1"]
    assert paused["status"] == "paused" and paused["agent_instance_id"] == a
    assert paused["last_checkpoint"]["label"] == "before lunch" and paused["last_checkpoint"]["checkpoint_id"]
    assert paused["updated_at"] > paused["created_at"]
    assert "1 key" in paused["summary"]
    assert by_id["a2"]["summary"] == "success: ship it"
    assert by_id["a3"]["last_checkpoint"] is None


async def test_sessions_page_by_position_without_repeats_while_sessions_become_active(
    client: Client, clock: FakeClock
) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    for i in range(7):
        await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id=f"s{i}")
        clock.advance(1)
    first = await ok(client, "list_sessions", project_id=p, limit=3)
    assert ids(first) == ["s6", "s5", "s4"]
    # Activity between pages: a listed session and an unlisted one move to the front; paging goes on where it was.
    await ok(client, "pause", project_id=p, agent_instance_id=a, session_id="s5")
    clock.advance(1)
    await ok(client, "pause", project_id=p, agent_instance_id=a, session_id="s1")
    second = await ok(client, "list_sessions", project_id=p, limit=3, before=first["next_before"])
    assert ids(second) == ["s3", "s2", "s0"] and second["next_before"] is None
    assert ids(await ok(client, "list_sessions", project_id=p, limit=2)) == ["s1", "s5"]


async def test_the_last_page_has_no_cursor_even_when_it_is_exactly_a_page_long(
    client: Client, clock: FakeClock
) -> None:
    """``next_before`` is null on the last page, also when the sessions left fill it exactly: no extra call that
    answers an empty page."""
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    for i in range(4):
        await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id=f"s{i}")
        clock.advance(1)
    whole = await ok(client, "list_sessions", project_id=p, limit=4)
    assert ids(whole) == ["s3", "s2", "s1", "s0"] and whole["next_before"] is None
    first = await ok(client, "list_sessions", project_id=p, limit=2)
    assert ids(first) == ["s3", "s2"] and first["next_before"]
    last = await ok(client, "list_sessions", project_id=p, limit=2, before=first["next_before"])
    assert ids(last) == ["s1", "s0"] and last["next_before"] is None


async def test_paging_goes_on_past_a_deleted_cursor_session_among_sessions_of_the_same_time(
    client: Client, runtime: MemoryRuntime
) -> None:
    """Sessions active at the same instant (the clock stands still here) page in a fixed order, and a page goes on
    where the last one ended even when the session its cursor names has been deleted since: none is skipped."""
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    for i in range(7):
        await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id=f"s{i}")
    for agent in (a, None):
        listed: list[str] = []
        page = await ok(client, "list_sessions", project_id=p, agent_instance_id=agent, limit=2)
        listed += ids(page)
        gone = ids(page)[-1]
        await runtime.control.delete_session(p, a, gone)
        while page["next_before"]:
            page = await ok(
                client, "list_sessions", project_id=p, agent_instance_id=agent, limit=2, before=page["next_before"]
            )
            listed += ids(page)
        left = {s["session_id"] for s in (await ok(client, "list_sessions", project_id=p, limit=100))["sessions"]}
        assert sorted(listed) == sorted(left | {gone}) and len(listed) == len(set(listed)), (agent, listed)


async def test_sessions_listing_refuses_a_malformed_cursor_and_bad_limits(client: Client) -> None:
    p = str(uuid.uuid4())
    assert (await error(client, "list_sessions", project_id=p, before="not a cursor")).startswith("invalid_argument:")
    a = str(uuid.uuid4())
    for forged in ({"t": 1e300, "a": a, "s": "s"}, {"u": 10**20, "a": a, "s": "s"}, {"t": -1e300, "a": a, "s": "s"}):
        cursor = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
        answer = await client.call_tool("list_sessions", {"project_id": p, "before": cursor})
        text = answer.content[0].text  # type: ignore[union-attr]
        assert not answer.is_error or text.startswith("invalid_argument:"), (forged, text)
    assert (await error(client, "list_sessions", project_id=p, limit=0)).startswith("invalid_argument:")
    assert (await error(client, "list_sessions", project_id=p, limit=101)).startswith("invalid_argument:")
    assert (await error(client, "list_sessions", project_id=p, status="sleeping")).startswith("invalid_argument:")


async def test_sessions_resource_lists_one_agents_sessions_newest_activity_first(
    client: Client, clock: FakeClock
) -> None:
    p, a, b = (str(uuid.uuid4()) for _ in range(3))
    for agent, sid in ((a, "x"), (b, "other"), (a, "y")):
        await ok(client, "spawn", project_id=p, agent_instance_id=agent, session_id=sid)
        clock.advance(1)
    await ok(client, "pause", project_id=p, agent_instance_id=a, session_id="x")
    result = await client.read_resource(f"memory://projects/{p}/agents/{a}/sessions")
    body = json.loads(result.contents[0].text)  # type: ignore[union-attr]
    assert result.contents[0].mime_type == "application/json"
    assert ids(body) == ["x", "y"]
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert "memory://projects/{project_id}/agents/{agent_instance_id}/sessions" in templates


async def test_sessions_of_another_project_are_invisible_to_a_token_for_one_project(
    server: MemoryServer, client: Client
) -> None:
    p, other, a = (str(uuid.uuid4()) for _ in range(3))
    await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="secret")
    server.grants.fallback = Grant("b-only", frozenset({uuid.UUID(other)}))
    async with Client(server, mode="legacy") as restricted:
        assert (await error(restricted, "list_sessions", project_id=p)).startswith("forbidden:")
        # The same answer for a project with nothing in it: no existence oracle.
        assert (await error(restricted, "list_sessions", project_id=str(uuid.uuid4()))).startswith("forbidden:")
        assert ids(await ok(restricted, "list_sessions", project_id=other)) == []
        with pytest.raises(Exception) as refused:
            await restricted.read_resource(f"memory://projects/{p}/agents/{a}/sessions")
        assert "forbidden" in str(refused.value)


async def test_a_cursor_names_the_listed_session_not_a_row_numbered_across_projects(
    client: Client, clock: FakeClock
) -> None:
    """The cursor carries the last listed session's time and its own ids, nothing numbered across the store: a
    token paging its project learns nothing of how many sessions other projects created meanwhile. Sessions with
    the same activity time page in a stable order."""
    p, other, a = (str(uuid.uuid4()) for _ in range(3))
    await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="first")
    for i in range(5):
        await ok(client, "spawn", project_id=other, agent_instance_id=a, session_id=f"o{i}")
    for i in range(4):  # the same activity time (the clock does not move): the order among them is the row order
        await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id=f"tie{i}")
    seen: list[str] = []
    before = None
    while True:
        page = await ok(client, "list_sessions", project_id=p, limit=2, **({"before": before} if before else {}))
        seen += ids(page)
        before = page["next_before"]
        if before is None:
            break
        fields = json.loads(base64.urlsafe_b64decode(before + "=" * (-len(before) % 4)))
        assert set(fields) - {"t", "u"} == {"a", "s"} and fields["a"] == a and fields["s"] == seen[-1]
    assert seen == ["tie3", "tie2", "tie1", "tie0", "first"]
