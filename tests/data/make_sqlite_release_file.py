"""Write a SQLite file with the mcp-memory it runs with, and what that release reads back from it.

Used to make ``tests/data/sqlite_schema6.db`` and ``sqlite_schema6.json`` with the code of main at 8273b50 (the last
release before Alembic managed the SQLite file, schema version 6), for ``tests/test_release_file_upgrade.py``:

    git worktree add /tmp/at-8273b50 8273b50
    PYTHONPATH=/tmp/at-8273b50 python tests/data/make_sqlite_release_file.py tests/data/sqlite_schema6

It goes through the public Python API only (``MemoryRuntime``), with the deterministic ``hash`` embedding provider
and a fixed clock, so a later release can search the file again and compare scores exactly. The file holds running,
paused (two checkpoints, one with an expiring key), resumed and terminated sessions with their events, episodes
from terminate and recorded directly, with full-text postings and vectors, in two projects.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import uuid
from pathlib import Path

import anyio

from mcp_memory import MemoryRuntime
from mcp_memory.config import Settings
from mcp_memory.models import Scope

T0 = 1_750_000_000.0
PROJECTS = (uuid.UUID(int=0xA1), uuid.UUID(int=0xB2))
AGENTS = (uuid.UUID(int=0x1001), uuid.UUID(int=0x1002))
QUERIES = ("deploy billing canary", "parser crash seed", "retry jitter outage", "kubernetes secret")
SETTINGS = {"embedding_provider": "hash", "embedding_dimension": 64}


class Clock:
    """A clock that moves one second per reading (every row gets its own time, the same on every run)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


SEARCH_AT = T0 + 100_000.0
"""The clock of the searches recorded here and repeated by the test (recency is part of the score)."""


async def write(base: Path) -> dict[str, object]:
    db_path = base.with_suffix(".db")
    clock = Clock()
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db_path}", **SETTINGS)
    checkpoints: list[dict[str, object]] = []
    async with MemoryRuntime(settings, clock=clock) as rt:
        life = rt.lifecycle
        p, q = (str(x) for x in PROJECTS)
        a, b = (str(x) for x in AGENTS)
        # running, with working memory
        await life.spawn(p, a, "running", initial_state={"goal": "ship it", "n": [1, 2, 3]}, metadata={"m": 1})
        # paused with two checkpoints (one key expires long after the fixture's clock)
        await life.spawn(p, a, "paused", initial_state={"step": 1, "notes": "日本語 😀"})
        await life.pause(p, a, "paused", checkpoint_id="cp-1", label="first")
        paused = Scope(PROJECTS[0], AGENTS[0], "paused")
        await rt.working.set(paused, "step", 2)
        await rt.working.set(paused, "temp", {"x": 1.5}, ttl_seconds=10_000_000)
        await life.pause(p, a, "paused", checkpoint_id="cp-2", label="second", metadata={"why": "lunch"})
        # paused, then resumed from its first checkpoint
        await life.spawn(q, b, "resumed", initial_state={"a": 1})
        await life.pause(q, b, "resumed", checkpoint_id="r-1")
        await rt.working.set(Scope(PROJECTS[1], AGENTS[1], "resumed"), "a", 2)
        await life.pause(q, b, "resumed", checkpoint_id="r-2")
        await life.resume(q, b, "resumed", checkpoint_id="r-1")
        # terminated into episodes
        texts = [
            (p, a, "t-deploy", "Deployed the billing service with a canary", ["watch error rates", "canary first"]),
            (p, b, "t-parser", "Parser crashed on empty input; pinned the random seed", ["seed every generator"]),
            (q, b, "t-outage", "Retry loop hammered the API during the outage", ["retries need jitter"]),
        ]
        for project, agent, sid, description, lessons in texts:
            await life.spawn(project, agent, sid, initial_state={"progress": description[:10]})
            await life.pause(project, agent, sid, checkpoint_id=f"{sid}-cp")
            await life.terminate(project, agent, sid, task_description=description, lessons_learned=lessons)
        for i in range(6):
            await rt.episodic.record_episode(
                project_id=p if i % 2 else q,
                agent_instance_id=a,
                task_type="deploy" if i % 3 else "incident",
                task_description=f"Kubernetes deployment {i} failed: missing secret" if i % 2 else f"Outage {i}",
                outcome="failure" if i % 2 else "success",
                lessons_learned=["check secrets before deploying"] if i % 2 else [],
                importance_score=i / 6,
            )
    # What this release reads back, through its own store (the test compares against it).
    expected: dict[str, object] = {"settings": SETTINGS, "search_at": SEARCH_AT, "sessions": [], "checkpoints": []}
    async with MemoryRuntime(settings, clock=lambda: SEARCH_AT) as rt:
        store = rt.store
        db = sqlite3.connect(db_path)
        scopes = db.execute("SELECT project_id, agent_instance_id, session_id, status FROM sessions ORDER BY id")
        for project, agent, sid, status in scopes.fetchall():
            expected["sessions"].append([project, agent, sid, status])  # type: ignore[attr-defined]
            scope = Scope(uuid.UUID(project), uuid.UUID(agent), sid)
            for info in await store.list_checkpoints(scope, 100, None):
                data = await store.get_checkpoint(scope, info.checkpoint_id)
                assert data is not None
                checkpoints.append(
                    {
                        "scope": [project, agent, sid],
                        "checkpoint_id": info.checkpoint_id,
                        "label": info.label,
                        "content_hash": info.content_hash,
                        "items": {k: [it.value, it.expires_at] for k, it in data.items.items()},
                    }
                )
        expected["checkpoints"] = checkpoints
        expected["episodes"] = [
            [project, episode_id]
            for project, episode_id in db.execute("SELECT project_id, episode_id FROM episodes ORDER BY id")
        ]
        expected["events"] = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        db.close()
        searches = []
        for project in PROJECTS:
            for query in QUERIES:
                for mode in ("hybrid", "text", "vector"):
                    found = await rt.episodic.search(str(project), query, limit=10, mode=mode)
                    searches.append([str(project), query, mode, [[str(e.episode_id), e.score] for e in found]])
        expected["searches"] = searches
    return expected


def main() -> None:
    base = Path(sys.argv[1])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{base.with_suffix('.db')}{suffix}").unlink(missing_ok=True)
    expected = anyio.run(write, base)
    db = sqlite3.connect(base.with_suffix(".db"))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    expected["schema_version"] = db.execute("SELECT version FROM schema_version").fetchone()[0]
    db.close()
    base.with_suffix(".json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {base.with_suffix('.db')} ({os.path.getsize(base.with_suffix('.db'))} bytes)")


if __name__ == "__main__":
    main()
