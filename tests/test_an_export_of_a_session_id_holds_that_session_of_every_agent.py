"""``mcp-memory export --project P --session S`` without ``--agent`` exports the sessions of id S under every agent
of P, as ``mcp-memory forget --project P --session S`` erases them: each with its working memory (TTLs included),
checkpoints and events, and the episodes recorded with that session id; nothing else. The file imports with kept
ids into a scope emptied of those sessions (the rest of the project left in place) and into an empty project, and
with ``--as-project``, each giving the same export back; the one-session form (``--agent A --session S``) is as it
was. Real CLI (``mcp_memory.cli.main`` in a thread of its own, as from a shell) on SQLite, Redis + SQLite, Postgres
and Redis + Postgres."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from mcp_memory.cli import main as cli_main
from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests.transfer_helpers import comparable, records

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

HASH = {"embedding_provider": "hash", "embedding_dimension": 256}
"""Episodes get vectors (256 wide, as the Postgres test schema), so ``--vectors`` has some to carry."""


async def fill(rt: MemoryRuntime, project: uuid.UUID, agents: list[uuid.UUID]) -> set[str]:
    """Agents 0 and 1 each hold a session ``s1`` and one other; agent 2 only another. Each session has keys with and
    without TTL and three checkpoints; agent 1's ``s1`` is terminated keeping its keys. Episodes are recorded by
    every agent with ``s1``, another session id, or none. Returns the ids of the episodes recorded with ``s1``."""
    sessions = [(agents[0], "s1"), (agents[0], "s2"), (agents[1], "s1"), (agents[1], "s3"), (agents[2], "s2")]
    for agent, sid in sessions:
        scope = Scope(project, agent, sid)
        await rt.lifecycle.spawn(project, agent, sid, initial_state={"goal": sid}, metadata={"agent": str(agent)})
        await rt.working.set(scope, "short", f"soon {sid}", ttl_seconds=3600)
        for p in range(3):
            await rt.working.set(scope, "step", p)
            await rt.lifecycle.pause(project, agent, sid, label=f"p{p}", keep=p == 0)
    done = await rt.lifecycle.terminate(
        project, agents[1], "s1", task_description="ship the parser release", cleanup_working=False
    )
    in_s1 = {str(done.data["episode_id"])}
    for i in range(9):
        agent, sid = agents[i % 3], ("s1", "s2", None)[i // 3]
        ep = await rt.episodic.record_episode(
            project_id=project,
            agent_instance_id=agent,
            session_id=sid,
            task_type="deploy",
            task_description=f"rebuild the search index, attempt {i}",
            outcome="success",
            lessons_learned=[f"lesson {i}"],
        )
        if sid == "s1":
            # Agent 2's too: it has no session s1, but its episode names s1, and forget --session s1 erases it.
            in_s1.add(str(ep.episode_id))
    return in_s1


def body(path: Path) -> list[str]:
    """The file's records but header and trailer, without what differs between two exports of the same data (TTL
    remaining, vectors), each as its JSON text."""
    return [orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in comparable(path)[0][1:-1]]


def by_kind(path: Path) -> Counter[str]:
    return Counter(r["kind"] for r in records(path)[1:-1])


async def check_session_only_export(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    project, other_project = uuid.uuid4(), uuid.uuid4()
    agents = [uuid.uuid4() for _ in range(3)]
    monkeypatch.setenv("MCP_MEMORY_CONFIG", "")
    monkeypatch.setenv("MCP_MEMORY_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("MCP_MEMORY_EMBEDDING_PROVIDER", "hash")
    monkeypatch.setenv("MCP_MEMORY_EMBEDDING_DIMENSION", "256")
    if settings.redis_url is not None:
        monkeypatch.setenv("MCP_MEMORY_REDIS_URL", str(settings.redis_url))
        monkeypatch.setenv("MCP_MEMORY_REDIS_KEY_PREFIX", settings.redis_key_prefix)

    async def cli(*args: str) -> str:
        capsys.readouterr()
        code = await anyio.to_thread.run_sync(cli_main, list(args))
        out, err = capsys.readouterr()
        assert code == 0, err
        return str(out)

    async def export(name: str, *args: str, of: uuid.UUID = project) -> Path:
        path = tmp_path / f"{name}.jsonl"
        await cli("export", "--project", str(of), *args, "--output", str(path))
        return path

    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        in_s1 = await fill(rt, project, agents)
        await fill(rt, other_project, agents)  # the same agents and session ids in another project

    whole = await export("s1", "--session", "s1", "--vectors")
    recs = records(whole)
    assert recs[0]["scope"] == {"project_id": str(project), "agent_instance_id": None, "session_id": "s1"}
    assert recs[0]["counts"] == recs[-1]["counts"]
    assert all(r["project_id"] == str(project) and r["session_id"] == "s1" for r in recs[1:-1])
    held = {(r["agent_instance_id"], r["kind"]) for r in recs[1:-1] if r["kind"] != "episode"}
    for agent in (agents[0], agents[1]):
        assert {k for a, k in held if a == str(agent)} == {"session", "working", "checkpoint", "event"}
    assert {a for a, _ in held} == {str(agents[0]), str(agents[1])}
    assert by_kind(whole)["session"] == 2 and by_kind(whole)["checkpoint"] == 6
    assert {r["episode_id"] for r in recs if r["kind"] == "episode"} == in_s1
    assert all(r["embedding"] is not None for r in recs if r["kind"] == "episode")
    short = [r for r in recs if r["kind"] == "working" and r["key"] == "short"]
    assert len(short) == 2 and all(r["expires_at"] is not None and 0 < r["ttl_remaining"] <= 3600 for r in short)

    # The one-session form is as it was: that agent's session alone; the two of them are the session-only export
    # but for the episode agent 2 recorded with s1 (it has no session s1).
    parts: list[str] = []
    for agent in (agents[0], agents[1]):
        one = await export(f"one-{agent}", "--agent", str(agent), "--session", "s1")
        head = records(one)[0]
        assert head["scope"] == {"project_id": str(project), "agent_instance_id": str(agent), "session_id": "s1"}
        assert by_kind(one)["session"] == 1 and all(r["agent_instance_id"] == str(agent) for r in records(one)[1:-1])
        parts += body(one)
    plain = await export("s1-plain", "--session", "s1")
    from_agent_2 = [line for line in body(plain) if f'"agent_instance_id":"{agents[2]}"' in line]
    assert len(from_agent_2) == 1 and '"kind":"episode"' in from_agent_2[0]
    assert sorted(body(plain)) == sorted(parts + from_agent_2)

    # An id no agent holds, with no episode recorded under it: an empty export, as of an unknown session of one agent.
    for args in (("--session", "nope"), ("--agent", str(agents[0]), "--session", "nope")):
        empty = records(await export("nope", *args))
        assert [r["kind"] for r in empty] == ["header", "trailer"]
        assert set(empty[0]["counts"].values()) == {0} and empty[-1]["counts"] == empty[0]["counts"]
    # An id the agent holds no session of, under which it recorded an episode: that episode alone.
    lone = records(await export("lone", "--agent", str(agents[1]), "--session", "s2"))
    assert [r["kind"] for r in lone] == ["header", "episode", "trailer"]
    assert (lone[1]["agent_instance_id"], lone[1]["session_id"]) == (str(agents[1]), "s2")

    # With --as-project: everything lands there, and its export (of s1, or of the whole project) gives the file
    # back but for the project and the episodes renamed away from the ids project P holds.
    moved = uuid.uuid4()
    report = json.loads(await cli("import", str(whole), "--as-project", str(moved)))
    assert report["counts"]["sessions"] == 2 and len(report["renamed_episodes"]) == len(in_s1)
    expected = body(whole)
    for old, new in [(str(project), str(moved)), *report["renamed_episodes"].items()]:
        expected = [line.replace(old, new) for line in expected]
    assert body(await export("moved-s1", "--session", "s1", "--vectors", of=moved)) == expected
    assert body(await export("moved", "--vectors", of=moved)) == expected

    # Kept ids into the scope emptied of the s1 sessions (and their episodes) by forget: the rest of the project
    # stays, and the import is not refused for it.
    before = sorted(body(await export("before")))
    forgotten = json.loads(await cli("forget", "--project", str(project), "--session", "s1"))
    assert forgotten["sessions"] == 2 and forgotten["episodes"] == len(in_s1)
    report = json.loads(await cli("import", str(whole)))
    assert report["counts"]["sessions"] == 2 and not report["renamed_episodes"]
    assert body(await export("again", "--session", "s1", "--vectors")) == body(whole)
    assert sorted(body(await export("after"))) == before
    code = await anyio.to_thread.run_sync(cli_main, ["import", str(whole)])
    assert code == 1 and capsys.readouterr().err.startswith("mcp-memory: conflict:")

    # Kept ids into an empty project.
    await cli("forget", "--project", str(project))
    await cli("import", str(whole))
    assert body(await export("empty-s1", "--session", "s1", "--vectors")) == body(whole)
    assert body(await export("empty", "--vectors")) == body(whole)


async def test_an_export_of_a_session_id_holds_that_session_of_every_agent(
    make_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    await check_session_only_export(make_settings(**HASH), tmp_path, monkeypatch, capsys)


@pytest.mark.backends("redis")
async def test_an_export_of_a_session_id_holds_that_session_of_every_agent_on_redis_and_postgres(
    make_settings: Any, postgres_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    settings: Settings = make_settings(database_url=postgres_database_url, **HASH)
    await check_session_only_export(settings, tmp_path, monkeypatch, capsys)
