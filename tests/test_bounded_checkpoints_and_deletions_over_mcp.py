"""Bounded checkpoints (retention in the pause transaction, ``keep``, ``keep_last``), ``delete_checkpoint`` and
``delete_session`` through the SDK's real client on every store, a token's scope over HTTP, and the operator's
``mcp-memory forget`` (SQLite as a subprocess; Redis + Postgres through the CLI's entry point)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mcp_memory.cli import main as cli_main
from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.server import create_server
from mcp_memory.services.runtime import MemoryRuntime
from tests.http_helpers import EXE, ServerProcess, connect, error, ok, server_env, token_config

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


def new_scope(session_id: str = "work-1", agent: str | None = None, project: str | None = None) -> dict[str, str]:
    return {
        "project_id": project or str(uuid.uuid4()),
        "agent_instance_id": agent or str(uuid.uuid4()),
        "session_id": session_id,
    }


async def everything(c: Client, scope: dict[str, str]) -> dict[str, Any]:
    """What a client can read of one session."""
    base = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}".format(**scope)
    checkpoints = await ok(c, "list_checkpoints", **scope, limit=500)
    states = [
        (await c.read_resource(f"{base}/checkpoints/{cp['checkpoint_id']}")).contents[0].text  # type: ignore[union-attr]
        for cp in checkpoints["checkpoints"]
    ]
    return {
        "session": (await c.read_resource(base)).contents[0].text,  # type: ignore[union-attr]
        "checkpoints": checkpoints,
        "states": states,
    }


@pytest.mark.backends("sqlite")
async def test_a_thousand_pauses_with_retention_ten_keep_ten_and_the_file_stops_growing(
    make_settings: Any, tmp_path: Path
) -> None:
    settings: Settings = make_settings(checkpoint_retention_count=10, event_retention_count=10)
    path = settings.database_url.split("///", 1)[1]
    scope = new_scope()
    big = "x" * 2000  # a few KB per checkpoint, so growth would show

    def compacted() -> tuple[int, int, int]:
        """After compaction (VACUUM): the file's size, and its checkpoints and events by rows."""
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("VACUUM")
            checkpoints = db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
            events = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        return Path(path).stat().st_size, checkpoints, events

    async with MemoryRuntime(settings) as rt:
        lc = rt.lifecycle
        await lc.spawn(scope["project_id"], scope["agent_instance_id"], scope["session_id"])
        await lc.pause(scope["project_id"], scope["agent_instance_id"], scope["session_id"], label="first", keep=True)
        sizes = {}
        for i in range(1, 1001):
            await rt.working.set(Scope.parse(*scope.values()), "k", f"{big}{i}")
            await lc.pause(scope["project_id"], scope["agent_instance_id"], scope["session_id"])
            if i in (500, 1000):
                listed = await lc.list_checkpoints(**scope, limit=500)
                assert len(listed) == 11  # the newest ten, and the kept one
                assert [c["keep"] for c in listed] == [False] * 10 + [True]
                sizes[i] = compacted()
    # Exactly the bound by rows: 10 checkpoints + the kept one; the spawn event + the newest 10.
    assert (sizes[500][1:], sizes[1000][1:]) == ((11, 11), (11, 11)), sizes
    # The file stops growing: after 1,000 pauses it is the size it was after 500, within two pages (the rows'
    # lengths vary by a digit or two, which may move a page boundary).
    assert abs(sizes[1000][0] - sizes[500][0]) <= 2 * 4096, sizes


async def test_pause_keep_and_keep_last_and_delete_checkpoint(settings: Settings) -> None:
    scope = new_scope()
    async with Client(create_server(settings)) as c:
        await ok(c, "spawn", **scope, initial_state={"a": 1})
        kept = await ok(c, "pause", **scope, label="release", keep=True)
        for _ in range(4):
            await ok(c, "pause", **scope)
        newest = await ok(c, "pause", **scope, keep_last=2)
        listed = (await ok(c, "list_checkpoints", **scope))["checkpoints"]
        assert [cp["keep"] for cp in listed] == [False, False, True]
        assert listed[0]["checkpoint_id"] == newest["checkpoint_id"]
        assert listed[2]["checkpoint_id"] == kept["checkpoint_id"]
        # The kept one and the newest go only when asked.
        for cp in (kept, newest):
            assert await ok(c, "delete_checkpoint", **scope, checkpoint_id=cp["checkpoint_id"]) == {
                "checkpoint_id": cp["checkpoint_id"],
                "deleted": True,
            }
        assert len((await ok(c, "list_checkpoints", **scope))["checkpoints"]) == 1
        # Bad input changes nothing: an unknown id, another session's id, an unknown session, a bad keep_last.
        other = {**scope, "session_id": "work-2"}
        await ok(c, "spawn", **other)
        theirs = await ok(c, "pause", **other)
        before = await everything(c, scope)
        for args in (
            {**scope, "checkpoint_id": "nope"},
            {**scope, "checkpoint_id": theirs["checkpoint_id"]},
            {**scope, "session_id": "nobody", "checkpoint_id": theirs["checkpoint_id"]},
        ):
            assert (await error(c, "delete_checkpoint", **args)).startswith("not_found: ")
        assert (await error(c, "pause", **scope, keep_last=-1)).startswith("invalid_argument")
        assert await everything(c, scope) == before
        assert len((await ok(c, "list_checkpoints", **other))["checkpoints"]) == 1


async def test_delete_session_removes_that_session_only(settings: Settings) -> None:
    scope = new_scope("doomed")
    sibling = {**scope, "session_id": "sibling"}
    async with Client(create_server(settings)) as c:
        for s in (scope, sibling):
            await ok(c, "spawn", **s, initial_state={"a": 1, "b": [2]})
            await ok(c, "pause", **s)
            await ok(c, "memory_set", **s, key="c", value={"x": 3})
        before = await everything(c, sibling)
        removed = await ok(c, "delete_session", **scope)
        assert removed == {"session_id": "doomed", "working_keys": 3, "checkpoints": 1, "events": 2, "episodes": 0}
        assert (await error(c, "memory_get", **scope, key="a")).startswith("not_found")
        assert (await error(c, "list_checkpoints", **scope)).startswith("not_found")
        assert (await error(c, "delete_session", **scope)).startswith("not_found")
        assert await everything(c, sibling) == before
        assert (await ok(c, "memory_get", **sibling, key="c"))["value"] == {"x": 3}
        # A terminated session may be deleted, its episode with it when asked.
        await ok(c, "terminate", **sibling, task_description="unique zanzibar quokka task")
        gone = await ok(c, "delete_session", **sibling, keep_episodes=False)
        assert gone["episodes"] == 1
        found = await ok(c, "search_episodes", project_id=scope["project_id"], query="zanzibar quokka")
        assert found["episodes"] == []


@pytest.mark.backends("sqlite")
async def test_a_token_for_project_b_deletes_nothing_in_a(tmp_path: Path) -> None:
    project_a, project_b = str(uuid.uuid4()), str(uuid.uuid4())
    env = server_env(
        tmp_path / "m.db",
        MCP_MEMORY_HTTP__TOKENS=token_config(("a", "token-a", [project_a]), ("b", "token-b", [project_b])),
    )
    scope = new_scope(project=project_a)
    with ServerProcess(env) as server:
        async with connect(server.url, "token-a") as a:
            await ok(a, "spawn", **scope)
            cp = await ok(a, "pause", **scope)
            before = await everything(a, scope)
        async with connect(server.url, "token-b") as b:
            for tool, extra in (("delete_session", {}), ("delete_checkpoint", {"checkpoint_id": cp["checkpoint_id"]})):
                assert (await error(b, tool, **scope, **extra)).startswith("forbidden: "), tool
            # No existence oracle: an unknown session of A answers the same.
            unknown = {**scope, "session_id": "nobody"}
            assert (await error(b, "delete_session", **unknown)).startswith("forbidden: ")
        async with connect(server.url, "token-a") as a:
            assert await everything(a, scope) == before


async def _fill(settings: Settings, project: str, agents: list[str]) -> None:
    async with Client(create_server(settings)) as c:
        for agent in agents:
            for name in ("s1", "s2"):
                s = new_scope(name, agent=agent, project=project)
                await ok(c, "spawn", **s, initial_state={"a": 1})
                await ok(c, "pause", **s)
            await ok(c, "terminate", **new_scope("s2", agent=agent, project=project), task_description="done")


def _forget_subprocess(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run([str(EXE), "forget", *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.mark.backends("sqlite")
async def test_forget_cli_on_sqlite_dry_run_then_agent_then_project(tmp_path: Path, make_settings: Any) -> None:
    db = tmp_path / "m.db"
    settings: Settings = make_settings(database_url=f"sqlite+aiosqlite:///{db}")
    project, bystander = str(uuid.uuid4()), str(uuid.uuid4())
    agent, other = str(uuid.uuid4()), str(uuid.uuid4())
    await _fill(settings, project, [agent, other])
    await _fill(settings, bystander, [agent])
    async with Client(create_server(settings)) as c:
        before = {s: await everything(c, new_scope(s, agent=agent, project=bystander)) for s in ("s1", "s2")}
        other_before = await everything(c, new_scope("s1", agent=other, project=project))
    env = server_env(db)
    dry = _forget_subprocess(env, "--project", project, "--agent", agent, "--dry-run")
    assert dry == {
        "dry_run": True,
        "scope": {"project_id": project, "agent_instance_id": agent},
        "sessions": 2,
        "working_keys": 1,
        "checkpoints": 2,
        "events": 5,
        "episodes": 1,
    }
    # A forget that is not a dry run says what it did below the rows too.
    on_disk = {"secure_delete": "on: the deletions overwrote what they freed", "wal": "checkpointed and truncated"}
    assert _forget_subprocess(env, "--project", project, "--agent", agent) == {
        **dry,
        "dry_run": False,
        "on_disk": on_disk,
    }
    async with Client(create_server(settings)) as c:
        assert (await error(c, "list_checkpoints", **new_scope("s1", agent=agent, project=project))).startswith(
            "not_found"
        )
        assert await everything(c, new_scope("s1", agent=other, project=project)) == other_before
    whole = _forget_subprocess(env, "--project", project)
    assert (whole["sessions"], whole["episodes"]) == (2, 1)
    async with Client(create_server(settings)) as c:
        for s in ("s1", "s2"):
            assert await everything(c, new_scope(s, agent=agent, project=bystander)) == before[s]


@pytest.mark.backends("redis")
async def test_forget_cli_on_redis_and_postgres(
    make_settings: Any, postgres_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    settings: Settings = make_settings(database_url=postgres_database_url)
    project, bystander = str(uuid.uuid4()), str(uuid.uuid4())
    agent = str(uuid.uuid4())
    await _fill(settings, project, [agent])
    await _fill(settings, bystander, [agent])
    async with Client(create_server(settings)) as c:
        before = await everything(c, new_scope("s1", agent=agent, project=bystander))
    monkeypatch.setenv("MCP_MEMORY_CONFIG", "")
    monkeypatch.setenv("MCP_MEMORY_DATABASE_URL", postgres_database_url)
    monkeypatch.setenv("MCP_MEMORY_REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("MCP_MEMORY_REDIS_KEY_PREFIX", settings.redis_key_prefix)

    async def forget(*args: str) -> dict[str, Any]:
        # The CLI runs its own event loop: in a thread of its own, as from a shell.
        assert await anyio.to_thread.run_sync(cli_main, ["forget", "--project", project, *args]) == 0
        report: dict[str, Any] = json.loads(capsys.readouterr().out)
        return report

    dry = await forget("--dry-run")
    # Redis holds both sessions: the live one, and the terminated one's marker (kept a day to refuse late writes).
    assert (dry["sessions"], dry["redis_sessions"], dry["working_keys"], dry["episodes"]) == (2, 2, 1, 1)
    done = await forget()
    assert done == {**dry, "dry_run": False, "on_disk": done["on_disk"]}
    assert done["on_disk"]["vacuum"] == "VACUUM (ANALYZE)"
    again = await forget("--dry-run")
    assert (again["sessions"], again["redis_sessions"], again["working_keys"], again["episodes"]) == (0, 0, 0, 0)
    async with Client(create_server(settings)) as c:
        assert (await error(c, "memory_get", **new_scope("s1", agent=agent, project=project), key="a")).startswith(
            "not_found"
        )
        assert await everything(c, new_scope("s1", agent=agent, project=bystander)) == before
