"""A whole session through the in-process MCP client: tools, resources, listings, schemas."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_memory.config import Settings
from mcp_memory.server import create_server
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

# Every session runs with working memory in SQLite and in Redis; the two that go through every tool and every search
# filter run on Postgres too.
pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis")]

JSON = "application/json"
TEMPLATES = {
    "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}",
    "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}/checkpoints",
    "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}/checkpoints/{checkpoint_id}",
    "memory://projects/{project_id}/episodes",
    "memory://projects/{project_id}/episodes/{episode_id}",
    "memory://projects/{project_id}/agents/{agent_instance_id}/sessions",
    "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}/export",
}
# docs/contract.md's tool table: arguments and result fields.
TOOL_ARGS = {
    "spawn": {"project_id", "agent_instance_id", "session_id", "agent_type_id", "initial_state", "metadata"},
    "pause": {
        "project_id",
        "agent_instance_id",
        "session_id",
        "checkpoint_id",
        "label",
        "metadata",
        "keep",
        "keep_last",
    },
    "resume": {"project_id", "agent_instance_id", "session_id", "checkpoint_id", "clear_current", "metadata"},
    "terminate": {
        "project_id",
        "agent_instance_id",
        "session_id",
        "task_description",
        "outcome",
        "task_type",
        "lessons_learned",
        "consolidate_to_episodic",
        "cleanup_working",
        "metadata",
    },
    "list_checkpoints": {"project_id", "agent_instance_id", "session_id", "limit", "before"},
    "list_sessions": {"project_id", "agent_instance_id", "status", "limit", "before"},
    "delete_session": {"project_id", "agent_instance_id", "session_id", "keep_episodes"},
    "delete_checkpoint": {"project_id", "agent_instance_id", "session_id", "checkpoint_id"},
    "forget_episodes": {
        "project_id",
        "episode_ids",
        "agent_instance_id",
        "session_id",
        "task_type",
        "outcome",
        "before",
        "confirm",
    },
    "update_episode": {
        "project_id",
        "episode_id",
        "lessons_learned",
        "outcome_details",
        "importance_score",
        "metadata",
    },
    "memory_set": {"project_id", "agent_instance_id", "session_id", "key", "value", "ttl_seconds"},
    "memory_get": {"project_id", "agent_instance_id", "session_id", "key"},
    "memory_delete": {"project_id", "agent_instance_id", "session_id", "key"},
    "memory_list": {"project_id", "agent_instance_id", "session_id", "prefix"},
    "record_episode": {
        "project_id",
        "agent_instance_id",
        "session_id",
        "task_type",
        "task_description",
        "outcome",
        "outcome_details",
        "lessons_learned",
        "importance_score",
        "metadata",
    },
    "search_episodes": {"project_id", "query", "limit", "outcome", "task_type", "agent_instance_id", "since"},
    "memory_prompt": {"project_id", "agent_instance_id", "session_id", "task", "token_budget"},
}


async def ok(c: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await c.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content[0].text}"  # type: ignore[union-attr]
    assert result.structured_content is not None
    # The text content carries the same JSON, for clients that ignore structured content.
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


async def fails(c: Client, tool: str, code: str, **arguments: Any) -> str:
    result = await c.call_tool(tool, arguments)
    assert result.is_error
    text: str = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith(f"{code}: "), text
    return text


async def read_json(c: Client, uri: str) -> Any:
    """Read a resource: one JSON text content, typed application/json."""
    result = await c.read_resource(uri)
    assert len(result.contents) == 1
    content = result.contents[0]
    assert content.mime_type == JSON
    assert str(content.uri) == uri
    return json.loads(content.text)  # type: ignore[union-attr]


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


def session_uri(p: str, a: str, s: str) -> str:
    return f"memory://projects/{p}/agents/{a}/sessions/{s}"


STATE: dict[str, Any] = {
    "goal": "migrate the billing service",
    "plan": ["read", "change", "test"],
    "config": {"retries": 3, "nested": {"deep": [1, 2.5, None, True]}},
    "unicode": "héllo wörld ✓ 日本",
    "empty": {},
    "nothing": None,
    "flag": False,
    "ratio": 0.25,
}
STATE.update({f"task/{i}": {"step": i, "done": i % 2 == 0} for i in range(1, 11)})


@pytest.mark.backends("sqlite", "redis", "postgres")
async def test_whole_session(settings: Settings) -> None:
    server = create_server(settings)
    p, a, t = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    s = {"project_id": p, "agent_instance_id": a, "session_id": "billing-1.a_b"}
    uri = session_uri(p, a, s["session_id"])
    async with Client(server) as c:
        assert c.instructions and "spawn" in c.instructions

        spawned = await ok(
            c, "spawn", **s, agent_type_id=t, initial_state={"goal": STATE["goal"]}, metadata={"source": "test"}
        )
        assert spawned == {"session_id": s["session_id"], "status": "running", "initial_items": 1}

        # memory_set x N, memory_get each back.
        for key, value in STATE.items():
            assert await ok(c, "memory_set", **s, key=key, value=value) == {"key": key, "expires_at": None}
        for key, value in STATE.items():
            assert await ok(c, "memory_get", **s, key=key) == {"key": key, "value": value}
        ttl = await ok(c, "memory_set", **s, key="scratch", value="short-lived", ttl_seconds=3600)
        expires = parse_time(ttl["expires_at"])
        assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
        assert (await ok(c, "memory_delete", **s, key="scratch"))["deleted"] is True
        assert (await ok(c, "memory_delete", **s, key="scratch"))["deleted"] is False
        await fails(c, "memory_get", "not_found", **s, key="scratch")

        # memory_list, with and without prefix.
        assert (await ok(c, "memory_list", **s))["keys"] == sorted(STATE)
        assert (await ok(c, "memory_list", **s, prefix="task/"))["keys"] == sorted(k for k in STATE if "/" in k)
        assert (await ok(c, "memory_list", **s, prefix="task/1"))["keys"] == ["task/1", "task/10"]
        assert (await ok(c, "memory_list", **s, prefix="zzz"))["keys"] == []

        # The session resource shows the live working memory.
        live = await read_json(c, uri)
        assert live["status"] == "running"
        assert live["working_memory"] == STATE
        assert live["keys_count"] == len(STATE)
        assert live["agent_type_id"] == t and live["metadata"] == {"source": "test"}
        assert parse_time(live["created_at"]) <= parse_time(live["updated_at"])

        # pause with a label.
        paused = await ok(c, "pause", **s, label="before the risky step")
        first = paused["checkpoint_id"]
        assert paused["items_saved"] == len(STATE) and paused["bytes"] > 0
        parse_time(paused["created_at"])
        assert (await read_json(c, uri))["status"] == "paused"

        # Change memory, then resume: the checkpoint's memory is back, exactly.
        await ok(c, "memory_set", **s, key="goal", value="something else")
        await ok(c, "memory_set", **s, key="extra", value=1)
        await ok(c, "memory_delete", **s, key="plan")
        resumed = await ok(c, "resume", **s)
        assert resumed == {
            "checkpoint_id": first,
            "items_restored": len(STATE),
            "checkpoint_created_at": paused["created_at"],
        }
        assert (await ok(c, "memory_list", **s))["keys"] == sorted(STATE)
        assert (await ok(c, "memory_get", **s, key="goal"))["value"] == STATE["goal"]
        assert (await ok(c, "memory_get", **s, key="plan"))["value"] == STATE["plan"]
        await fails(c, "memory_get", "not_found", **s, key="extra")
        live = await read_json(c, uri)
        assert live["status"] == "running" and live["working_memory"] == STATE

        # More checkpoints, each with one more key; list them newest first and page through them.
        created = [first]
        for i in range(4):
            await ok(c, "memory_set", **s, key=f"more/{i}", value=i)
            created.append((await ok(c, "pause", **s, label=f"cp {i}"))["checkpoint_id"])
        assert len(set(created)) == 5 and created == sorted(created), "generated ids sort by creation"
        listed = await ok(c, "list_checkpoints", **s)
        assert [cp["checkpoint_id"] for cp in listed["checkpoints"]] == created[::-1]
        assert listed["next_before"] is None
        newest = listed["checkpoints"][0]
        assert newest["label"] == "cp 3" and newest["keys_count"] == len(STATE) + 4
        assert listed["checkpoints"][-1]["label"] == "before the risky step"
        assert listed["checkpoints"][-1]["keys_count"] == len(STATE)
        paged: list[str] = []
        before = None
        for _ in range(10):
            args = {"before": before} if before else {}
            page = await ok(c, "list_checkpoints", **s, limit=2, **args)
            assert len(page["checkpoints"]) <= 2
            paged += [cp["checkpoint_id"] for cp in page["checkpoints"]]
            before = page["next_before"]
            if before is None:
                break
        assert paged == created[::-1]

        # Resume an older checkpoint by id (merge mode keeps keys the checkpoint lacks).
        merged = await ok(c, "resume", **s, checkpoint_id=created[1], clear_current=False)
        assert merged["checkpoint_id"] == created[1] and merged["items_restored"] == len(STATE) + 1
        assert (await ok(c, "memory_list", **s, prefix="more/"))["keys"] == [f"more/{i}" for i in range(4)]
        await ok(c, "resume", **s, checkpoint_id=first)
        assert (await ok(c, "memory_list", **s))["keys"] == sorted(STATE)

        # The checkpoint resources.
        cps = await read_json(c, uri + "/checkpoints")
        assert [cp["checkpoint_id"] for cp in cps["checkpoints"]] == created[::-1]
        for cp in cps["checkpoints"]:
            assert cp["uri"] == f"{uri}/checkpoints/{cp['checkpoint_id']}"
        one = await read_json(c, f"{uri}/checkpoints/{first}")
        assert one["checkpoint_id"] == first and one["label"] == "before the risky step"
        assert one["state"] == STATE and one["keys_count"] == len(STATE)
        last = await read_json(c, f"{uri}/checkpoints/{created[-1]}")
        assert last["state"] == {**STATE, **{f"more/{i}": i for i in range(4)}}

        # terminate, twice: the same episode, nothing new.
        ended = await ok(
            c,
            "terminate",
            **s,
            task_description="Migrate the billing service to the new queue",
            outcome="partial",
            lessons_learned=["drain the old queue first"],
        )
        episode_id = ended["episode_id"]
        uuid.UUID(episode_id)
        assert ended == {
            "episode_id": episode_id,
            "state_items_consolidated": len(STATE),
            "items_cleared": len(STATE),
            "outcome": "partial",
        }
        assert await ok(c, "terminate", **s) == ended
        assert await ok(c, "terminate", **s, outcome="failure", task_description="other") == ended
        assert (await ok(c, "memory_list", **s))["keys"] == []
        await fails(c, "memory_set", "conflict", **s, key="k", value=1)
        assert [cp["checkpoint_id"] for cp in (await ok(c, "list_checkpoints", **s))["checkpoints"]] == created[::-1]
        live = await read_json(c, uri)
        assert live["status"] == "terminated" and live["working_memory"] == {}
        assert live["episode_id"] == episode_id
        assert (await read_json(c, f"{uri}/checkpoints/{first}"))["state"] == STATE

        # search_episodes finds it.
        hits = (await ok(c, "search_episodes", project_id=p, query="billing queue migration"))["episodes"]
        assert hits and hits[0]["episode_id"] == episode_id
        hit = hits[0]
        assert hit["score"] > 0 and hit["outcome"] == "partial"
        assert hit["lessons_learned"] == ["drain the old queue first"]
        assert hit["session_id"] == s["session_id"] and hit["agent_instance_id"] == a
        assert "goal" in hit["context_summary"]
        assert len((await ok(c, "search_episodes", project_id=p, query="billing"))["episodes"]) == 1

        # The episode resources.
        episodes = await read_json(c, f"memory://projects/{p}/episodes")
        assert [e["episode_id"] for e in episodes["episodes"]] == [episode_id]
        ep = await read_json(c, f"memory://projects/{p}/episodes/{episode_id}")
        assert ep["episode_id"] == episode_id and ep["project_id"] == p
        assert ep["task_description"] == "Migrate the billing service to the new queue"
        assert ep["outcome"] == "partial" and ep["lessons_learned"] == ["drain the old queue first"]
        assert ep["uri"] == f"memory://projects/{p}/episodes/{episode_id}"
        assert episodes["episodes"][0] == ep


@pytest.mark.backends("sqlite", "redis", "postgres")
async def test_record_and_search_episodes_with_filters(settings: Settings) -> None:
    server = create_server(settings)
    p, other_project = str(uuid.uuid4()), str(uuid.uuid4())
    a1, a2 = str(uuid.uuid4()), str(uuid.uuid4())
    async with Client(server) as c:

        async def record(project: str, agent: str, **fields: Any) -> str:
            return (await ok(c, "record_episode", project_id=project, agent_instance_id=agent, **fields))["episode_id"]

        e_fix = await record(
            p,
            a1,
            task_type="bug_fix",
            task_description="Fix the flaky login test",
            outcome="success",
            lessons_learned=["pin the clock in tests"],
            importance_score=0.9,
            outcome_details="The test depended on wall-clock time.",
            session_id="s-1",
            metadata={"ticket": "BUG-1"},
        )
        e_deploy = await record(
            p,
            a2,
            task_type="deployment",
            task_description="Deploy the login service",
            outcome="failure",
            lessons_learned=["check the staging secrets"],
        )
        e_loop = await record(
            p, a1, task_type="bug_fix", task_description="Fix the login redirect loop", outcome="partial"
        )
        e_other = await record(
            other_project, a1, task_type="bug_fix", task_description="Fix the login test", outcome="success"
        )
        assert len({e_fix, e_deploy, e_loop, e_other}) == 4

        async def search(**args: Any) -> list[dict[str, Any]]:
            hits: list[dict[str, Any]] = (await ok(c, "search_episodes", **args))["episodes"]
            scores = [h["score"] for h in hits]
            assert scores == sorted(scores, reverse=True), "best first"
            return hits

        def ids(hits: list[dict[str, Any]]) -> set[str]:
            return {h["episode_id"] for h in hits}

        assert ids(await search(project_id=p, query="login")) == {e_fix, e_deploy, e_loop}
        assert (await search(project_id=p, query="flaky login test"))[0]["episode_id"] == e_fix
        assert ids(await search(project_id=p, query="login", outcome="success")) == {e_fix}
        assert ids(await search(project_id=p, query="login", outcome="failure")) == {e_deploy}
        assert ids(await search(project_id=p, query="login", task_type="bug_fix")) == {e_fix, e_loop}
        assert ids(await search(project_id=p, query="login", agent_instance_id=a2)) == {e_deploy}
        assert ids(await search(project_id=p, query="login", agent_instance_id=a1, outcome="partial")) == {e_loop}
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert ids(await search(project_id=p, query="login", since=past)) == {e_fix, e_deploy, e_loop}
        assert await search(project_id=p, query="login", since=future) == []
        assert ids(await search(project_id=p, query="login", since="2000-01-01")) == {e_fix, e_deploy, e_loop}
        assert len(await search(project_id=p, query="login", limit=1)) == 1
        assert await search(project_id=p, query="kubernetes autoscaler") == []
        assert ids(await search(project_id=other_project, query="login")) == {e_other}
        assert await search(project_id=str(uuid.uuid4()), query="login") == []

        hit = (await search(project_id=p, query="flaky", outcome="success"))[0]
        assert hit["task_type"] == "bug_fix" and hit["importance_score"] == 0.9
        assert hit["outcome_details"] == "The test depended on wall-clock time."
        assert hit["lessons_learned"] == ["pin the clock in tests"] and hit["session_id"] == "s-1"
        assert hit["agent_instance_id"] == a1 and isinstance(hit["score"], float)
        parse_time(hit["created_at"])

        ep = await read_json(c, f"memory://projects/{p}/episodes/{e_fix}")
        assert ep["metadata"] == {"ticket": "BUG-1"} and ep["importance_score"] == 0.9
        recent = await read_json(c, f"memory://projects/{p}/episodes")
        assert [e["episode_id"] for e in recent["episodes"]] == [e_loop, e_deploy, e_fix], "newest first"


async def test_resources_list_offers_recent_checkpoints_and_episodes_paged(
    make_settings: Callable[..., Settings],
) -> None:
    server = create_server(make_settings(resources_page_size=2))
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    async with Client(server) as c:
        assert (await c.list_resources()).resources == []
        expected: list[str] = []  # oldest first
        for sid in ["s1", "s2"]:
            s = {"project_id": p, "agent_instance_id": a, "session_id": sid}
            await ok(c, "spawn", **s, initial_state={"k": sid})
            cp = (await ok(c, "pause", **s, label=f"label of {sid}"))["checkpoint_id"]
            expected.append(f"{session_uri(p, a, sid)}/checkpoints/{cp}")
        ep = (
            await ok(
                c,
                "record_episode",
                project_id=p,
                agent_instance_id=a,
                task_type="t",
                task_description="an episode",
                outcome="success",
            )
        )["episode_id"]
        expected.append(f"memory://projects/{p}/episodes/{ep}")
        s = {"project_id": p, "agent_instance_id": a, "session_id": "s1"}
        cp = (await ok(c, "pause", **s, checkpoint_id="named"))["checkpoint_id"]
        expected.append(f"{session_uri(p, a, 's1')}/checkpoints/{cp}")
        ep = (await ok(c, "terminate", **s, task_description="the s1 session"))["episode_id"]
        expected.append(f"memory://projects/{p}/episodes/{ep}")

        pages = []
        cursor = None
        for _ in range(10):
            page = await c.list_resources(cursor=cursor)
            pages.append(page.resources)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert [len(pg) for pg in pages] == [2, 2, 1]
        listed = [r for pg in pages for r in pg]
        assert [str(r.uri) for r in listed] == expected[::-1], "newest first, no duplicates"
        for r in listed:
            assert r.mime_type == JSON and r.name
            body = await read_json(c, str(r.uri))
            assert isinstance(body, dict)

        with pytest.raises(MCPError) as info:
            await c.list_resources(cursor="not-a-cursor")
        assert str(info.value).startswith("invalid_argument: ")


async def test_resources_list_is_bounded_and_scoped(make_settings: Callable[..., Settings]) -> None:
    p1, p2, a = uuid.uuid4(), uuid.uuid4(), str(uuid.uuid4())
    server = create_server(make_settings(resources_page_size=50, resources_list_limit=3, project_id=p1))
    async with Client(server) as c:
        for project in (p1, p2):
            for i in range(3):
                await ok(
                    c,
                    "record_episode",
                    project_id=str(project),
                    agent_instance_id=a,
                    task_type="t",
                    task_description=f"episode {i}",
                    outcome="success",
                )
            s = {"project_id": str(project), "agent_instance_id": a, "session_id": "s"}
            await ok(c, "spawn", **s)
            await ok(c, "pause", **s)
        page = await c.list_resources()
        assert page.next_cursor is None
        assert len(page.resources) == 3, "bounded by resources_list_limit"
        assert all(str(r.uri).startswith(f"memory://projects/{p1}/") for r in page.resources), (
            "only the configured project"
        )


async def test_resource_of_another_project_or_session_is_not_found(settings: Settings) -> None:
    server = create_server(settings)
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    other_p, other_a = str(uuid.uuid4()), str(uuid.uuid4())
    async with Client(server) as c:
        s1 = {"project_id": p, "agent_instance_id": a, "session_id": "s1"}
        await ok(c, "spawn", **s1, initial_state={"secret": "of s1"})
        await ok(c, "pause", **s1, checkpoint_id="cp1")
        await ok(c, "spawn", project_id=p, agent_instance_id=a, session_id="s2")
        ep = (
            await ok(
                c,
                "record_episode",
                project_id=p,
                agent_instance_id=a,
                task_type="t",
                task_description="private",
                outcome="success",
            )
        )["episode_id"]
        # The real ones are readable ...
        await read_json(c, session_uri(p, a, "s1"))
        await read_json(c, f"{session_uri(p, a, 's1')}/checkpoints/cp1")
        await read_json(c, f"memory://projects/{p}/episodes/{ep}")

        # ... but not through another project, agent or session.
        for uri in [
            session_uri(other_p, a, "s1"),
            session_uri(p, other_a, "s1"),
            session_uri(p, a, "s3"),
            session_uri(other_p, a, "s1") + "/checkpoints",
            session_uri(p, other_a, "s1") + "/checkpoints",
            session_uri(other_p, a, "s1") + "/checkpoints/cp1",
            session_uri(p, other_a, "s1") + "/checkpoints/cp1",
            session_uri(p, a, "s2") + "/checkpoints/cp1",
            f"memory://projects/{other_p}/episodes/{ep}",
        ]:
            with pytest.raises(MCPError) as info:
                await c.read_resource(uri)
            message = str(info.value)
            assert message.startswith("not_found: "), (uri, message)
            assert "of s1" not in message
        assert (await read_json(c, f"memory://projects/{other_p}/episodes"))["episodes"] == []

        # Tools are scoped the same way.
        assert (await ok(c, "memory_list", project_id=p, agent_instance_id=a, session_id="s2"))["keys"] == []
        await fails(
            c, "memory_get", "not_found", project_id=other_p, agent_instance_id=a, session_id="s1", key="secret"
        )
        await fails(c, "resume", "not_found", project_id=p, agent_instance_id=a, session_id="s2", checkpoint_id="cp1")


async def test_resource_templates_are_listed(settings: Settings) -> None:
    async with Client(create_server(settings)) as c:
        templates = (await c.list_resource_templates()).resource_templates
        assert {t.uri_template for t in templates} == TEMPLATES
        assert len(templates) == 7
        for t in templates:
            # The export resource is an export file (docs/export-format.md): JSON Lines.
            assert t.mime_type == ("application/jsonl" if t.uri_template.endswith("/export") else JSON)
            assert t.name and t.description


async def test_tools_have_descriptions_and_schemas(settings: Settings) -> None:
    async with Client(create_server(settings)) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert set(tools) == set(TOOL_ARGS)
        for name, tool in tools.items():
            assert tool.description and len(tool.description) > 30, name
            props = tool.input_schema.get("properties", {})
            assert TOOL_ARGS[name] <= set(props), name
            required = tool.input_schema.get("required", [])
            assert "project_id" not in required and "agent_instance_id" not in required, "the scope may default"
            # No output schemas (issue 12: they cost a fifth of the tool list); results are checked by calling them.
            assert tool.output_schema is None, name
        spawn_props = tools["spawn"].input_schema["properties"]
        assert "pattern" in json.dumps(spawn_props["session_id"])
        assert set(tools["spawn"].input_schema["required"]) == {"session_id"}
        assert "success" in json.dumps(tools["terminate"].input_schema["properties"]["outcome"])


# -- TTL in resources ------------------------------------------------------------------------------------------------


async def test_checkpoint_resource_hides_keys_whose_ttl_passed(settings: Settings, clock: FakeClock) -> None:
    server = create_server(runtime=MemoryRuntime(settings, clock=clock))
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    s = {"project_id": p, "agent_instance_id": a, "session_id": "s1"}
    async with Client(server) as c:
        await c.call_tool("spawn", {**s, "initial_state": {"keep": 1}})
        await c.call_tool("memory_set", {**s, "key": "secret", "value": "short-lived", "ttl_seconds": 10})
        await c.call_tool("pause", {**s, "checkpoint_id": "cp"})
        uri = f"memory://projects/{p}/agents/{a}/sessions/s1/checkpoints/cp"
        before = json.loads((await c.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        assert before["state"] == {"keep": 1, "secret": "short-lived"}
        assert before["expires_at"]["secret"].endswith("Z")
        clock.advance(60)
        after = json.loads((await c.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        assert after["state"] == {"keep": 1} and after["expires_at"] == {}


# -- resources/list paging -------------------------------------------------------------------------------------------


async def test_resources_list_pages_do_not_repeat_when_checkpoints_arrive(
    make_settings: Callable[..., Settings],
) -> None:
    server = create_server(make_settings(resources_page_size=2))
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    s = {"project_id": p, "agent_instance_id": a, "session_id": "s1"}
    async with Client(server) as c:
        await c.call_tool("spawn", s)
        for i in range(4):
            await c.call_tool("pause", {**s, "checkpoint_id": f"c{i}"})
        first = await c.list_resources()
        assert [r.uri.rsplit("/", 1)[-1] for r in first.resources] == ["c3", "c2"]
        await c.call_tool("pause", {**s, "checkpoint_id": "c4"})  # arrives between pages
        second = await c.list_resources(cursor=first.next_cursor)
        assert [r.uri.rsplit("/", 1)[-1] for r in second.resources] == ["c1", "c0"]
        assert second.next_cursor is None


async def test_resources_list_pages_skip_nothing_when_checkpoints_arrive_at_the_bound(
    make_settings: Callable[..., Settings],
) -> None:
    """A next page reads what is older than its cursor: items added since the first page push none of the older
    ones out of ``resources_list_limit`` (the listing offers what it would have offered without them)."""
    server = create_server(make_settings(resources_page_size=2, resources_list_limit=6))
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    s = {"project_id": p, "agent_instance_id": a, "session_id": "s1"}
    async with Client(server) as c:
        await c.call_tool("spawn", s)
        for i in range(8):
            await c.call_tool("pause", {**s, "checkpoint_id": f"c{i}"})
        page = await c.list_resources()
        served = [r.uri.rsplit("/", 1)[-1] for r in page.resources]
        for i in (8, 9):  # arrive between pages
            await c.call_tool("pause", {**s, "checkpoint_id": f"c{i}"})
        while page.next_cursor is not None:
            page = await c.list_resources(cursor=page.next_cursor)
            served += [r.uri.rsplit("/", 1)[-1] for r in page.resources]
        assert served == ["c7", "c6", "c5", "c4", "c3", "c2"]
