"""Project isolation through every MCP path: a caller limited to project A learns nothing about project B, from
search scores, resource URIs (however spelt) or error messages. In process: the same call_tool/resources path as
every transport, with the grant set as the server's fallback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mcp_memory.config import Settings
from mcp_memory.server import create_server
from mcp_memory.server.auth import EVERYTHING, Grant
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio


async def _scores(c: Client, project: str, query: str) -> dict[str, float]:
    r = await c.call_tool("search_episodes", {"project_id": project, "query": query, "limit": 10})
    assert not r.is_error, r.content[0].text  # type: ignore[union-attr]
    return {e["task_description"]: e["score"] for e in r.structured_content["episodes"]}  # type: ignore[index]


@pytest.mark.parametrize("adapter", ["sqlite", "postgres"])
async def test_search_scores_of_project_a_do_not_depend_on_project_b(
    adapter: str, make_settings: Callable[..., Settings]
) -> None:
    """A token limited to A must learn nothing about B's episodes. A full-text score built from statistics over
    every project's episodes (an FTS5 table shared by all projects: ``bm25()``'s IDF and average length; Postgres:
    ``pg_stats`` lexeme frequencies and the "common lexeme" filter) would leak: A plants a probe word and a control
    word in its own episodes, searches for both, and the ratio of the two scores would move when, and only when,
    B's episodes contain the probe word (one B episode is enough). A word-membership oracle over another tenant's
    episodes. Both stores keep each project's statistics apart (SQLite: per-project BM25 over its own postings;
    Postgres: per-project word counts, and an exact vector scan for a project of this size); Postgres is analysed
    after each write anyway, as autovacuum would in time, to show nothing global is read. The clock stands still,
    so recency cannot move a score between probes."""
    a, b = uuid.uuid4(), uuid.uuid4()
    agent = str(uuid.uuid4())
    pg_url = ""
    if adapter == "postgres":
        from tests import pg_servers

        pg_url = pg_servers.database_url(await pg_servers.migrated_database())
        settings = Settings(database_url=pg_url)
    else:
        settings = make_settings()
    clock = FakeClock()
    server = create_server(settings, runtime_factory=lambda s: MemoryRuntime(s, clock=clock))

    async def analyze() -> None:
        if pg_url:
            engine = create_async_engine(pg_url)
            try:
                async with engine.begin() as conn:
                    await conn.execute(text("ANALYZE mcp_memory.episodes"))
            finally:
                await engine.dispose()

    async with Client(server) as c:

        async def record(project: uuid.UUID, desc: str) -> None:
            server.grants.fallback = Grant("writer", frozenset({project}))
            r = await c.call_tool(
                "record_episode",
                {
                    "project_id": str(project),
                    "agent_instance_id": agent,
                    "task_type": "t",
                    "task_description": desc,
                    "outcome": "success",
                },
            )
            assert not r.is_error, r.content[0].text  # type: ignore[union-attr]
            await analyze()

        async def probe() -> dict[str, float]:
            server.grants.fallback = Grant("only-a", frozenset({a}))
            return await _scores(c, str(a), "zanzibar filler")

        for desc in ["zanzibar", "filler"] + [f"padding {i}" for i in range(8)]:
            await record(a, desc)
        baseline = await probe()
        await record(b, "unrelated text")
        assert await probe() == baseline  # B's unrelated episodes do not show
        await record(b, "zanzibar merger plan")  # B (another tenant) mentions the probe word once
        after = await probe()
    assert after == pytest.approx(baseline, rel=1e-6), f"A's scores reveal B's episode: {baseline} -> {after}"


async def test_resource_uri_variants_never_reach_project_b(make_settings: Callable[..., Settings]) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    agent = str(uuid.uuid4())
    server = create_server(make_settings())
    sb = {"project_id": b, "agent_instance_id": agent, "session_id": "s"}
    async with Client(server) as c:
        server.grants.fallback = EVERYTHING
        assert not (await c.call_tool("spawn", {**sb, "initial_state": {"secret": "B-SECRET"}})).is_error
        cp = (await c.call_tool("pause", {**sb, "checkpoint_id": "c1"})).structured_content
        ep = (await c.call_tool("terminate", {**sb, "cleanup_working": False})).structured_content
        assert cp and ep
        eid = ep["episode_id"]
        server.grants.fallback = Grant("only-a", frozenset({uuid.UUID(a)}))
        base = f"agents/{agent}/sessions/s"
        uris = [
            f"memory://projects/{a}/../{b}/episodes",
            f"memory://projects/{a}/../{b}/episodes/{eid}",
            f"memory://projects/{a}/episodes/../../{b}/episodes/{eid}",
            f"memory://projects/{a}/%2E%2E/{b}/episodes",
            f"memory://projects/{a}%2F..%2F{b}/episodes",
            f"memory://projects/{a}/x/../../{b}/{base}",
            f"memory://projects/{a}/./../{b}/{base}/checkpoints/c1",
            f"memory://projects/{b.upper()}/episodes",
            f"memory://projects/{b}/episodes",
            f"memory://PROJECTS/{b}/episodes",
            f"MEMORY://projects/{b}/episodes",
            f"memory://projects/{b}/episodes/{eid}/extra",
            f"memory://projects/{b}/{base}",
            f"memory://projects/{b}/{base}/checkpoints",
            f"memory://projects/{b}/{base}/checkpoints/c1",
            f"memory://projects/{b}/{base}/checkpoints/c1/x",
            f"memory://projects/%7B{b}%7D/episodes",
            f"memory://user@projects/{b}/episodes",
            f"memory://projects:80/{b}/episodes",
            f"memory:projects/{b}/episodes",
            f"memory:///projects/{b}/episodes",
            f"memory://projects//{b}/episodes",
            f"memory://projects/{a}/episodes?x=/../../{b}/episodes",
            f"memory://projects/{a}/episodes#/../../{b}/episodes",
        ]
        leaks: list[str] = []
        answers: dict[str, str] = {}
        for uri in uris:
            try:
                res = await c.read_resource(uri)
                text = json.dumps([getattr(x, "text", "") for x in res.contents])
                answers[uri] = "OK " + text[:150]
                if b in text or "B-SECRET" in text or eid in text:
                    leaks.append(uri)
            except MCPError as exc:
                answers[uri] = f"ERR {exc.error.code} {exc.error.message[:150]}"
            except Exception as exc:
                answers[uri] = f"EXC {type(exc).__name__} {str(exc)[:150]}"
        for u, t in answers.items():
            print(
                u.replace(a, "<A>").replace(b, "<B>").replace(b.upper(), "<B-UP>"),
                "->",
                t.replace(a, "<A>").replace(b, "<B>"),
            )
    assert not leaks, leaks


async def test_errors_for_b_are_the_same_whether_or_not_it_exists(make_settings: Callable[..., Settings]) -> None:
    a, b, nob = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    agent = str(uuid.uuid4())
    server = create_server(make_settings())
    async with Client(server) as c:
        server.grants.fallback = EVERYTHING
        sb = {"project_id": b, "agent_instance_id": agent, "session_id": "s"}
        await c.call_tool("spawn", {**sb, "initial_state": {"k": 1}})
        await c.call_tool("pause", {**sb, "checkpoint_id": "c1"})
        await c.call_tool("terminate", sb)
        server.grants.fallback = Grant("only-a", frozenset({uuid.UUID(a)}))
        calls: list[tuple[str, dict[str, Any]]] = [
            ("spawn", {}),
            ("pause", {"checkpoint_id": "c2"}),
            ("resume", {"checkpoint_id": "c1"}),
            ("terminate", {}),
            ("list_checkpoints", {"before": "c1"}),
            ("memory_set", {"key": "k", "value": 1}),
            ("memory_get", {"key": "k"}),
            ("memory_delete", {"key": "k"}),
            ("memory_list", {}),
        ]
        for tool, extra in calls:
            texts = []
            for p in (b, nob):
                r = await c.call_tool(tool, {"project_id": p, "agent_instance_id": agent, "session_id": "s", **extra})
                assert r.is_error, (tool, r.structured_content)
                texts.append(r.content[0].text.replace(p, "<P>"))  # type: ignore[union-attr]
            assert texts[0] == texts[1] and texts[0].startswith("forbidden: "), (tool, texts)
        for p in (b, nob):
            r = await c.call_tool("search_episodes", {"project_id": p, "query": "x"})
            assert r.is_error and r.content[0].text.startswith("forbidden: ")  # type: ignore[union-attr]
            r = await c.call_tool(
                "record_episode",
                {
                    "project_id": p,
                    "agent_instance_id": agent,
                    "task_type": "t",
                    "task_description": "d",
                    "outcome": "success",
                },
            )
            assert r.is_error and r.content[0].text.startswith("forbidden: ")  # type: ignore[union-attr]
        # a non-string project_id
        for bad in (5, [b], {"x": b}, True):
            r = await c.call_tool("memory_list", {"project_id": bad, "agent_instance_id": agent, "session_id": "s"})
            print(repr(bad), r.is_error, r.content[0].text[:120])  # type: ignore[union-attr]
            assert r.is_error
        listed = await c.list_resources()
        assert listed.resources == []
        templates = await c.list_resource_templates()
        assert all(b not in t.uri_template for t in templates.resource_templates)
