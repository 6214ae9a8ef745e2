"""terminate is idempotent: a second call answers the first call's result and records nothing new, so it tells no
subscriber of a change (neither the session, nor the agent's sessions listing, nor the episodes) and sends no
``list_changed``. Through the SDK's in-process client on SQLite and Redis + SQLite."""

from __future__ import annotations

import uuid

import pytest
from mcp import Client

from tests.http_helpers import Inbox, ok
from tests.waiting import until

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.backends("sqlite", "redis"),
    pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed"),
]


async def test_a_second_terminate_sends_no_notification(client: Client, inbox: Inbox) -> None:
    p, a, other = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    scope = {"project_id": p, "agent_instance_id": a, "session_id": "s"}
    await ok(client, "spawn", **scope)
    first = await ok(client, "terminate", **scope, task_description="the task")
    listing = f"memory://projects/{p}/agents/{a}/sessions"
    episodes = f"memory://projects/{p}/episodes"
    for uri in (f"{listing}/s", listing, episodes, f"{episodes}/{first['episode_id']}"):
        await client.subscribe_resource(uri)
    # A write elsewhere after the repeat: its notification follows any the repeat would have sent.
    marker = f"memory://projects/{p}/agents/{other}/sessions/m"
    await ok(client, "spawn", project_id=p, agent_instance_id=other, session_id="m")
    await client.subscribe_resource(marker)
    seen = len(inbox.received)

    again = await ok(client, "terminate", **scope, task_description="the task")
    assert again == first
    await ok(client, "memory_set", project_id=p, agent_instance_id=other, session_id="m", key="k", value=1)

    await until(lambda: marker in inbox.updated(), what="the marker write announced")
    assert inbox.received[seen:] == [("notifications/resources/updated", marker)]
