"""Forgetting on SQLite takes the content off the disk, not only out of the rows: after ``mcp-memory forget``, a
distinctive string written in the forgotten project's working memory, checkpoint, checkpoint label, session id and
episodes is in no byte of the database file nor of its ``-wal`` (read raw), while a server still has the file open
(so SQLite does not delete the WAL at the last close). After ``delete_session``, ``forget_episodes`` and
``delete_checkpoint`` over MCP, it is in no byte of the database file once a checkpoint has copied the WAL in.

Before, the deleted rows stayed in the file's free pages and cells where SQLite is built without secure deletion
(its own default: macOS's, python.org's), and the WAL kept the frames that wrote them until something overwrote or
truncated it (a PASSIVE checkpoint does neither). Each test runs also with the connections' ``secure_delete`` at OFF,
as such a build opens them, through a SQLAlchemy connect listener (the build here has it ON)."""

from __future__ import annotations

import json
import sqlite3
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
from tests.http_helpers import ok

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["as built", "off"])
def secure_delete_default(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every SQLAlchemy connection opened in the test starts with ``secure_delete`` as this SQLite build has it, or
    OFF as SQLite's own default has it."""
    if request.param == "as built":
        yield "as built"
        return

    def off(dbapi_conn: Any, _record: Any) -> None:
        if "sqlite" in type(dbapi_conn).__module__:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA secure_delete = OFF")
            cur.close()

    event.listen(Engine, "connect", off)
    try:
        yield "off"
    finally:
        event.remove(Engine, "connect", off)


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
