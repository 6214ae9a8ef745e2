"""What an erase forgets is named nowhere afterwards: once ``mcp-memory forget`` has erased an agent, a session or a
whole project, or ``delete_session`` / ``forget_episodes`` has taken a project's last session or episodes, no row of
any table (SQLite: every table of ``sqlite_master``, and its schema text; Postgres: every table of our schema, and
the names and definitions of its indexes and relations) and no Redis key holds that id. Before, SQLite kept the
project's full-text and vector bookkeeping rows (``text_projects``, ``vector_projects``) and Postgres its count rows
at 0 (``project_episode_counts``, ``project_lexeme_counts``). Another project's search results are unchanged
throughout, on SQLite, Redis + SQLite and Postgres (Postgres with per-project vector indexes, which name the
project)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from sqlalchemy import text

from mcp_memory.cli import main as cli_main
from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.schema import SCHEMA
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.sqlite.store import SqliteStore

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

QUERIES = ("rebuild the search index", "parser release", "flaky deploy")
TEXTS = ("rebuild the search index after a bulk load", "ship the parser release", "retry the flaky deploy")
EXACT_SCAN_MAX = 3
"""Postgres: projects above this many episodes get a vector index of their own (named after the project)."""


def needles(*ids: uuid.UUID | str) -> list[str]:
    """How an id can be written down: a UUID as text and as the hex of index names; a session id as it is."""
    out: list[str] = []
    for i in ids:
        out.extend((str(i), i.hex) if isinstance(i, uuid.UUID) else (i,))
    return out


async def sqlite_traces(store: SqliteStore, words: list[str]) -> list[str]:
    found: list[str] = []
    async with store._read() as conn:
        schema = (await conn.execute(text("SELECT type, name, tbl_name, sql FROM sqlite_master"))).all()
        for row in schema:
            found += [f"sqlite_master {row.name}" for w in words if w in " ".join(map(str, row))]
        for (table,) in (await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))).all():
            for row in (await conn.execute(text(f'SELECT * FROM "{table}"'))).all():
                cells = " ".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row)
                found += [f"{table}: {row}" for w in words if w.lower() in cells.lower()]
    return found


async def postgres_traces(store: PostgresStore, words: list[str]) -> list[str]:
    patterns = [f"%{w}%" for w in words]
    found: list[str] = []
    async with store._read() as conn:
        tables = await conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": SCHEMA}
        )
        for (table,) in tables.all():
            hits = await conn.execute(
                text(f'SELECT CAST(r AS text) FROM {SCHEMA}."{table}" AS r WHERE CAST(r AS text) ILIKE ANY(:w)'),
                {"w": patterns},
            )
            found += [f"{table}: {row[0][:200]}" for row in hits]
        names = await conn.execute(
            text(
                "SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = :s UNION ALL "
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s"
            ),
            {"s": SCHEMA},
        )
        found += [f"relation {row[0]}" for row in names if any(w.lower() in row[0].lower() for w in words)]
    return found


async def redis_traces(store: RedisWorkingStore, words: list[str]) -> list[str]:
    found: list[str] = []
    async for key in store._client.scan_iter(match=f"{store.key_prefix}:*", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        found += [f"redis key {name}" for w in words if w in name]
    return found


async def traces(rt: MemoryRuntime, *ids: uuid.UUID | str) -> list[str]:
    """Every row, index, relation or key that names one of ``ids``."""
    words = needles(*ids)
    if isinstance(rt.store, SqliteStore):
        found = await sqlite_traces(rt.store, words)
    else:
        assert isinstance(rt.store, PostgresStore)
        found = await postgres_traces(rt.store, words)
    if isinstance(rt.working_store, RedisWorkingStore):
        found += await redis_traces(rt.working_store, words)
    return found


async def fill(rt: MemoryRuntime, project: uuid.UUID, agents: list[uuid.UUID], sessions: list[str]) -> None:
    """Per agent and session: working memory (a key with a TTL too), a pause, a terminated session with its episode;
    and episodes with and without a session, enough for a Postgres vector index of the project's own."""
    for agent in agents:
        for sid in sessions:
            ids = (project, agent, sid)
            await rt.lifecycle.spawn(*ids, initial_state={"goal": sid})
            await rt.working.set(Scope(*ids), "soon", "gone", ttl_seconds=3600)
            await rt.lifecycle.pause(*ids, label="p")
        await rt.lifecycle.terminate(project, agent, sessions[-1], task_description="ship the parser release")
        for i, description in enumerate(TEXTS * 2):
            await rt.episodic.record_episode(
                project_id=project,
                agent_instance_id=agent,
                session_id=sessions[0] if i % 2 else None,
                task_type="ops",
                task_description=f"{description} {i}",
                outcome="success",
                lessons_learned=[f"lesson {i}"],
            )


async def results(rt: MemoryRuntime, project: uuid.UUID) -> list[list[tuple[str, float]]]:
    return [
        [(str(h.episode_id), h.score) for h in await rt.episodic.search(project, q, limit=20, mode=mode)]
        for q in QUERIES
        for mode in ("hybrid", "text", "vector")
    ]


def session_id() -> str:
    return f"task-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def rt(make_settings: Callable[..., Settings]) -> AsyncIterator[MemoryRuntime]:
    settings = make_settings(embedding_provider="hash")
    async with MemoryRuntime(settings, embedding_retry=False) as runtime:
        if isinstance(runtime.store, PostgresStore):
            runtime.store.exact_scan_max = EXACT_SCAN_MAX
        yield runtime


async def test_forget_of_an_agent_a_session_then_the_project_leaves_no_trace_and_other_results_as_they_were(
    rt: MemoryRuntime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    a_agents, a_sessions = [uuid.uuid4(), uuid.uuid4()], [session_id(), session_id()]
    await fill(rt, a, a_agents, a_sessions)
    await fill(rt, b, [uuid.uuid4()], [session_id()])
    if isinstance(rt.store, PostgresStore):
        assert sorted(await rt.store.build_vector_indexes()) == sorted([a, b])
    before = await results(rt, b)
    assert all(before)
    assert await traces(rt, a, *a_agents, *a_sessions)

    # The operator's CLI, in a thread of its own (it runs its own event loop, as from a shell).
    settings = rt.settings
    monkeypatch.setenv("MCP_MEMORY_CONFIG", "")
    monkeypatch.setenv("MCP_MEMORY_DATABASE_URL", settings.resolved_database_url())
    if settings.redis_url is not None:
        monkeypatch.setenv("MCP_MEMORY_REDIS_URL", str(settings.redis_url))
        monkeypatch.setenv("MCP_MEMORY_REDIS_KEY_PREFIX", settings.redis_key_prefix)

    async def forget(*args: str) -> dict[str, Any]:
        capsys.readouterr()
        assert await anyio.to_thread.run_sync(cli_main, ["forget", "--project", str(a), *args]) == 0
        report: dict[str, Any] = json.loads(capsys.readouterr().out)
        return report

    assert (await forget("--agent", str(a_agents[0])))["episodes"] == len(TEXTS) * 2 + 1
    assert await traces(rt, a_agents[0]) == []
    assert await results(rt, b) == before
    assert (await forget("--session", a_sessions[1]))["sessions"] == 1
    assert await traces(rt, a_sessions[1]) == []
    assert await results(rt, b) == before
    assert (await forget())["sessions"] == 1
    assert await traces(rt, a, *a_agents, *a_sessions) == []
    assert await results(rt, b) == before


async def test_deleting_a_projects_last_session_with_its_episodes_leaves_no_trace(rt: MemoryRuntime) -> None:
    a, b, agent, sid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), session_id()
    await rt.lifecycle.spawn(a, agent, sid, initial_state={"goal": "x"})
    await rt.lifecycle.pause(a, agent, sid)
    for description in TEXTS:
        await rt.episodic.record_episode(
            project_id=a,
            agent_instance_id=agent,
            session_id=sid,
            task_type="ops",
            task_description=description,
            outcome="success",
        )
    await fill(rt, b, [uuid.uuid4()], [session_id()])
    before = await results(rt, b)
    deleted = await rt.control.delete_session(a, agent, sid, keep_episodes=False)
    assert deleted.removed.episodes == len(TEXTS)
    assert await traces(rt, a, agent, sid) == []
    assert await results(rt, b) == before


async def test_forgetting_a_projects_last_episodes_leaves_no_trace(rt: MemoryRuntime) -> None:
    a, b, agent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for i, description in enumerate(TEXTS * 2):
        await rt.episodic.record_episode(
            project_id=a,
            agent_instance_id=agent,
            task_type="ops",
            task_description=f"{description} {i}",
            outcome="success",
        )
    await fill(rt, b, [uuid.uuid4()], [session_id()])
    if isinstance(rt.store, PostgresStore):
        assert sorted(await rt.store.build_vector_indexes()) == sorted([a, b])
    before = await results(rt, b)
    # One episode first: the project still holds the others, and keeps what it needs for them.
    first = (await rt.episodic.recent(a, 1))[0].episode_id
    assert (await rt.episode_control.forget(a, episode_ids=[first])).episode_ids
    assert await traces(rt, a)
    assert len((await rt.episode_control.forget(a, confirm=True)).episode_ids) == len(TEXTS) * 2 - 1
    assert await traces(rt, a, agent) == []
    assert await results(rt, b) == before
