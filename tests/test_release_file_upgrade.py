"""Data written by the last release before Alembic managed both SQL backends upgrades and keeps every session,
checkpoint and episode.

SQLite: ``tests/data/sqlite_schema6.db`` was written by main at 8273b50 (schema version 6, no Alembic version table)
through its public API, and ``sqlite_schema6.json`` holds what that release read back from it, searches and their
scores included (``tests/data/make_sqlite_release_file.py`` made both). Postgres: a database at that release's
Alembic head, 0006, with data in it, taken to this release's head by ``migrate``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Item, Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.postgres.schema import head_revision, migrate
from mcp_memory.stores.sqlite import upgrade
from mcp_memory.stores.sqlite.schema import SCHEMA_VERSION
from tests import pg_servers

pytestmark = pytest.mark.anyio

DATA = Path(__file__).parent / "data"
QUERIES = ("deploy billing canary", "parser crash seed", "retry jitter outage", "kubernetes secret")


async def _read_back(rt: MemoryRuntime, scopes: list[Scope]) -> dict[str, Any]:
    """Every session's status, every checkpoint's items, every episode and every search (with scores)."""
    store = rt.store
    out: dict[str, Any] = {"sessions": {}, "checkpoints": {}, "episodes": {}, "searches": {}}
    projects = sorted({s.project for s in scopes})
    for scope in scopes:
        session = await store.get_session(scope)
        assert session is not None, scope
        out["sessions"][scope] = session.status
        for info in await store.list_checkpoints(scope, 100, None):
            data = await store.get_checkpoint(scope, info.checkpoint_id)
            assert data is not None
            out["checkpoints"][(scope, info.checkpoint_id)] = (info.label, info.content_hash, data.items)
    for episode in await store.recent_episodes(projects, 100):
        out["episodes"][episode.episode_id] = episode
    for project in projects:
        for query in QUERIES:
            for mode in ("hybrid", "text", "vector"):
                found = await rt.episodic.search(str(project), query, limit=10, mode=mode)
                out["searches"][(str(project), query, mode)] = [(e.episode_id, e.score) for e in found]
    return out


async def test_a_sqlite_file_written_by_the_last_release_before_alembic_upgrades_and_keeps_everything(
    tmp_path: Path,
) -> None:
    expected = json.loads((DATA / "sqlite_schema6.json").read_text())
    path = tmp_path / "release.db"
    shutil.copy(DATA / "sqlite_schema6.db", path)
    db = sqlite3.connect(path)
    try:  # what the release left: schema 6, never stamped by Alembic
        assert db.execute("SELECT version FROM schema_version").fetchone() == (expected["schema_version"],) == (6,)
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'mcp_memory_alembic_version'").fetchone() is None
    finally:
        db.close()
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}", **expected["settings"])
    async with MemoryRuntime(settings, clock=lambda: expected["search_at"]) as rt:
        assert (await rt.store.ping())["schema_version"] == SCHEMA_VERSION
        scopes = [Scope(uuid.UUID(p), uuid.UUID(a), s) for p, a, s, _ in expected["sessions"]]
        seen = await _read_back(rt, scopes)
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version_num FROM mcp_memory_alembic_version").fetchall() == [(upgrade.HEAD,)]
        assert db.execute("SELECT COUNT(*) FROM events").fetchone() == (expected["events"],)
    finally:
        db.close()

    assert {(str(s.project), str(s.agent), s.session_id, str(status)) for s, status in seen["sessions"].items()} == {
        tuple(s) for s in expected["sessions"]
    }
    assert len(expected["checkpoints"]) == 7
    for cp in expected["checkpoints"]:
        p, a, s = cp["scope"]
        label, content_hash, items = seen["checkpoints"][(Scope(uuid.UUID(p), uuid.UUID(a), s), cp["checkpoint_id"])]
        assert (label, content_hash) == (cp["label"], cp["content_hash"])
        assert items == {k: Item(v, e) for k, (v, e) in cp["items"].items()}
    assert len(seen["checkpoints"]) == len(expected["checkpoints"])
    assert {str(e) for e in seen["episodes"]} == {e for _, e in expected["episodes"]} and len(seen["episodes"]) == 9
    searches = {(p, q, m): [(uuid.UUID(e), score) for e, score in found] for p, q, m, found in expected["searches"]}

    # The same episodes found in the same order, with equal scores: to the digit for full text; to 1e-5 where a
    # vector counts (this release scans float32 vectors, the file's release scanned in float64). Among episodes of
    # exactly equal score, the newest row comes first now (the file's release took them in row order).
    def by_score(found: list[tuple[uuid.UUID, float]]) -> list[tuple[float, frozenset[uuid.UUID]]]:
        groups: list[tuple[float, set[uuid.UUID]]] = []
        for episode, score in found:
            if groups and abs(groups[-1][0] - score) <= 1e-5:
                groups[-1][1].add(episode)
            else:
                groups.append((score, {episode}))
        return [(score, frozenset(group)) for score, group in groups]

    assert {k: [g for _, g in by_score(found)] for k, found in seen["searches"].items()} == {
        k: [g for _, g in by_score(found)] for k, found in searches.items()
    }
    for key, found in searches.items():
        tolerance = 0.0 if key[2] == "text" else 1e-5
        mine = sorted(score for _, score in seen["searches"][key])
        assert all(abs(a - b) <= tolerance for a, b in zip(mine, sorted(s for _, s in found), strict=True)), key
    assert sum(1 for found in searches.values() if found) >= 12


async def test_a_postgres_database_at_the_last_releases_head_upgrades_and_keeps_everything() -> None:
    """0006 was the head of the release before Alembic managed both backends; this release adds no Postgres
    revision, so ``migrate`` finds nothing to do and every row stays. (When a later release adds one, the data is
    written at the head, the schema taken back to 0006, and brought up again: the same test.)"""
    url = pg_servers.database_url(await pg_servers.create_database())
    await migrate(url, embedding_dimension=64)
    settings = Settings(database_url=url, embedding_provider="hash", embedding_dimension=64)
    clock = iter(range(1_750_000_000, 1_750_100_000)).__next__
    p, a = uuid.uuid4(), uuid.uuid4()
    scopes = [Scope(p, a, f"s{i}") for i in range(3)]
    async with MemoryRuntime(settings, clock=lambda: float(clock())) as rt:
        life = rt.lifecycle
        for i, scope in enumerate(scopes):
            await life.spawn(p, a, scope.session_id, initial_state={"i": i, "text": "日本語"})
            await life.pause(p, a, scope.session_id, checkpoint_id=f"c{i}", label=f"label {i}")
        await life.terminate(p, a, "s2", task_description="Deployed the billing service with a canary")
        for i in range(4):
            await rt.episodic.record_episode(
                project_id=p,
                agent_instance_id=a,
                task_type="deploy",
                task_description=f"Kubernetes deployment {i} failed: missing secret",
                outcome="failure",
                lessons_learned=["retries need jitter"] if i % 2 else [],
            )
    frozen = 1_750_200_000.0
    async with MemoryRuntime(settings, clock=lambda: frozen) as rt:
        written = await _read_back(rt, scopes)
    await migrate(url, revision="0006", downgrade=True, embedding_dimension=64)
    at_0006, after = await migrate(url, embedding_dimension=64)
    assert (at_0006.revision, after.revision, after.embedding_dimension) == ("0006", head_revision(), 64)
    async with MemoryRuntime(settings, clock=lambda: frozen) as rt:
        seen = await _read_back(rt, scopes)
    assert seen == written  # every session, checkpoint and episode; every search with equal scores
    assert [str(status) for status in seen["sessions"].values()] == ["paused", "paused", "terminated"]
    assert {cid for _, cid in seen["checkpoints"]} == {"c0", "c1", "c2"}
    assert all(items for _, _, items in seen["checkpoints"].values())
    assert len(seen["episodes"]) == 5
    assert any(seen["searches"].values())
