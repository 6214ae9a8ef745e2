"""Every way a resource goes tells its subscribers: an episode removed by ``forget_episodes`` (by ids, or by a
filter with ``confirm``) or with its session (``delete_session(keep_episodes=false)``) sends
``notifications/resources/updated`` for that episode, and each removal of something resources/list offered (a
checkpoint, an episode) sends ``notifications/resources/list_changed``. Through the SDK's in-process client on
SQLite, Redis + SQLite and Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from mcp import Client

from tests.http_helpers import Inbox, ok
from tests.waiting import until

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.backends("sqlite", "redis", "postgres"),
    pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed"),
]


async def session_with_episodes(client: Client, p: str, a: str, s: str) -> list[str]:
    """A terminated session with two episodes (terminate's and one recorded in it), each subscribed to."""
    scope = {"project_id": p, "agent_instance_id": a, "session_id": s}
    await ok(client, "spawn", **scope)
    await ok(client, "pause", **scope)
    recorded = await ok(
        client, "record_episode", **scope, task_type="t", task_description=f"work of {s}", outcome="failure"
    )
    ended = await ok(client, "terminate", **scope, task_description=f"end of {s}", outcome="success")
    uris = [f"memory://projects/{p}/episodes/{e}" for e in (recorded["episode_id"], ended["episode_id"])]
    for uri in uris:
        await client.subscribe_resource(uri)
    return uris


def ids_of(uris: list[str]) -> list[str]:
    return [uri.rsplit("/", 1)[1] for uri in uris]


REMOVALS: dict[str, Any] = {
    "forget_by_ids": lambda p, a, s, uris: ("forget_episodes", {"project_id": p, "episode_ids": ids_of(uris)}),
    "forget_by_filter": lambda p, a, s, uris: ("forget_episodes", {"project_id": p, "session_id": s, "confirm": True}),
    "delete_session": lambda p, a, s, uris: (
        "delete_session",
        {"project_id": p, "agent_instance_id": a, "session_id": s, "keep_episodes": False},
    ),
}


@pytest.mark.parametrize("removal", sorted(REMOVALS))
async def test_every_way_an_episode_goes_notifies_its_subscribers(client: Client, inbox: Inbox, removal: str) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    uris = await session_with_episodes(client, p, a, "s")
    bystander = (await session_with_episodes(client, p, a, "other"))[0]
    lists_before = inbox.list_changes()

    tool, arguments = REMOVALS[removal](p, a, "s", uris)
    result = await ok(client, tool, **arguments)
    assert result.get("forgotten", result.get("episodes")) == 2

    await until(lambda: set(uris) <= set(inbox.updated()), what=f"both episodes' subscribers told after {removal}")
    await until(lambda: inbox.list_changes() > lists_before, what=f"list_changed after {removal}")
    assert bystander not in inbox.updated()  # an episode that stays is not announced
    # What the model reads stays small: a filter reports its count, not the ids it removed.
    assert ("episode_ids" in result) == (removal == "forget_by_ids")


async def test_deleting_a_checkpoint_or_a_session_announces_a_changed_resource_list(
    client: Client, inbox: Inbox
) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    scope = {"project_id": p, "agent_instance_id": a, "session_id": "s"}
    await ok(client, "spawn", **scope)
    await ok(client, "pause", **scope, checkpoint_id="c1")
    await ok(client, "resume", **scope)
    await ok(client, "pause", **scope, checkpoint_id="c2")
    await until(lambda: inbox.list_changes() == 2, what="list_changed after each new checkpoint")

    await ok(client, "delete_checkpoint", **scope, checkpoint_id="c1")
    await until(lambda: inbox.list_changes() == 3, what="list_changed after delete_checkpoint")
    await ok(client, "delete_session", **scope)  # its checkpoint c2 leaves the list with it
    await until(lambda: inbox.list_changes() == 4, what="list_changed after delete_session")
