"""forget_episodes, update_episode and duplicate episodes through the SDK's real client, on SQLite, Redis + SQLite
and Postgres: a forgotten episode is found, listed and read by nothing; bad input is refused and changes nothing;
an edit is searchable by its new words only; a repeat returns the first id; a near-duplicate is reported or merged;
over HTTP a token for another project can neither forget nor edit."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError

from mcp_memory.config import Settings
from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock
from tests.http_helpers import Inbox, ServerProcess, connect, error, ok, server_env, token_config
from tests.waiting import until

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def record(client: Client, project: str, agent: str, description: str, **extra: Any) -> str:
    args = {"project_id": project, "agent_instance_id": agent, "task_type": "coding", "outcome": "success"}
    data = await ok(client, "record_episode", **args, task_description=description, **extra)
    return str(data["episode_id"])


async def found(client: Client, project: str, query: str) -> list[str]:
    data = await ok(client, "search_episodes", project_id=project, query=query, limit=20)
    return [h["task_description"] for h in data["episodes"]]


async def listed(client: Client, project: str) -> list[str]:
    result = await client.read_resource(f"memory://projects/{project}/episodes")
    import json

    body = json.loads(result.contents[0].text)  # type: ignore[union-attr]
    episodes = body["episodes"] if isinstance(body, dict) else body
    return sorted(str(e["episode_id"]) for e in episodes)


async def test_forgotten_episodes_are_gone_from_search_listing_and_resources(client: Client) -> None:
    p, a, b = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    keep = await record(client, p, a, "deploy the web service")
    gone = await record(client, p, b, "zebra quantum deploy", session_id="s1", outcome_details="zebra details")
    assert "zebra quantum deploy" in await found(client, p, "zebra quantum")

    # A filter without confirm only counts.
    assert await ok(client, "forget_episodes", project_id=p, agent_instance_id=b) == {
        "forgotten": 0,
        "would_forget": 1,
    }
    assert sorted([keep, gone]) == await listed(client, p)
    assert await ok(client, "forget_episodes", project_id=p, episode_ids=[gone]) == {
        "forgotten": 1,
        "episode_ids": [gone],
    }
    assert await found(client, p, "zebra quantum details") == []
    assert await listed(client, p) == [keep]
    with pytest.raises(MCPError) as caught:
        await client.read_resource(f"memory://projects/{p}/episodes/{gone}")
    assert caught.value.error.code == -32002
    # Forgetting it again, or an id that never existed: a count of 0.
    assert (await ok(client, "forget_episodes", project_id=p, episode_ids=[gone, str(uuid.uuid4())]))["forgotten"] == 0
    # A filter with confirm forgets what it matches.
    assert await ok(client, "forget_episodes", project_id=p, task_type="coding", confirm=True) == {"forgotten": 1}
    assert await listed(client, p) == []


async def test_bad_forget_and_update_arguments_change_nothing(client: Client) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    eid = await record(client, p, a, "write the report", lessons_learned=["keep it short"])
    for args, code in (
        ({}, "invalid_argument"),  # every episode of the project, without confirm
        ({"episode_ids": []}, "invalid_argument"),
        ({"episode_ids": ["not-a-uuid"]}, "invalid_argument"),
        ({"episode_ids": [eid], "task_type": "coding"}, "invalid_argument"),
        ({"before": "yesterday", "confirm": True}, "invalid_argument"),
        ({"session_id": "bad id!", "confirm": True}, "invalid_argument"),
        # confirm is a JSON boolean: a string or a number that a lax reading would take for true deletes nothing.
        ({"agent_instance_id": a, "confirm": "true"}, "invalid_argument"),
        ({"agent_instance_id": a, "confirm": 1}, "invalid_argument"),
        ({"episode_ids": [eid], "confirm": "yes"}, "invalid_argument"),
    ):
        text = await error(client, "forget_episodes", project_id=p, **args)
        assert text.startswith(f"{code}: "), (args, text)
    for args, code in (
        ({}, "invalid_argument"),
        ({"importance_score": 2}, "invalid_argument"),
        ({"lessons_learned": "not a list"}, "invalid_argument"),
        ({"episode_id": str(uuid.uuid4()), "importance_score": 0.1}, "not_found"),
    ):
        text = await error(client, "update_episode", **{"project_id": p, "episode_id": eid, **args})
        assert text.startswith(f"{code}: "), (args, text)
    assert await listed(client, p) == [eid]
    assert await found(client, p, "report") == ["write the report"]
    # Forget-all with confirm is allowed.
    assert await ok(client, "forget_episodes", project_id=p, confirm=True) == {"forgotten": 1}


async def test_an_update_is_searchable_by_its_new_words_only(client: Client) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    eid = await record(client, p, a, "tune the cache", lessons_learned=["walrus lesson"])
    result = await ok(
        client,
        "update_episode",
        project_id=p,
        episode_id=eid,
        lessons_learned=["pelican lesson"],
        importance_score=0.9,
    )
    assert result == {"episode_id": eid, "updated": {"lessons_learned": ["pelican lesson"], "importance_score": 0.9}}
    assert await found(client, p, "walrus") == []
    assert await found(client, p, "pelican") == ["tune the cache"]
    result2 = await client.read_resource(f"memory://projects/{p}/episodes/{eid}")
    assert "pelican lesson" in result2.contents[0].text  # type: ignore[union-attr]


async def test_an_update_past_the_embedded_text_is_searchable_by_its_new_words_only(client: Client) -> None:
    """The embedded text is cut at 8,000 characters; a lesson edited after a longer description is still what
    full-text search finds, and a forget afterwards leaves no trace of the old lesson for a new episode to inherit."""
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    long = "tune the cache " + " ".join(f"step{i}" for i in range(1500))
    assert len(long) > 8_000
    eid = await record(client, p, a, long, lessons_learned=["walrus lesson"])
    await ok(client, "update_episode", project_id=p, episode_id=eid, lessons_learned=["pelican lesson"])
    assert await found(client, p, "walrus") == []
    assert [d[:14] for d in await found(client, p, "pelican")] == ["tune the cache"]
    assert await ok(client, "forget_episodes", project_id=p, episode_ids=[eid]) == {
        "forgotten": 1,
        "episode_ids": [eid],
    }
    await record(client, p, a, "rotate the keys")
    assert await found(client, p, "walrus") == []


async def test_the_same_episode_twice_is_one_episode(client: Client) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    args = {"session_id": "s", "lessons_learned": ["one", "two"], "outcome_details": "done"}
    first = await record(client, p, a, "migrate the schema", **args)
    again = await ok(
        client,
        "record_episode",
        project_id=p,
        agent_instance_id=a,
        task_type="coding",
        outcome="success",
        task_description="migrate the schema",
        importance_score=0.9,
        **args,
    )
    assert again == {"episode_id": first, "repeat": True}
    assert await listed(client, p) == [first]


@pytest.mark.parametrize("action", ["report", "merge"])
async def test_a_near_duplicate_is_reported_or_merged(
    make_settings: Callable[..., Settings], clock: FakeClock, action: str
) -> None:
    settings = make_settings(embedding_provider="hash", duplicate_similarity=0.9, duplicate_action=action)
    async with MemoryRuntime(settings, clock=clock) as rt, Client(create_server(runtime=rt), mode="legacy") as c:
        p, a = str(uuid.uuid4()), str(uuid.uuid4())
        desc = "rotate the signing keys of the payment gateway before the certificate expires next week"
        first = await record(c, p, a, desc, lessons_learned=["check expiry dates"], importance_score=0.4)
        other = await record(c, p, a, "paint the office walls blue", lessons_learned=["buy more paint"])
        near = await ok(
            c,
            "record_episode",
            project_id=p,
            agent_instance_id=a,
            task_type="coding",
            outcome="success",
            task_description=desc + " again",
            lessons_learned=["check expiry dates", "automate it"],
            importance_score=0.8,
        )
        assert near["similarity"] >= 0.9
        if action == "report":
            assert near["duplicate_of"] == first and near["episode_id"] not in (first, other)
            assert len(await listed(c, p)) == 3
        else:
            assert near["episode_id"] == first and near["merged"] is True
            assert await listed(c, p) == sorted([first, other])
            ep = await rt.episodic.get(uuid.UUID(p), first)
            assert ep.lessons_learned == ["check expiry dates", "automate it"] and ep.importance_score == 0.8
            assert await found(c, p, "automate") == [desc]
        # Another outcome is never a duplicate.
        failed = await ok(
            c,
            "record_episode",
            project_id=p,
            agent_instance_id=a,
            task_type="coding",
            outcome="failure",
            task_description=desc,
        )
        assert set(failed) == {"episode_id"}


@pytest.mark.backends("sqlite")
async def test_a_token_for_another_project_can_neither_forget_nor_edit(tmp_path: Path) -> None:
    a_project, b_project, agent = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    tokens = token_config(("b", "tok-b", [b_project]), ("admin", "tok-admin", ["*"]))
    with ServerProcess(server_env(tmp_path / "http.db", MCP_MEMORY_HTTP__TOKENS=tokens)) as server:
        async with connect(server.url, "tok-admin") as admin:
            eid = await record(admin, a_project, agent, "secret task of project A")
        async with connect(server.url, "tok-b") as b:
            for tool, args in (
                ("forget_episodes", {"episode_ids": [eid]}),
                ("forget_episodes", {"confirm": True}),
                ("forget_episodes", {"task_type": "coding"}),
                ("update_episode", {"episode_id": eid, "importance_score": 0.1}),
                ("update_episode", {"episode_id": str(uuid.uuid4()), "importance_score": 0.1}),
            ):
                text = await error(b, tool, project_id=a_project, **args)
                assert text.startswith("forbidden: "), (tool, text)
        async with connect(server.url, "tok-admin") as admin:
            data = await ok(admin, "search_episodes", project_id=a_project, query="secret task")
            assert [(h["episode_id"], h["importance_score"]) for h in data["episodes"]] == [(eid, 0.5)]


@pytest.mark.backends("sqlite")
@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_subscribers_of_an_episode_hear_of_its_update_and_forget(client: Client, inbox: Inbox) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    eid = await record(client, p, a, "watched task")
    uri = f"memory://projects/{p}/episodes/{eid}"
    await client.subscribe_resource(uri)
    await ok(client, "update_episode", project_id=p, episode_id=eid, importance_score=0.7)
    await until(lambda: inbox.updated() == [uri], what="updated after update_episode")
    await ok(client, "forget_episodes", project_id=p, episode_ids=[eid])
    await until(lambda: inbox.updated() == [uri, uri], what="updated after forget_episodes")
