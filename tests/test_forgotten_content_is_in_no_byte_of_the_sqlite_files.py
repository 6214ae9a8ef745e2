"""Forgetting on SQLite takes the content off the disk, not only out of the rows: after ``mcp-memory forget``, a
distinctive string written in the forgotten project's working memory, checkpoint, checkpoint label, session id and
episodes is in no byte of the database file nor of its ``-wal`` (read raw), while a server still has the file open
(so SQLite does not delete the WAL at the last close). After ``delete_session``, ``forget_episodes``,
``delete_checkpoint``, ``memory_delete``, a terminate's clear of working memory, ``clear`` and ``update_episode`` (the
text and the vector it replaces) over MCP or the store, it is in no byte of the database file once a checkpoint has
copied the WAL in.

Before, the deleted rows stayed in the file's free pages and cells where SQLite is built without secure deletion
(its own default: macOS's, python.org's), and the WAL kept the frames that wrote them until something overwrote or
truncated it (a PASSIVE checkpoint does neither). The store opens its connections with ``secure_delete`` FAST, which
zeroes the freed bytes of the pages a deletion writes anyway: so each test runs also with the connections' setting
forced to OFF (a SQLAlchemy checkout listener, after the store's connect one), where only the deletion's own ON
overwrites anything; those tests check that the writer's setting is OFF before and after the deletions."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from sqlalchemy import event
from sqlalchemy.engine import Engine

from mcp_memory.cli import main as cli_main
from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.sqlite.store import SqliteStore
from tests.http_helpers import ok

pytestmark = pytest.mark.anyio


SETTING = {"as opened": 2, "off": 0}
"""``PRAGMA secure_delete``'s reading on the writer outside the deletions, by ``secure_delete_default`` (2: FAST)."""


@pytest.fixture(params=list(SETTING))
def secure_delete_default(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every SQLAlchemy connection used in the test has ``secure_delete`` as the store opens it (FAST), or OFF as
    SQLite's own default has it: set at each checkout from the pool, so after the store's connect listener."""
    if request.param == "as opened":
        yield "as opened"
        return

    def off(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if "sqlite" in type(dbapi_conn).__module__:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA secure_delete = OFF")
            cur.close()

    event.listen(Engine, "checkout", off)
    try:
        yield "off"
    finally:
        event.remove(Engine, "checkout", off)


async def writer_setting(rt: MemoryRuntime) -> int:
    """``PRAGMA secure_delete`` as the store's writer connection has it now."""
    store = rt.store
    assert isinstance(store, SqliteStore)
    (setting,) = await store._write_direct(lambda db: db.execute("PRAGMA secure_delete").fetchone())
    return int(setting)


def needle() -> str:
    """A string found nowhere else: lower case hex (the full-text terms are lower case) that stemming leaves as it
    is."""
    return f"zq{uuid.uuid4().hex[:16]}x"


def holding(db: Path, needles: dict[str, str]) -> list[str]:
    """Which needles (by what they were written in) are in the raw bytes of the database file or its companions."""
    found: list[str] = []
    for suffix in ("", "-wal", "-shm", "-journal"):
        f = Path(f"{db}{suffix}")
        if f.exists():
            data = f.read_bytes()
            found += [f"{what} in {f.name}" for what, n in needles.items() if n.encode() in data]
    return found


async def fill(rt: MemoryRuntime, project: uuid.UUID, marks: dict[str, str]) -> Scope:
    """A session with a working value, a paused checkpoint of it (labelled), then terminated with its episode, and
    an episode of its own; each holding one of ``marks``."""
    agent = uuid.uuid4()
    sid = f"task-{marks['session id']}"
    scope = Scope(project, agent, sid)
    await rt.lifecycle.spawn(project, agent, sid, initial_state={"goal": "start"})
    await rt.working.set(scope, "note", f"the value {marks['working value']}")
    await rt.lifecycle.pause(project, agent, sid, label=f"before {marks['checkpoint label']}")
    await rt.lifecycle.resume(project, agent, sid)
    await rt.lifecycle.terminate(project, agent, sid, task_description=f"ship {marks['terminate episode']}")
    await rt.episodic.record_episode(
        project_id=project,
        agent_instance_id=agent,
        task_type="ops",
        task_description=f"rebuild {marks['episode']}",
        outcome="success",
        lessons_learned=[f"lesson {marks['episode lesson']}"],
    )
    return scope


KINDS = ("session id", "working value", "checkpoint label", "terminate episode", "episode", "episode lesson")


async def test_the_forget_cli_leaves_the_forgotten_project_in_no_byte_of_the_database_or_its_wal(
    secure_delete_default: str,
    db_url: str,
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gone, kept = uuid.uuid4(), uuid.uuid4()
    gone_marks = {kind: needle() for kind in KINDS}
    kept_marks = {kind: needle() for kind in KINDS}
    db = tmp_path / "memory.db"
    # The running server: it keeps the file open throughout, as a deployment's server does while an operator runs
    # the forget beside it.
    async with MemoryRuntime(Settings(database_url=db_url), embedding_retry=False) as server:
        await fill(server, gone, gone_marks)
        await fill(server, kept, kept_marks)
        assert len(holding(db, gone_marks)) >= len(KINDS)  # written where the test reads

        clean_env.setenv("MCP_MEMORY_DATABASE_URL", db_url)
        capsys.readouterr()
        assert await anyio.to_thread.run_sync(cli_main, ["forget", "--project", str(gone)]) == 0
        report: dict[str, Any] = json.loads(capsys.readouterr().out)
        assert (report["sessions"], report["episodes"]) == (1, 2)
        assert report["on_disk"] == {
            "secure_delete": "on: the deletions overwrote what they freed",
            "wal": "checkpointed and truncated",
        }
        assert "not_done" not in report

        assert holding(db, gone_marks) == []
        # The other project's content is all there (the file is read where it lies), and it still answers.
        assert {kind for kind, n in kept_marks.items() if n.encode() in db.read_bytes()} == set(KINDS)
        hits = await server.episodic.search(kept, kept_marks["episode"], limit=5)
        assert len(hits) == 1


@pytest.fixture
async def server_runtime(secure_delete_default: str, db_url: str) -> AsyncIterator[MemoryRuntime]:
    async with MemoryRuntime(Settings(database_url=db_url), embedding_retry=False) as rt:
        yield rt


@pytest.fixture
async def mcp_client(server_runtime: MemoryRuntime) -> AsyncIterator[Client]:
    async with Client(create_server(runtime=server_runtime), mode="legacy") as c:
        yield c


def checkpointed(db: Path) -> None:
    """Copy the WAL into the database file and empty it (as the server's checkpoints do, in time), so that what
    is read is the file's own pages."""
    with sqlite3.connect(db, timeout=30) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


async def test_deletions_over_mcp_leave_what_they_removed_in_no_byte_of_the_database_file(
    server_runtime: MemoryRuntime, mcp_client: Client, tmp_path: Path
) -> None:
    db = tmp_path / "memory.db"
    project = uuid.uuid4()
    first, second = {kind: needle() for kind in KINDS}, {kind: needle() for kind in KINDS}
    scope = await fill(server_runtime, project, first)
    other = await fill(server_runtime, project, second)
    checkpointed(db)
    assert len(holding(db, first)) >= len(KINDS) and len(holding(db, second)) >= len(KINDS)

    ids = {"project_id": str(project), "agent_instance_id": str(scope.agent_instance_id)}
    deleted = await ok(mcp_client, "delete_session", **ids, session_id=scope.session_id, keep_episodes=False)
    assert (deleted["checkpoints"], deleted["episodes"]) == (1, 1)
    # The agent's episode recorded without a session.
    assert await ok(mcp_client, "forget_episodes", **ids, confirm=True) == {"forgotten": 1}
    checkpointed(db)
    assert holding(db, first) == []

    # One checkpoint of the other session, by id: its state and label go, the rest of the session stays.
    listed = await ok(
        mcp_client,
        "list_checkpoints",
        project_id=str(project),
        agent_instance_id=str(other.agent_instance_id),
        session_id=other.session_id,
    )
    (checkpoint,) = [c for c in listed["checkpoints"] if second["checkpoint label"] in c["label"]]
    await ok(
        mcp_client,
        "delete_checkpoint",
        project_id=str(project),
        agent_instance_id=str(other.agent_instance_id),
        session_id=other.session_id,
        checkpoint_id=checkpoint["checkpoint_id"],
    )
    checkpointed(db)
    assert holding(db, {k: second[k] for k in ("checkpoint label",)}) == []
    assert set(holding(db, second)) >= {f"{k} in memory.db" for k in ("session id", "terminate episode")}


async def test_memory_delete_overwrites_the_deleted_value_in_the_database_file(
    secure_delete_default: str, server_runtime: MemoryRuntime, mcp_client: Client, tmp_path: Path
) -> None:
    db = tmp_path / "memory.db"
    marks = {"deleted": needle(), "kept": needle()}
    ids = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "task"}
    await ok(mcp_client, "spawn", **ids)
    for key, mark in marks.items():
        await ok(mcp_client, "memory_set", **ids, key=key, value=f"the value {mark}")
    assert await writer_setting(server_runtime) == SETTING[secure_delete_default]
    checkpointed(db)
    assert sorted(holding(db, marks)) == ["deleted in memory.db", "kept in memory.db"]

    assert await ok(mcp_client, "memory_delete", **ids, key="deleted") == {"deleted": True}
    checkpointed(db)
    assert holding(db, marks) == ["kept in memory.db"]
    assert await writer_setting(server_runtime) == SETTING[secure_delete_default]


async def test_a_terminates_clear_overwrites_working_memory_in_the_database_file(
    secure_delete_default: str, server_runtime: MemoryRuntime, mcp_client: Client, tmp_path: Path
) -> None:
    db = tmp_path / "memory.db"
    marks = {"working value": needle(), "initial state": needle()}
    ids = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "task"}
    await ok(mcp_client, "spawn", **ids, initial_state={"goal": f"start {marks['initial state']}"})
    await ok(mcp_client, "memory_set", **ids, key="note", value=f"the value {marks['working value']}")
    checkpointed(db)
    assert len(holding(db, marks)) == 2

    # Not consolidated: the values would be copied into the episode.
    done = await ok(mcp_client, "terminate", **ids, consolidate_to_episodic=False)
    assert done["items_cleared"] == 2
    checkpointed(db)
    assert holding(db, marks) == []
    assert await writer_setting(server_runtime) == SETTING[secure_delete_default]


async def test_clear_overwrites_working_memory_in_the_database_file(
    secure_delete_default: str, server_runtime: MemoryRuntime, tmp_path: Path
) -> None:
    db = tmp_path / "memory.db"
    marks = {f"value {i}": needle() for i in range(3)}
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "task")
    await server_runtime.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)
    for i, mark in enumerate(marks.values()):
        await server_runtime.working.set(scope, f"k{i}", f"the value {mark}")
    checkpointed(db)
    assert len(holding(db, marks)) == 3

    assert await server_runtime.store.clear(scope, time.time()) == 3
    checkpointed(db)
    assert holding(db, marks) == []
    assert await writer_setting(server_runtime) == SETTING[secure_delete_default]


async def test_update_episode_overwrites_the_text_and_vector_it_replaces_in_the_database_file(
    secure_delete_default: str, db_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "memory.db"
    old = {"lesson": needle(), "details": needle()}
    new = {"lesson": needle(), "details": needle()}
    project = str(uuid.uuid4())
    settings = Settings(database_url=db_url, embedding_provider="hash")
    async with (
        MemoryRuntime(settings, embedding_retry=False) as rt,
        Client(create_server(runtime=rt), mode="legacy") as client,
    ):
        recorded = await ok(
            client,
            "record_episode",
            project_id=project,
            agent_instance_id=str(uuid.uuid4()),
            task_type="ops",
            task_description="rebuild the index",
            outcome="success",
            outcome_details=f"details {old['details']}",
            lessons_learned=[f"lesson {old['lesson']}"],
        )
        episode_id = recorded["episode_id"]
        # Another one after it: the first row is then not the last written into its page, whose freed place the
        # page's free area would take in (and the new row overwrite) whatever the setting.
        await ok(
            client,
            "record_episode",
            project_id=project,
            agent_instance_id=str(uuid.uuid4()),
            task_type="ops",
            task_description="rotate the keys",
            outcome="success",
            lessons_learned=["rotate them before they expire"],
        )

        def vector() -> bytes:
            with sqlite3.connect(db, timeout=30) as conn:
                (blob,) = conn.execute("SELECT embedding FROM episodes WHERE episode_id = ?", (episode_id,)).fetchone()
            assert isinstance(blob, bytes) and blob.strip(b"\0")
            return blob

        old_vector = vector()
        checkpointed(db)
        assert len(holding(db, old)) == 2 and old_vector in db.read_bytes()

        # Longer than before: the new row does not fit in the old one's place, so that place is left as the
        # deletion of the old row left it.
        await ok(
            client,
            "update_episode",
            project_id=project,
            episode_id=episode_id,
            outcome_details=f"the details as they were found later {new['details']}",
            lessons_learned=[f"the lesson as it was understood later {new['lesson']}"],
        )
        assert vector() != old_vector
        checkpointed(db)
        assert (holding(db, old), old_vector in db.read_bytes()) == ([], False)
        assert len(holding(db, new)) == 2
        assert await writer_setting(rt) == SETTING[secure_delete_default]
