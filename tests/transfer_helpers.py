"""Helpers of the export/import tests: a populated project, and exports compared record by record."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import InvalidArgument, MemoryServiceError
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.transfer import write_export
from mcp_memory.stores.transfer import Selection

WORDS = (
    "deploy rollback cache index migrate schema latency queue retry token parser build release test flaky "
    "timeout shard replica backup restore vector search ranking memory session checkpoint lease seal worker"
).split()


def text_for(i: int) -> str:
    """A distinct task text per ``i`` (three words picked by ``i``'s digits, and ``i`` itself)."""
    return (
        f"{WORDS[i % len(WORDS)]} {WORDS[(i // 7) % len(WORDS)]} {WORDS[(i // 49) % len(WORDS)]} "
        f"task number {i} for the {WORDS[(i * 13) % len(WORDS)]} service"
    )


async def populate(
    rt: MemoryRuntime,
    project: uuid.UUID,
    *,
    agents: int = 3,
    sessions: int = 10,
    pauses_per_session: int = 20,
    episodes: int = 1000,
) -> list[tuple[uuid.UUID, str]]:
    """A project of ``agents`` agents and ``sessions`` sessions (spread over them), each with TTL'd and lasting keys
    and ``pauses_per_session`` checkpoints; one session resumed, one terminated clearing working memory, one
    terminated keeping it; and ``episodes`` episodes in all (the two terminates' included). Returns the sessions."""
    agent_ids = [uuid.uuid4() for _ in range(agents)]
    made: list[tuple[uuid.UUID, str]] = []
    for n in range(sessions):
        agent, sid = agent_ids[n % agents], f"session-{n}"
        made.append((agent, sid))
        await rt.lifecycle.spawn(project, agent, sid, initial_state={"goal": f"goal {n}"}, metadata={"n": n})
        await rt.working.set(rt_scope(project, agent, sid), "lasting", {"n": n, "pi": 3.14159})
        await rt.working.set(rt_scope(project, agent, sid), "short", f"expires {n}", ttl_seconds=3600 + n)
        for p in range(pauses_per_session):
            await rt.working.set(rt_scope(project, agent, sid), "step", p)
            await rt.working.set(rt_scope(project, agent, sid), f"ttl-{p % 3}", [p, "x"], ttl_seconds=7200)
            label = "milestone" if p % 5 == 0 else None
            await rt.lifecycle.pause(project, agent, sid, label=label, metadata={"p": p}, keep=p == 0)
    await rt.lifecycle.resume(project, made[1][0], made[1][1], checkpoint_id=None)
    await rt.lifecycle.terminate(project, made[2][0], made[2][1], task_description=text_for(100000), outcome="success")
    await rt.lifecycle.terminate(
        project,
        made[3][0],
        made[3][1],
        task_description=text_for(100001),
        outcome="partial",
        cleanup_working=False,
        lessons_learned=["keep the cache warm"],
    )
    for i in range(episodes - 2):
        agent, sid = made[i % len(made)]
        await rt.episodic.record_episode(
            project_id=project,
            agent_instance_id=agent,
            session_id=sid if i % 4 else None,
            task_type=WORDS[i % 5],
            task_description=text_for(i),
            outcome=("success", "failure", "partial")[i % 3],
            outcome_details=f"details {WORDS[(i * 3) % len(WORDS)]}",
            lessons_learned=[f"lesson {WORDS[(i * 5) % len(WORDS)]}"],
            importance_score=(i % 10) / 10,
            metadata={"i": i},
        )
    return made


def rt_scope(project: uuid.UUID, agent: uuid.UUID, session_id: str) -> Any:
    from mcp_memory.models import Scope

    return Scope(project, agent, session_id)


async def export_to(rt: MemoryRuntime, sel: Selection, path: Path, *, vectors: bool = False) -> Path:
    assert rt.transfer is not None
    with path.open("wb") as out:
        await write_export(rt.transfer.export(sel, vectors=vectors), out)
    return path


def records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def header(path: Path) -> dict[str, Any]:
    """The file's first record (read alone: the lines after it may be cut off mid-record)."""
    with path.open("rb") as f:
        return dict(orjson.loads(f.readline()))


def resealed(
    path: Path,
    out: Path,
    edit: Callable[[list[dict[str, Any]]], object],
    dumps: Callable[[Any], bytes] = orjson.dumps,
) -> Path:
    """``path`` with its records (header first, trailer left out) changed by ``edit``, written to ``out`` (each
    record by ``dumps``) with a trailer made anew (counts and checksum): a hand-edited file that the checksum cannot
    tell from an export."""
    recs = records(path)[:-1]
    edit(recs)
    kinds = {"session": "sessions", "working": "working", "checkpoint": "checkpoints", "event": "events"}
    counts = dict.fromkeys(["sessions", "working", "checkpoints", "events", "episodes"], 0)
    lines = [dumps(rec) + b"\n" for rec in recs]
    for rec in recs[1:]:
        counts[kinds.get(rec["kind"], "episodes")] += 1
    trailer = {"kind": "trailer", "counts": counts, "sha256": hashlib.sha256(b"".join(lines)).hexdigest()}
    out.write_bytes(b"".join([*lines, orjson.dumps(trailer) + b"\n"]))
    return out


Records = list[dict[str, Any]]


async def small_export(tmp_path: Path) -> tuple[uuid.UUID, Path]:
    """A project of one session (two working keys, a labelled checkpoint, its events) and one episode, exported
    from its own SQLite file under ``tmp_path``; its id and the file."""
    project, agent = uuid.uuid4(), uuid.uuid4()
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}", embedding_provider="hash")
    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(project, agent, "s1", initial_state={"a": 1}, metadata={"x": "y"})
        await rt.working.set(Scope(project, agent, "s1"), "b", [2])
        await rt.lifecycle.pause(project, agent, "s1", label="first", checkpoint_id="c1")
        await rt.episodic.record_episode(
            project_id=project,
            agent_instance_id=agent,
            task_type="t",
            task_description="the task",
            outcome="success",
            lessons_learned=["a lesson"],
        )
        return project, await export_to(rt, Selection(project), tmp_path / "export.jsonl")


def nested(levels: int) -> dict[str, Any]:
    """A JSON object ``levels`` objects deep (``{"d": {"d": ... {}}}``)."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"d": value}
    return value


def first(recs: Records, kind: str) -> dict[str, Any]:
    """The first record of ``kind``."""
    return next(r for r in recs if r["kind"] == kind)


def line_of(path: Path, kind: str) -> int:
    """The line number (from 1) of the first record of ``kind`` in the file at ``path``."""
    return next(i for i, r in enumerate(records(path), start=1) if r["kind"] == kind)


async def assert_nothing_written(rt: MemoryRuntime, project: uuid.UUID) -> None:
    assert not await rt.store.selection_occupied(Selection(project))  # type: ignore[attr-defined]


async def refused(rt: MemoryRuntime, path: Path, error: type[MemoryServiceError] = InvalidArgument) -> str:
    """The message with which ``rt`` refuses to import ``path`` (as ``error``), having written nothing; checking the
    file alone (``validate``, which writes nothing) refuses it alike."""
    assert rt.transfer is not None
    with pytest.raises(error) as checked:
        await rt.transfer.validate(path)
    with pytest.raises(error) as caught:
        await rt.transfer.import_file(path)
    assert checked.value.message == caught.value.message
    await assert_nothing_written(rt, uuid.UUID(header(path)["scope"]["project_id"]))
    return caught.value.message


def export_time(path: Path) -> float:
    """When the export of ``path`` was made (its header's ``created_at``), as epoch seconds."""
    return datetime.fromisoformat(header(path)["created_at"]).timestamp()


def comparable(
    path: Path, *, project: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, list[float]]]:
    """The file's records without what differs between two exports of the same data (the header's time, the
    trailer's checksum; TTL remaining and vectors, returned apart), with ``project`` written over the project ids."""
    out: list[dict[str, Any]] = []
    ttl: dict[str, float] = {}
    vectors: dict[str, list[float]] = {}
    for rec in records(path):
        rec = dict(rec)
        if rec["kind"] == "header":
            rec.pop("created_at")
            if project is not None:
                rec["scope"]["project_id"] = project
        elif rec["kind"] == "trailer":
            rec.pop("sha256")
        elif rec["kind"] == "working":
            remaining = rec.pop("ttl_remaining")
            if remaining is not None:
                ttl[f"{rec['agent_instance_id']}/{rec['session_id']}/{rec['key']}"] = remaining
        elif rec["kind"] == "episode" and rec.get("embedding") is not None:
            vectors[rec["episode_id"]] = rec.pop("embedding")
        if project is not None and "project_id" in rec:
            rec["project_id"] = project
        out.append(rec)
    return out, ttl, vectors


async def cli_source(tmp_path: Path) -> tuple[uuid.UUID, dict[str, str]]:
    """A small project in a SQLite file under ``tmp_path``, and the environment that points the CLI at it (no
    settings file: the developer's own is never read)."""
    project = uuid.uuid4()
    db = tmp_path / "source.db"
    async with MemoryRuntime(Settings(database_url=f"sqlite+aiosqlite:///{db}"), embedding_retry=False) as rt:
        await populate(rt, project, agents=1, sessions=4, pauses_per_session=1, episodes=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env["MCP_MEMORY_CONFIG"] = ""
    env["MCP_MEMORY_DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
    return project, env
