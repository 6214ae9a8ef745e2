"""``forget_episodes`` changes more than the episodes: a terminated session's summary in its agent's sessions
listing names its episode, so the subscribers of each session the forgotten episodes came from, and of that agent's
sessions listing, get ``notifications/resources/updated`` (by ids or by a filter alike); a session whose episode
stays is not announced. Through the SDK's in-process client on SQLite and Postgres."""

from __future__ import annotations

import json
import uuid

import pytest
from mcp import Client

from tests.http_helpers import Inbox, ok
from tests.waiting import until

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.backends("sqlite", "postgres"),
    pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed"),
]


async def summaries(client: Client, listing: str) -> dict[str, str]:
    text = (await client.read_resource(listing)).contents[0].text  # type: ignore[union-attr]
    return {s["session_id"]: s["summary"] for s in json.loads(text)["sessions"]}


@pytest.mark.parametrize("by", ["ids", "filter"])
async def test_the_sessions_of_forgotten_episodes_and_their_listing_are_announced(
    client: Client, inbox: Inbox, by: str
) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    listing = f"memory://projects/{p}/agents/{a}/sessions"
    episodes = {}
    for s in ("gone", "kept"):
        await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id=s)
        ended = await ok(client, "terminate", project_id=p, agent_instance_id=a, session_id=s, task_description=s)
        episodes[s] = ended["episode_id"]
    gone, kept = f"{listing}/gone", f"{listing}/kept"
    for uri in (listing, gone, kept):
        await client.subscribe_resource(uri)
    before = await summaries(client, listing)

    if by == "ids":
        await ok(client, "forget_episodes", project_id=p, episode_ids=[episodes["gone"]])
    else:
        await ok(client, "forget_episodes", project_id=p, session_id="gone", confirm=True)

    await until(lambda: {listing, gone} <= set(inbox.updated()), what="the session and its listing announced")
    after = await summaries(client, listing)
    assert after["gone"] != before["gone"] and after["kept"] == before["kept"]  # what the notification is for
    assert kept not in inbox.updated()
    assert inbox.updated().count(listing) == 1  # one listing, announced once
