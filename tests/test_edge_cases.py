"""Edge cases found in review: configuration mistakes, ordering across processes, TTL in resources,
search relevance, the seed's API names, strict arguments, and housekeeping."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from sqlalchemy import text

from mcp_memory import cli
from mcp_memory.config import Settings
from mcp_memory.episodic import EpisodicMemory
from mcp_memory.errors import Conflict, InvalidArgument, Unavailable
from mcp_memory.lifecycle import AgentLifecycleManager
from mcp_memory.models import CheckpointInfo, EpisodeCreate, Item, Outcome, Scope, to_datetime
from mcp_memory.runtime import ConfigurationError, MemoryRuntime
from mcp_memory.server import create_server
from mcp_memory.stores.ports import EventRecord
from mcp_memory.stores.sqlite import SqliteStore
from mcp_memory.working import WorkingMemory
from tests.conftest import FakeClock, StorePair, new_scope, statements_per_lifecycle_call

pytestmark = pytest.mark.anyio


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No inherited MCP_MEMORY_* variables and no user config file."""
    import os

    for name in list(os.environ):
        if name.startswith("MCP_MEMORY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MCP_MEMORY_CONFIG", str(tmp_path / "absent.toml"))
    return monkeypatch


# -- configuration ---------------------------------------------------------------------------------------
def test_hooks_from_an_env_var_as_a_comma_list(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MCP_MEMORY_HOOKS__PAUSE", "tests.hooks_for_tests:record, tests.hooks_for_tests:explode")
    clean_env.setenv("MCP_MEMORY_HOOKS__TERMINATE", '["tests.hooks_for_tests:record"]')
    settings = Settings()
    assert settings.hooks.pause == ["tests.hooks_for_tests:record", "tests.hooks_for_tests:explode"]
    assert settings.hooks.terminate == ["tests.hooks_for_tests:record"]


def test_plain_sqlite_url_and_home_paths_are_resolved(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("HOME", str(tmp_path))
    assert Settings(database_url="sqlite:///x.db").resolved_database_url() == "sqlite+aiosqlite:///x.db"
    resolved = Settings(database_url="sqlite+aiosqlite:///~/mem/x.db").resolved_database_url()
    assert resolved == f"sqlite+aiosqlite:///{tmp_path}/mem/x.db"


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
def test_in_memory_databases_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="in-memory"):
        MemoryRuntime(Settings(database_url=url))


def test_a_missing_hook_module_is_a_configuration_error(db_url: str) -> None:
    with pytest.raises(ConfigurationError, match="no_such_module"):
        MemoryRuntime(Settings(database_url=db_url, hooks={"pause": ["no_such_module:f"]}))


def test_broken_toml_is_a_clear_error_not_a_traceback(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("max_keys_per_session = = 3\n")
    clean_env.setenv("MCP_MEMORY_CONFIG", str(bad))
    assert cli.main(["doctor"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and "invalid settings" in out["error"]
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "Traceback" not in err


def test_doctor_reports_misspelt_settings(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'database_url = "{db_url}"\nmax_keys_per_sesion = 3\n')
    clean_env.setenv("MCP_MEMORY_CONFIG", str(cfg))
    assert cli.main(["doctor"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["unknown_settings"] == ["max_keys_per_sesion"]


async def test_durability_level_is_a_setting(make_settings: Callable[..., Settings]) -> None:
    for level, expected in (("FULL", 2), ("NORMAL", 1)):
        async with MemoryRuntime(make_settings(sqlite_synchronous=level)) as rt:
            async with rt.store._write() as conn:
                assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == expected


# -- ordering and atomicity ---------------------------------------------------------------------------------
async def test_newest_checkpoint_is_the_latest_snapshot_not_the_latest_commit(stores: StorePair) -> None:
    """Two processes sharing a file may commit their pauses in the other order than they snapshotted."""
    scope = new_scope()
    await stores.open_session(scope, 1000.0)
    for cid, taken in (("later-snapshot", 1002.0), ("earlier-snapshot", 1001.0)):  # committed in this order
        info = CheckpointInfo(checkpoint_id=cid, created_at=to_datetime(taken), keys_count=1, bytes=1, content_hash="h")
        await stores.durable.record_pause(
            scope, info, {"k": Item(json.dumps(cid))}, EventRecord("pause", taken, 0, "ok")
        )
    newest = await stores.durable.get_checkpoint(scope, None)
    assert newest is not None and newest.info.checkpoint_id == "later-snapshot"
    listed = await stores.durable.list_checkpoints(scope, 10, None)
    assert [c.checkpoint_id for c in listed] == ["later-snapshot", "earlier-snapshot"]
    older = await stores.durable.list_checkpoints(scope, 10, "later-snapshot")
    assert [c.checkpoint_id for c in older] == ["earlier-snapshot"]


class _FailingResumeRecord:
    """The real store, except that recording a resume fails (as when the store goes away right then)."""

    def __init__(self, real: SqliteStore) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def record_resume(self, scope: Scope, event: EventRecord) -> None:
        raise Unavailable("the store went away")


async def test_a_resume_that_restored_reports_success_even_if_recording_fails(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    settings = make_settings()
    real = SqliteStore(settings.resolved_database_url())
    await real.start()
    try:
        durable: Any = _FailingResumeRecord(real)
        working = WorkingMemory(real, settings, clock)
        lifecycle = AgentLifecycleManager(
            working, durable, EpisodicMemory(real, settings, None, clock), settings, clock=clock
        )
        p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
        await lifecycle.spawn(p, a, s, initial_state={"x": 1})
        await lifecycle.pause(p, a, s)
        await working.set(scope, "x", 2)
        result = await lifecycle.resume(p, a, s)
        assert result.success and result.data["items_restored"] == 1
        assert await working.get(scope, "x") == 1  # what the caller is told matches what happened
    finally:
        await real.close()


# -- TTL in resources -----------------------------------------------------------------------------------------
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


# -- search relevance ---------------------------------------------------------------------------------------
async def test_unrelated_query_finds_nothing_with_vectors_on(make_settings: Callable[..., Settings]) -> None:
    async with MemoryRuntime(make_settings(embedding_provider="hash")) as rt:
        p, a = uuid.uuid4(), uuid.uuid4()
        await rt.episodic.record_episode(
            project_id=p,
            agent_instance_id=a,
            task_type="deployment",
            task_description="Deploy the web app to the staging cluster",
            outcome="success",
        )
        assert await rt.episodic.search(p, "zebra unicorn") == []
        hits = await rt.episodic.search(p, "deploying the web application")
        assert [h.task_type for h in hits] == ["deployment"] and hits[0].score > 0


# -- the seed's API -------------------------------------------------------------------------------------------
async def test_seed_style_api(runtime: MemoryRuntime, scope: Scope) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s)
    working = await runtime.working.for_session(session_id=s, project_id=str(p), agent_instance_id=str(a))
    await working.set("k", {"v": 1}, ttl_seconds=60)
    assert await working.get("k") == {"v": 1}
    assert await working.get("missing") is None
    assert await working.list_keys() == ["k"]
    assert await working.delete("k") is True
    episode = await runtime.episodic.record_episode(
        EpisodeCreate(
            project_id=p,
            agent_instance_id=a,
            session_id=s,
            task_type="t",
            task_description="seed style",
            outcome=Outcome.PARTIAL,
            lessons_learned=["x"],
        )
    )
    stored = await runtime.episodic.get(p, episode.episode_id)
    assert stored.outcome == Outcome.PARTIAL and stored.lessons_learned == ["x"]


# -- strict input ---------------------------------------------------------------------------------------------
async def test_unknown_tool_arguments_are_refused(settings: Settings) -> None:
    server = create_server(settings)
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    s = {"project_id": p, "agent_instance_id": a, "session_id": "s1"}
    async with Client(server) as c:
        await c.call_tool("spawn", s)
        result = await c.call_tool("memory_set", {**s, "key": "k", "value": 1, "ttl": 60})
        assert result.is_error
        assert result.content[0].text.startswith("invalid_argument: unknown argument(s) for memory_set: ttl")  # type: ignore[union-attr]
        assert (await c.call_tool("memory_list", s)).structured_content == {"keys": []}


async def test_lone_surrogates_are_invalid_arguments(runtime: MemoryRuntime, scope: Scope) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s)
    for call in (
        lambda: runtime.working.set(scope, "bad\ud800", 1),
        lambda: runtime.working.set(scope, "k", "bad\ud800"),
        lambda: runtime.working.list_keys(scope, "\ud800"),
        lambda: runtime.episodic.record_episode(
            project_id=p, agent_instance_id=a, task_type="t", task_description="x\ud800", outcome="success"
        ),
        lambda: runtime.lifecycle.pause(p, a, s, label="\ud800"),
    ):
        with pytest.raises(InvalidArgument, match="surrogate"):
            await call()
    assert await runtime.working.list_keys(scope) == []


@pytest.mark.parametrize(
    "value",
    [
        "123e4567e89b12d3a456426614174000",
        "{123e4567-e89b-12d3-a456-426614174000}",
        "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
    ],
)
async def test_only_canonical_uuids(runtime: MemoryRuntime, value: str) -> None:
    with pytest.raises(InvalidArgument, match="project_id"):
        await runtime.lifecycle.spawn(value, uuid.uuid4(), "s1")
    upper = "123E4567-E89B-12D3-A456-426614174000"  # either case is canonical enough; stored lower-case
    result = await runtime.lifecycle.spawn(upper, uuid.uuid4(), "s1")
    assert result.success


async def test_a_session_mid_terminate_says_so(runtime: MemoryRuntime, scope: Scope, clock: FakeClock) -> None:
    await runtime.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)
    # As if a terminate had been interrupted right after sealing: its seal stands until its lease runs out.
    lease = runtime.settings.terminate_lease_seconds
    await runtime.working_store.seal(scope, "interrupted", clock(), lease)
    with pytest.raises(Conflict, match="call terminate again"):
        await runtime.working.set(scope, "k", 1)
    with pytest.raises(Conflict, match="already in progress"):
        await runtime.lifecycle.terminate(scope.project_id, scope.agent_instance_id, scope.session_id)
    clock.advance(lease)
    result = await runtime.lifecycle.terminate(scope.project_id, scope.agent_instance_id, scope.session_id)
    assert result.data["episode_id"] is not None


# -- resources/list paging ------------------------------------------------------------------------------------
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


# -- housekeeping -------------------------------------------------------------------------------------------
async def test_expired_rows_are_purged(runtime: MemoryRuntime, scope: Scope, clock: FakeClock) -> None:
    await runtime.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)
    for i in range(5):
        await runtime.working.set(scope, f"t{i}", i, ttl_seconds=5)
    clock.advance(10)
    runtime.store.purge_every = 1
    await runtime.working.set(scope, "alive", 1)
    async with runtime.store._read() as conn:
        rows = (await conn.execute(text("SELECT key FROM working_items"))).scalars().all()
    assert rows == ["alive"]


async def test_events_carry_duration_and_metadata(runtime: MemoryRuntime, scope: Scope) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s, initial_state={f"k{i}": i for i in range(200)})
    await runtime.lifecycle.pause(p, a, s, metadata={"why": "lunch"})
    await runtime.lifecycle.resume(p, a, s, metadata={"why": "back"})
    events = await runtime.store.list_events(scope, 10)
    assert [e.event_type for e in events] == ["spawn", "pause", "resume"]
    assert all(e.duration_ms > 0 for e in events)
    assert events[1].detail["metadata"] == {"why": "lunch"} and events[2].detail["metadata"] == {"why": "back"}


# -- round trips ----------------------------------------------------------------------------------------------
async def test_store_statements_per_lifecycle_call_do_not_grow_with_keys(
    runtime: MemoryRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/contract.md: the cost of pause and resume in round trips to the store does not grow with the number of keys.
    Counted here as SQL statements sent (an executemany is one), both those sent through SQLAlchemy and those
    the store's hot calls send to ``sqlite3`` directly on the connection's thread."""
    from mcp_memory.stores import sqlite as sqlite_module

    statements: list[str] = []

    class Counted:
        """A sqlite3 connection that notes each statement it is given."""

        def __init__(self, db: Any) -> None:
            self._db = db

        def execute(self, sql: str, *args: Any) -> Any:
            statements.append(sql)
            return self._db.execute(sql, *args)

        def executemany(self, sql: str, rows: Any) -> Any:
            statements.append(sql)
            return self._db.executemany(sql, rows)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._db, name)

    for name in ("_in_transaction", "_in_autocommit", "_in_open_transaction"):
        runner = getattr(sqlite_module, name)
        monkeypatch.setattr(sqlite_module, name, lambda db, fn, run=runner: run(Counted(db), fn))

    small, large = await statements_per_lifecycle_call(runtime, statements)
    print("statements per call:", small)
    assert small == large, (small, large)
    # One write transaction each (BEGIN IMMEDIATE and COMMIT counted): spawn inserts the session, its event and
    # its items; pause reads the items and inserts checkpoint, status and event; resume reads the checkpoint and
    # the session, restores, and writes status and event. (Two-step path: 8, 6 in two transactions, 11.)
    assert small["spawn"] <= 5 and small["pause"] <= 6 and small["resume"] <= 8, small
