"""A spawn with working memory in Redis, cut off at any step, leaves no session or a whole one (issue 10, defect 2).

The steps (mcp_memory.services.staged_spawn): the durable store creates the session incomplete, Redis stages the initial
state, the durable store completes the session, Redis commits the staged state. Between each, a named fault point
(mcp_memory.faults) lets a test fail the call there (an exception: spawn's own cleanup runs), stop the server there
(the call blocks, as a server that hangs or died would, while another server carries on), or exit the process there
(``MCP_MEMORY_FAULT_EXIT_AT``: no cleanup at all). After each: either the session is absent (every call answers as
if it never existed, and a retried spawn succeeds with the whole initial state) or it is whole (every key of the
initial state is there; a second spawn is ``conflict``). Last, a real ``kill -9`` of ``mcp-memory serve`` in the
middle of a 9,000-key spawn, then a restart and a retried spawn that gets every key.

On Redis + SQLite and Redis + Postgres (pgvector, from tests/pg_servers.py).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from mcp import Client, StdioServerParameters

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, NotFound, Unavailable
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix

pytestmark = pytest.mark.anyio

EXE = Path(sys.executable).parent / "mcp-memory"
LEASE = 30.0
ABSENT_AFTER = ("spawn.begun", "spawn.staged")
"""Fault points before the durable store completes the session: it must not exist after a fault there."""
WHOLE_AFTER = ("spawn.completed", "spawn.committed")
INITIAL = {f"k{i}": {"n": i} for i in range(50)}
RETRY = {f"r{i}": i for i in range(20)}


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"
    from tests import pg_servers

    return pg_servers.database_url(await pg_servers.migrated_database())


@pytest.fixture
async def settings(database_url: str) -> AsyncIterator[Settings]:
    prefix = unique_prefix()
    try:
        yield Settings(
            database_url=database_url,
            redis_url=shared_redis_url(),
            redis_key_prefix=prefix,
            spawn_lease_seconds=LEASE,
        )
    finally:
        delete_keys(shared_redis_url(), prefix)


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


async def assert_absent(rt: MemoryRuntime, scope: Scope) -> None:
    """Every call answers as if the session had never been spawned, listings and completions included (the
    briefing sends a model to ``list_sessions``: a session listed there must be one it can call)."""
    assert await rt.store.get_session(scope) is None
    assert (await rt.sessions.list_sessions(scope.project_id))["sessions"] == []
    assert (await rt.sessions.list_sessions(scope.project_id, scope.agent_instance_id))["sessions"] == []
    project, agent = [scope.project_id], scope.agent_instance_id
    assert await rt.sessions.complete("session", "", 100, project) == ([], 0)
    assert await rt.sessions.complete("agent", "", 100, project) == ([], 0)
    assert await rt.sessions.complete("project", str(scope.project_id)[:8], 100, None) == ([], 0)
    assert await rt.sessions.complete("checkpoint", "", 100, project, agent, scope.session_id) == ([], 0)
    with pytest.raises(NotFound):
        await rt.working.list_keys(scope)
    with pytest.raises(NotFound):
        await rt.working.get(scope, "k1")
    with pytest.raises(NotFound):
        await rt.working.set(scope, "x", 1)
    for call in (rt.lifecycle.resume, rt.lifecycle.pause, rt.lifecycle.terminate, rt.lifecycle.list_checkpoints):
        with pytest.raises(NotFound):
            await call(*ids(scope))


async def assert_whole(rt: MemoryRuntime, scope: Scope, state: dict[str, Any]) -> None:
    """The session exists, running, with exactly ``state``; a second spawn is refused, and it works on."""
    session = await rt.store.get_session(scope)
    assert session is not None and session.status == "running" and not session.sealed
    assert await rt.working.state(scope) == state
    with pytest.raises(Conflict, match="exists already"):
        await rt.lifecycle.spawn(*ids(scope), initial_state={"other": 1})
    await rt.working.set(scope, "after", 1)
    paused = await rt.lifecycle.pause(*ids(scope))
    assert paused.data["items_saved"] == len(state) + 1


async def test_a_spawn_failing_at_any_step_leaves_no_session_or_a_whole_one(settings: Settings) -> None:
    async def fail_at(point: str, wanted: str) -> None:
        if point == wanted:
            raise RuntimeError(f"fault injected at {point}")

    async with MemoryRuntime(settings) as rt:
        assert isinstance(rt.working_store, RedisWorkingStore)  # (else these tests would prove nothing)
        for point in faults.POINTS:
            scope = new_scope(point.replace(".", "-"))

            async def hook(reached: str, wanted: str = point) -> None:
                await fail_at(reached, wanted)

            with faults.on_fault(hook), pytest.raises(RuntimeError, match="fault injected"):
                await rt.lifecycle.spawn(*ids(scope), initial_state=INITIAL)
            if point in ABSENT_AFTER:
                await assert_absent(rt, scope)
                # Nothing is left to wait for: the failed spawn released the session.
                await rt.lifecycle.spawn(*ids(scope), initial_state=RETRY)
                await assert_whole(rt, scope, RETRY)
            else:
                await assert_whole(rt, scope, INITIAL)


async def test_a_spawn_whose_completion_commits_but_answers_an_error_is_whole(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The durable completion commits and its answer is lost (a connection dropped after COMMIT): the undo finds the
    session completed by this very spawn, undoes nothing, and the spawn succeeds with its whole initial state."""
    async with MemoryRuntime(settings) as rt:
        complete = rt.store.complete_spawn

        async def committed_then_lost(
            scope: Scope, token: str, now: float, clock: Callable[[], float] | None = None
        ) -> None:
            await complete(scope, token, now, clock)
            raise Unavailable("the connection was lost after COMMIT")

        monkeypatch.setattr(rt.store, "complete_spawn", committed_then_lost)
        scope = new_scope("lost-answer")
        spawned = await rt.lifecycle.spawn(*ids(scope), initial_state=INITIAL)
        assert spawned.data["initial_items"] == len(INITIAL)
        monkeypatch.setattr(rt.store, "complete_spawn", complete)
        await assert_whole(rt, scope, INITIAL)


async def test_a_server_stopped_at_any_step_leaves_no_session_or_a_whole_one(
    settings: Settings, clock: FakeClock
) -> None:
    """The spawning server stops at a step (its call blocks there, as in a server that hung or died); another server
    sees no session or a whole one. A spawn it retries is `conflict` while the stopped spawn's lease runs, then
    takes the session over; the stopped spawn, woken up at last, changes nothing of it."""
    for point in faults.POINTS:
        await stop_at(point, settings, clock)


async def stop_at(point: str, settings: Settings, clock: FakeClock) -> None:
    async with MemoryRuntime(settings, clock=clock) as stopped, MemoryRuntime(settings, clock=clock) as other:
        scope = new_scope(point.replace(".", "-"))
        at_point = anyio.Event()
        returned: list[str] = []

        async def hang(reached: str) -> None:
            if reached == point and not at_point.is_set():
                at_point.set()
                await anyio.sleep_forever()

        async def spawn_and_stop() -> None:
            await stopped.lifecycle.spawn(*ids(scope), initial_state=INITIAL)
            returned.append(point)  # never: it is cut off while stopped

        with faults.on_fault(hang):
            async with anyio.create_task_group() as tg:
                tg.start_soon(spawn_and_stop)
                with anyio.fail_after(30):
                    await at_point.wait()
                expected: dict[str, Any] = INITIAL
                if point in ABSENT_AFTER:
                    await assert_absent(other, scope)
                    with pytest.raises(Conflict, match="in progress"):
                        await other.lifecycle.spawn(*ids(scope), initial_state=RETRY)
                    clock.advance(LEASE + 1)
                    await other.lifecycle.spawn(*ids(scope), initial_state=RETRY)
                    expected = RETRY
                await assert_whole(other, scope, expected)
                tg.cancel_scope.cancel()  # the stopped server's call is cut off: its cleanup runs now
        assert returned == []
        assert await other.working.state(scope) == {**expected, "after": 1}
        session = await other.store.get_session(scope)
        assert session is not None and session.status == "paused"


# -- the process exits at a step: nothing of the spawn's own cleanup runs -----------------------------------
def server_params(tmp_path: Path, database_url: str, prefix: str, **extra: str) -> StdioServerParameters:
    """``mcp-memory serve`` on stdio, started through ``sh`` so that its pid lands in ``tmp_path/pid`` (``exec``
    keeps it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env.update(
        MCP_MEMORY_DATABASE_URL=database_url,
        MCP_MEMORY_CONFIG="",
        MCP_MEMORY_REDIS_URL=shared_redis_url(),
        MCP_MEMORY_REDIS_KEY_PREFIX=prefix,
        MCP_MEMORY_SPAWN_LEASE_SECONDS="1",
        **extra,
    )
    pid_file = tmp_path / "pid"
    return StdioServerParameters(command="sh", args=["-c", f'echo $$ > "{pid_file}"; exec "{EXE}" serve'], env=env)


def gone(pid: int) -> bool:
    """The process has exited (a zombie until its parent waits for it counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


async def cut_off(
    params: StdioServerParameters, pid_file: Path, spawn: dict[str, Any], kill_when: Callable[[], Awaitable[bool]]
) -> None:
    """Start the server, call spawn, and wait until the server is gone: ``kill_when`` says when to SIGKILL it (never,
    if it exits by itself)."""
    async with Client(params, read_timeout_seconds=60) as client:
        pid = int(await anyio.Path(pid_file).read_text())
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                try:
                    await client.call_tool("spawn", spawn)
                except Exception:
                    pass  # the connection died with the server

            tg.start_soon(call)
            killed = False
            with anyio.fail_after(60):
                while not gone(pid):
                    if not killed and await kill_when():
                        os.kill(pid, signal.SIGKILL)
                        killed = True
                    await anyio.sleep(0.002)
            tg.cancel_scope.cancel()


async def retried_spawn(params: StdioServerParameters, spawn: dict[str, Any]) -> dict[str, Any]:
    """A restarted server: spawn again until it succeeds (``conflict`` "in progress" until the dead spawn's lease of
    one second runs out); returns the session's whole state as memory_get reads it, key by key."""
    async with Client(params, read_timeout_seconds=60) as client:
        deadline = time.monotonic() + 30
        while True:
            result = await client.call_tool("spawn", spawn)
            if not result.is_error:
                break
            message = result.content[0].text  # type: ignore[union-attr]
            assert "in progress" in message and time.monotonic() < deadline, message
            await anyio.sleep(0.1)
        scope = {k: spawn[k] for k in ("project_id", "agent_instance_id", "session_id")}
        listed = await client.call_tool("memory_list", scope)
        assert not listed.is_error and listed.structured_content is not None
        keys: list[str] = listed.structured_content["keys"]
        return {"keys": keys, "first": await client.call_tool("memory_get", {**scope, "key": keys[0]})}


@pytest.mark.parametrize("point", faults.POINTS)
async def test_a_server_exiting_at_any_step_leaves_no_session_or_a_whole_one(
    tmp_path: Path, database_url: str, point: str
) -> None:
    prefix = unique_prefix()
    spawn = {
        "project_id": str(uuid.uuid4()),
        "agent_instance_id": str(uuid.uuid4()),
        "session_id": "desk",
        "initial_state": {f"k{i}": i for i in range(200)},
    }
    try:

        async def never() -> bool:
            return False

        crashing = server_params(tmp_path, database_url, prefix, **{faults.EXIT_ENV: point})
        await cut_off(crashing, tmp_path / "pid", spawn, never)
        restarted = server_params(tmp_path, database_url, prefix)
        if point in ABSENT_AFTER:
            got = await retried_spawn(restarted, {**spawn, "initial_state": {f"r{i}": i for i in range(300)}})
            assert sorted(got["keys"]) == sorted(f"r{i}" for i in range(300))
        else:
            async with Client(restarted, read_timeout_seconds=60) as client:
                again = await client.call_tool("spawn", spawn)
                assert again.is_error and "exists already" in again.content[0].text  # type: ignore[union-attr]
                scope = {k: spawn[k] for k in ("project_id", "agent_instance_id", "session_id")}
                listed = await client.call_tool("memory_list", scope)
                assert listed.structured_content is not None
                assert sorted(listed.structured_content["keys"]) == sorted(f"k{i}" for i in range(200))
    finally:
        delete_keys(shared_redis_url(), prefix)


# -- kill -9 in the middle of a 9,000-key spawn -------------------------------------------------------------------
KEYS = 9_000


async def test_kill_9_during_a_large_spawn_then_a_retried_spawn_gets_every_key(tmp_path: Path) -> None:
    """The issue's reproduction: ``mcp-memory serve`` (stdio, Redis + a SQLite file) is killed with SIGKILL once the
    durable session row exists and before Redis holds the initial state as the session's; restarted, a retried
    spawn succeeds and the session has all 9,000 keys."""
    database = tmp_path / "memory.db"
    database_url = f"sqlite+aiosqlite:///{database}"
    prefix = unique_prefix()
    admin = redis.Redis.from_url(shared_redis_url())
    try:
        for attempt in range(5):  # the window is found by polling: try again on the rare miss
            spawn = {
                "project_id": str(uuid.uuid4()),
                "agent_instance_id": str(uuid.uuid4()),
                "session_id": f"big-{attempt}",
                "initial_state": {f"key-{i:05d}": "v" * 64 for i in range(KEYS)},
            }
            marker = f"{prefix}:{{{spawn['project_id']}/{spawn['agent_instance_id']}/{spawn['session_id']}}}:m"
            killed_in_window = False

            async def row_exists_and_redis_not_open(spawn: dict[str, Any] = spawn, marker: str = marker) -> bool:
                nonlocal killed_in_window
                if not database.exists():
                    return False
                try:
                    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.05) as db:
                        row = db.execute(
                            "SELECT 1 FROM sessions WHERE session_id = ? AND project_id = ?",
                            (spawn["session_id"], spawn["project_id"]),
                        ).fetchone()
                except sqlite3.Error:
                    return False  # (being written, or the table is not there yet)
                if row is None or admin.get(marker) == b"o":
                    return False
                killed_in_window = True
                return True

            params = server_params(tmp_path, database_url, prefix)
            await cut_off(params, tmp_path / "pid", spawn, row_exists_and_redis_not_open)
            if not killed_in_window:
                continue
            got = await retried_spawn(params, spawn)
            assert len(got["keys"]) == KEYS
            assert sorted(got["keys"]) == sorted(spawn["initial_state"])
            assert got["first"].structured_content["value"] == "v" * 64
            return
        pytest.fail("never caught the spawn between its durable row and its Redis state in 5 attempts")
    finally:
        admin.close()
        delete_keys(shared_redis_url(), prefix)
