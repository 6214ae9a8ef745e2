"""The SQLite file's schema: a checkpoint's state is one row, and files of older schemas are upgraded on start.

The version-1 and version-2 files are built here with their schema's own DDL and rows (not with the store), so the
migrations are tested against what an old mcp-memory really left on disk; version-3 and version-4 files are current
files taken back to those schemas' tables (and to before Alembic: no version table). The upgrades are Alembic's
``sqlite`` history (``mcp_memory/stores/migrations/versions/sqlite/``), run at start-up.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path

import anyio
import orjson
import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, Internal, Unavailable
from mcp_memory.models import CheckpointInfo, Episode, Item, Outcome, Scope, to_datetime
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.ports import EpisodeFilter, EventRecord, Limits
from mcp_memory.stores.sqlite import fulltext
from mcp_memory.stores.sqlite.fulltext import bm25_ranking
from mcp_memory.stores.sqlite.schema import SCHEMA_VERSION
from mcp_memory.stores.sqlite.store import SqliteStore
from tests.waiting import until

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0

# Schema 1's tables as mcp-memory 0.x created them (all of them: that release ran this DDL at every start).
_V1_EPISODES_DDL = [
    """CREATE TABLE episodes (
        id INTEGER PRIMARY KEY,
        episode_id TEXT NOT NULL UNIQUE,
        project_id TEXT NOT NULL,
        agent_instance_id TEXT NOT NULL,
        session_id TEXT,
        task_type TEXT NOT NULL,
        task_description TEXT NOT NULL,
        outcome TEXT NOT NULL,
        outcome_details TEXT NOT NULL DEFAULT '',
        lessons_learned TEXT NOT NULL DEFAULT '[]',
        importance_score REAL NOT NULL,
        context_summary TEXT NOT NULL DEFAULT '',
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        embedding BLOB,
        embedding_model TEXT
    )""",
    "CREATE INDEX episodes_project_created ON episodes (project_id, created_at)",
    "CREATE INDEX episodes_unembedded ON episodes (created_at, id) WHERE embedding IS NULL",
    """CREATE VIRTUAL TABLE episodes_fts USING fts5(
        task_type, task_description, outcome_details, lessons, context_summary,
        content='', tokenize='porter unicode61'
    )""",
]
_V1_CHECKPOINTS_DDL = """CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_pk INTEGER NOT NULL REFERENCES sessions(id),
        checkpoint_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        keys_count INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        label TEXT,
        content_hash TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        UNIQUE (session_pk, checkpoint_id)
    )"""
_V1_SESSION_DDL = [
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        project_id TEXT NOT NULL,
        agent_instance_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        agent_type_id TEXT,
        status TEXT NOT NULL,
        sealed INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        episode_id TEXT,
        terminated_at REAL,
        terminate_result TEXT,
        UNIQUE (project_id, agent_instance_id, session_id)
    )""",
    """CREATE TABLE working_items (
        session_pk INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at REAL,
        PRIMARY KEY (session_pk, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        session_pk INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        event_type TEXT NOT NULL,
        at REAL NOT NULL,
        duration_ms REAL NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX working_expiry ON working_items (expires_at) WHERE expires_at IS NOT NULL",
    "CREATE INDEX events_session ON events (session_pk, id)",
]
_V1_DDL = [
    *_V1_SESSION_DDL,
    _V1_CHECKPOINTS_DDL,
    "CREATE INDEX checkpoints_session_created ON checkpoints (session_pk, created_at, id)",
    """CREATE TABLE checkpoint_items (
        checkpoint_pk INTEGER NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at REAL,
        PRIMARY KEY (checkpoint_pk, key)
    ) WITHOUT ROWID""",
    *_V1_EPISODES_DDL,
]

# Two sessions; session A has three checkpoints (one empty, one with an expiring key and non-ASCII text).
P, A = uuid.uuid4(), uuid.uuid4()
SCOPE_A, SCOPE_B = Scope(P, A, "sess-a"), Scope(P, A, "sess-b")
CHECKPOINTS = {
    # (session, checkpoint_id, created_at, label, items)
    "a1": (SCOPE_A, "a1", T0 + 1, "first", {"k1": Item('"v1"'), "k2": Item("[1,2,3]")}),
    "a2": (SCOPE_A, "a2", T0 + 2, None, {}),
    "a3": (
        SCOPE_A,
        "a3",
        T0 + 3,
        "third",
        {"zeta": Item('{"x":1.5}'), "ümlaut": Item('"日本語 😀"', T0 + 100.123456), "alpha": Item("null")},
    ),
    "b1": (SCOPE_B, "b1", T0 + 4, None, {"only": Item("42", T0 + 10)}),
}


def at(epoch: float) -> datetime:
    dt = to_datetime(epoch)
    assert dt is not None
    return dt


def _value_bytes(items: dict[str, Item]) -> int:
    return sum(len(it.value.encode()) for it in items.values())


def _build_v1_file(path: Path) -> None:
    db = sqlite3.connect(path)
    with db:
        for statement in _V1_DDL:
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        pks: dict[Scope, int] = {}
        for scope in (SCOPE_A, SCOPE_B):
            cur = db.execute(
                "INSERT INTO sessions (project_id, agent_instance_id, session_id, status, created_at, updated_at) "
                "VALUES (?, ?, ?, 'paused', ?, ?)",
                (scope.project, scope.agent, scope.session_id, T0, T0),
            )
            assert cur.lastrowid is not None
            pks[scope] = cur.lastrowid
        for scope, cid, created, label, items in CHECKPOINTS.values():
            cur = db.execute(
                "INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, label, "
                "content_hash, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (pks[scope], cid, created, len(items), _value_bytes(items), label, f"sha256:{cid}", '{"v": 1}'),
            )
            db.executemany(
                "INSERT INTO checkpoint_items (checkpoint_pk, key, value, expires_at) VALUES (?, ?, ?, ?)",
                [(cur.lastrowid, k, it.value, it.expires_at) for k, it in items.items()],
            )
    db.close()


def _tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


async def test_a_version_1_file_is_upgraded_with_its_checkpoints_intact(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _build_v1_file(path)
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        assert (await store.ping())["schema_version"] == SCHEMA_VERSION == 10
        for scope, cid, created, label, items in CHECKPOINTS.values():
            data = await store.get_checkpoint(scope, cid)
            assert data is not None
            assert data.items == items
            assert list(data.items) == sorted(items)  # key order as schema 1 returned it
            assert data.info.created_at == to_datetime(created)
            assert (data.info.label, data.info.keys_count, data.info.bytes) == (label, len(items), _value_bytes(items))
            assert (data.info.content_hash, data.info.metadata) == (f"sha256:{cid}", {"v": 1})
        newest = await store.get_checkpoint(SCOPE_A, None)
        assert newest is not None and newest.info.checkpoint_id == "a3"
        # Expired keys stay in the stored state but are never live.
        assert "ümlaut" not in newest.live_items(T0 + 101) and "ümlaut" in newest.live_items(T0 + 100)
        listed = await store.list_checkpoints(SCOPE_A, 10, None)
        assert [c.checkpoint_id for c in listed] == ["a3", "a2", "a1"]
        assert [c.keys_count for c in listed] == [3, 0, 2]
        # The upgraded file takes new pauses; a duplicate id still conflicts.
        items = {"new": Item('"x"')}
        info = CheckpointInfo(
            checkpoint_id="a4",
            created_at=at(T0 + 5),
            keys_count=1,
            bytes=3,
            content_hash="sha256:a4",
        )
        await store.record_pause(SCOPE_A, info, items, EventRecord("pause", T0 + 5, 1.0, "ok", {}))
        latest = await store.get_checkpoint(SCOPE_A, None)
        assert latest is not None and latest.items == items
    finally:
        await store.close()
    assert "checkpoint_items" not in _tables(path)

    # Starting again finds version 2 and changes nothing.
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        data = await store.get_checkpoint(SCOPE_A, "a3")
        assert data is not None and data.items == CHECKPOINTS["a3"][4]
    finally:
        await store.close()


async def test_a_failed_migration_leaves_the_version_1_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _build_v1_file(path)
    db = sqlite3.connect(path)
    with db:  # a value that is not valid UTF-8: the conversion fails halfway through
        db.execute("INSERT INTO checkpoint_items VALUES (4, 'zz-bad', CAST(x'ff' AS TEXT), NULL)")
    db.close()
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    with pytest.raises(Exception):  # noqa: B017 (whatever the driver raises: the point is what is left)
        await store.start()
    await store.close()
    assert "checkpoint_items" in _tables(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        columns = {r[1] for r in db.execute("PRAGMA table_info(checkpoints)")}
        assert "state" not in columns
        assert db.execute("SELECT COUNT(*) FROM checkpoint_items").fetchone() == (7,)
    finally:
        db.close()


async def test_a_checkpoint_is_one_row_with_its_values_as_json_text(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        scope = Scope(P, A, "s")
        now = T0
        await store.create_session(scope, None, {}, now, EventRecord("spawn", now, 1.0, "ok", {}))
        items = {"b": Item('{"n":[1,2]}', T0 + 50.25), "a": Item('"text"')}
        info = CheckpointInfo(
            checkpoint_id="c1",
            created_at=at(now),
            keys_count=2,
            bytes=_value_bytes(items),
            content_hash="sha256:c1",
        )
        await store.record_pause(scope, info, items, EventRecord("pause", now, 1.0, "ok", {}))
    finally:
        await store.close()
    db = sqlite3.connect(path)
    try:
        (state,) = db.execute("SELECT state FROM checkpoints WHERE checkpoint_id = 'c1'").fetchone()
    finally:
        db.close()
    # Sorted keys; each value is the stored JSON text as a string (moved, never decoded), with its expiry.
    assert state == orjson.dumps({"a": ['"text"', None], "b": ['{"n":[1,2]}', T0 + 50.25]}).decode()
    assert json.loads(state)["b"][0] == '{"n":[1,2]}'


async def test_a_file_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    db.close()
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    with pytest.raises(Unavailable, match="newer"):
        await store.start()
    await store.close()


# -- schemas 2 -> 3 and 4 -> 5: full-text statistics per project ---------------------------------------------

# Schema 2's tables as mcp-memory created them: schema 1's with a checkpoint's state in one column, and one FTS5
# table for every project's episodes.
_V2_DDL = [
    *_V1_SESSION_DDL,
    _V1_CHECKPOINTS_DDL.replace(
        "metadata TEXT NOT NULL DEFAULT '{}',",
        "metadata TEXT NOT NULL DEFAULT '{}',\n        state TEXT NOT NULL DEFAULT '{}',",
    ),
    "CREATE INDEX checkpoints_session_created ON checkpoints (session_pk, created_at, id)",
    *_V1_EPISODES_DDL,
]

_V2_TEXTS = [
    ("bug_fix", "Fixed the flaky parser test", "pinned the random seed", ["seed every random generator"], ""),
    ("bug_fix", "Parser crashed on empty input", "guard added", [], "parser module"),
    ("deploy", "Deployed the billing service to Kubernetes", "canary first", ["watch error rates"], ""),
    ("deploy", "Kubernetes deployment failed: missing secret", "", ["check secrets before deploying"], "k8s"),
    ("incident", "Élan café outage: the naïve retry loop hammered the API", "backoff", ["Retries need jitter"], ""),
    ("coding", "Running the tests runs the migrations first", "", ["run migrations once", "twice"], ""),
    ("coding", "Refactored the billing service into modules", "billing billing", [], "billing refactor"),
]
_V2_QUERIES = ["parser crash", "billing kubernetes deploy", "the", "running runs", "elan cafe retries", "zanzibar"]


def _v2_episodes() -> list[Episode]:
    """Episodes of two projects (the second holds most of the first's words too), interleaved."""
    episodes = []
    for i, (task_type, description, details, lessons, summary) in enumerate(_V2_TEXTS * 3):
        episodes.append(
            Episode(
                episode_id=uuid.UUID(int=i + 1),
                project_id=P if i % 3 else A,
                agent_instance_id=A,
                task_type=task_type,
                task_description=f"{description} {i}" if i >= len(_V2_TEXTS) else description,
                outcome=Outcome.SUCCESS if i % 2 else Outcome.FAILURE,
                outcome_details=details,
                lessons_learned=lessons,
                importance_score=(i % 5) / 5,
                context_summary=summary,
                metadata={"i": i},
                created_at=at(T0 - i * 3600),
            )
        )
    return episodes


def _build_v2_file(path: Path, episodes: list[Episode]) -> None:
    """A schema-2 file holding ``episodes``, written as schema 2's store wrote them (row, then its FTS5 row)."""
    db = sqlite3.connect(path)
    with db:
        for statement in _V2_DDL:
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (2)")
        for ep in episodes:
            cur = db.execute(
                "INSERT INTO episodes (episode_id, project_id, agent_instance_id, session_id, task_type, "
                "task_description, outcome, outcome_details, lessons_learned, importance_score, context_summary, "
                "metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(ep.episode_id),
                    str(ep.project_id),
                    str(ep.agent_instance_id),
                    ep.session_id,
                    ep.task_type,
                    ep.task_description,
                    ep.outcome.value,
                    ep.outcome_details,
                    json.dumps(ep.lessons_learned),
                    ep.importance_score,
                    ep.context_summary,
                    json.dumps(ep.metadata),
                    ep.created_at.timestamp(),
                ),
            )
            db.execute(
                "INSERT INTO episodes_fts (rowid, task_type, task_description, outcome_details, lessons, "
                "context_summary) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    cur.lastrowid,
                    ep.task_type.replace("_", " "),
                    ep.task_description,
                    ep.outcome_details,
                    "\n".join(ep.lessons_learned),
                    ep.context_summary,
                ),
            )
    db.close()


async def _search_everything(store: SqliteStore) -> list[object]:
    """Every query on both projects: raw full-text scores, and the ranked results with their final scores."""
    seen: list[object] = []
    for project in (A, P):
        for query in _V2_QUERIES:
            raw = await store._read_direct(lambda db, p=str(project), q=query: bm25_ranking(db, p, q, "", {}, 100)[0])
            seen.append(raw)
            for flt in (EpisodeFilter(), EpisodeFilter(outcome=Outcome.SUCCESS)):
                found = await store.search_episodes(project, query, None, flt, 10, T0, "text")
                seen.append([(e.episode_id, e.score, e.task_description) for e in found])
    return seen


def _text_statistics(path: Path) -> list[object]:
    db = sqlite3.connect(path)
    try:
        return [
            db.execute("SELECT project_id, episodes, tokens FROM text_projects ORDER BY project_id").fetchall(),
            db.execute(
                "SELECT p.project_id, t.term, e.episode_id, t.freq FROM episode_terms t "
                "JOIN text_projects p ON p.id = t.project_pk JOIN episodes e ON e.id = t.episode_pk "
                "ORDER BY 1, 2, 3"
            ).fetchall(),
            db.execute("SELECT episode_id, text_tokens FROM episodes ORDER BY episode_id").fetchall(),
            db.execute(
                "SELECT p.project_id, t.term, t.episodes FROM text_terms t JOIN text_projects p ON p.id = t.project_pk "
                "ORDER BY 1, 2"
            ).fetchall(),
            db.execute(
                "SELECT e.episode_id, t.term, t.episode_tokens, e.text_tokens FROM episode_terms t "
                "JOIN episodes e ON e.id = t.episode_pk ORDER BY 1, 2"
            ).fetchall(),
        ]
    finally:
        db.close()


async def test_a_version_2_file_is_upgraded_and_searches_as_a_new_file_with_the_same_episodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fulltext, "TEXT_BATCH", 4)  # the migration tokenizes in several batches
    episodes = _v2_episodes()
    old, new = tmp_path / "v2.db", tmp_path / "v3.db"
    _build_v2_file(old, episodes)
    migrated = SqliteStore(f"sqlite+aiosqlite:///{old}")
    fresh = SqliteStore(f"sqlite+aiosqlite:///{new}")
    await migrated.start()
    await fresh.start()
    try:
        assert (await migrated.ping())["schema_version"] == SCHEMA_VERSION == 10
        for ep in episodes:
            await fresh.add_episode(ep, None)
        results = await _search_everything(migrated)
        assert results == await _search_everything(fresh)  # the same results and scores, bit for bit
        assert any(r for r in results[1::3])  # and they found things
        assert await migrated.get_episode(P, episodes[1].episode_id) == await fresh.get_episode(
            P, episodes[1].episode_id
        )
    finally:
        await migrated.close()
        await fresh.close()
    assert _text_statistics(old) == _text_statistics(new)
    assert "episodes_fts" not in _tables(old)

    # The upgraded file takes new episodes, and starting it again changes nothing.
    store = SqliteStore(f"sqlite+aiosqlite:///{old}")
    await store.start()
    try:
        extra = episodes[0].model_copy(update={"episode_id": uuid.uuid4(), "task_description": "parser zanzibar"})
        await store.add_episode(extra, None)
        found = await store.search_episodes(A, "zanzibar", None, EpisodeFilter(), 5, T0, "text")
        assert [e.episode_id for e in found] == [extra.episode_id]
    finally:
        await store.close()


def _take_back_to_v4(path: Path) -> None:
    """A schema-5 file as schema 4 stored the same episodes: postings without the episode's length, no term counts."""
    db = sqlite3.connect(path)
    with db:
        db.execute("DROP TABLE text_terms")
        db.execute(
            "CREATE TABLE episode_terms_4 (project_pk INTEGER NOT NULL, term TEXT NOT NULL, episode_pk INTEGER NOT "
            "NULL, freq REAL NOT NULL, PRIMARY KEY (project_pk, term, episode_pk)) WITHOUT ROWID"
        )
        db.execute("INSERT INTO episode_terms_4 SELECT project_pk, term, episode_pk, freq FROM episode_terms")
        db.execute("DROP TABLE episode_terms")
        db.execute("ALTER TABLE episode_terms_4 RENAME TO episode_terms")
        db.execute("UPDATE schema_version SET version = 4")
        db.execute("DROP TABLE mcp_memory_alembic_version")  # schema 4 was written before Alembic
    db.close()


async def test_a_version_4_file_is_upgraded_and_searches_as_a_new_file_with_the_same_episodes(
    tmp_path: Path,
) -> None:
    episodes = _v2_episodes()
    old, new = tmp_path / "v4.db", tmp_path / "v5.db"
    _build_v2_file(old, episodes)
    store = SqliteStore(f"sqlite+aiosqlite:///{old}")
    await store.start()
    await store.close()
    _take_back_to_v4(old)
    assert "text_terms" not in _tables(old)
    migrated = SqliteStore(f"sqlite+aiosqlite:///{old}")
    fresh = SqliteStore(f"sqlite+aiosqlite:///{new}")
    await migrated.start()
    await fresh.start()
    try:
        assert (await migrated.ping())["schema_version"] == SCHEMA_VERSION == 10
        for ep in episodes:
            await fresh.add_episode(ep, None)
        results = await _search_everything(migrated)
        assert results == await _search_everything(fresh)  # the same results and scores, bit for bit
        assert any(r for r in results[1::3])
    finally:
        await migrated.close()
        await fresh.close()
    assert _text_statistics(old) == _text_statistics(new)


async def test_a_failed_version_2_migration_leaves_the_file_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fulltext, "TEXT_BATCH", 4)  # three batches are written before the bad row's
    path = tmp_path / "v2.db"
    _build_v2_file(path, _v2_episodes())
    db = sqlite3.connect(path)
    with db:  # lessons that are not JSON: the conversion fails after some postings were written
        db.execute("UPDATE episodes SET lessons_learned = 'not json' WHERE id = 15")
    db.close()
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    with pytest.raises(Exception):  # noqa: B017 (whatever the driver raises: the point is what is left)
        await store.start()
    await store.close()
    tables = _tables(path)
    assert "episodes_fts" in tables
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
        assert "text_tokens" not in {r[1] for r in db.execute("PRAGMA table_info(episodes)")}
        assert "episode_terms" not in tables or db.execute("SELECT COUNT(*) FROM episode_terms").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM episodes_fts WHERE episodes_fts MATCH 'parser'").fetchone()[0] > 0
    finally:
        db.close()


# -- the one-hand-over transactions (pause, resume, snapshot, restore run whole on the connection's thread) --


async def _started(tmp_path: Path) -> tuple[SqliteStore, Scope]:
    store = SqliteStore(f"sqlite+aiosqlite:///{tmp_path / 'direct.db'}")
    await store.start()
    scope = Scope(P, A, "direct")
    await store.create_session(scope, None, {}, T0, EventRecord("spawn", T0, 1.0, "ok", {}))
    return store, scope


def _events(store: SqliteStore) -> int:
    db = sqlite3.connect(store.path)
    try:
        (n,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(n)
    finally:
        db.close()


async def test_a_direct_write_that_raises_leaves_nothing_and_the_writer_works_on(tmp_path: Path) -> None:
    store, scope = await _started(tmp_path)
    try:
        before = _events(store)

        def half_then_conflict(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO events (session_pk, event_type, at, duration_ms, outcome) VALUES (1, 'x', 0, 0, 'ok')"
            )
            raise Conflict("no")

        with pytest.raises(Conflict):
            await store._write_direct(half_then_conflict)
        assert _events(store) == before

        def broken_sql(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO events (session_pk, event_type, at, duration_ms, outcome) VALUES (1, 'x', 0, 0, 'ok')"
            )
            db.execute("INSERT INTO no_such_table VALUES (1)")

        with pytest.raises(Unavailable):  # sqlite3.OperationalError: reported as the store being unavailable
            await store._write_direct(broken_sql)

        def integrity(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO sessions (id, project_id, agent_instance_id, session_id, status, created_at, "
                "updated_at) VALUES (1, 'p', 'a', 's', 'running', 0, 0)"
            )

        with pytest.raises(Internal):
            await store._write_direct(integrity)
        assert _events(store) == before
        await store.record_pause(scope, _info("c1"), {"k": Item("1")}, EventRecord("pause", T0, 1.0, "ok", {}))
        assert _events(store) == before + 1
        assert (await store.snapshot(scope, T0)) == {}
    finally:
        await store.close()


def _info(cid: str) -> CheckpointInfo:
    return CheckpointInfo(checkpoint_id=cid, created_at=at(T0), keys_count=1, bytes=1, content_hash="sha256:x")


async def test_a_cancelled_pause_is_all_or_nothing_and_the_store_works_on(tmp_path: Path) -> None:
    store, scope = await _started(tmp_path)
    try:
        items = {f"k{i:04d}": Item('"' + "v" * 90 + '"') for i in range(2000)}
        for attempt in range(20):
            with anyio.move_on_after(0.0005 * attempt):
                await store.record_pause(scope, _info(f"c{attempt}"), items, EventRecord("pause", T0, 1.0, "ok", {}))
        listed = await store.list_checkpoints(scope, 100, None)
        for c in listed:  # every checkpoint that exists is whole
            data = await store.get_checkpoint(scope, c.checkpoint_id)
            assert data is not None and data.items == items
        await store.restore(scope, items, True, T0, Limits(max_keys=10_000))
        assert len(await store.snapshot(scope, T0)) == 2000
    finally:
        await store.close()


async def test_the_wal_is_checkpointed_off_the_callers_path(tmp_path: Path) -> None:
    """Our connections never checkpoint inside a commit (wal_autocheckpoint=0); the store's own thread copies
    the WAL into the database file after every few writes, so the file grows while the store runs."""
    store, scope = await _started(tmp_path)
    try:
        async with store._read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar() == 0
        data = anyio.Path(store.path)
        size_before = (await data.stat()).st_size
        items = {f"k{i:04d}": Item('"' + "v" * 90 + '"') for i in range(1000)}  # ~110 kB per checkpoint
        for n in range(40):
            await store.record_pause(scope, _info(f"c{n}"), items, EventRecord("pause", T0, 1.0, "ok", {}))

        async def grown() -> bool:  # the thread wakes after every 32 writes, or each second
            return (await data.stat()).st_size >= size_before + 2_000_000

        await until(grown, what="the database file to grow by 2 MB")
    finally:
        await store.close()
    data_file = sqlite3.connect(tmp_path / "direct.db")
    try:
        assert data_file.execute("SELECT COUNT(*) FROM checkpoints").fetchone() == (40,)
    finally:
        data_file.close()


async def test_a_version_3_file_gains_seal_owners_and_its_ownerless_seal_can_be_taken_over(tmp_path: Path) -> None:
    """Schema 3 -> 4: ``sessions`` gains a seal's owner and lease. A session sealed before (by a terminate that was
    cut off) has no owner: it stays sealed, and any terminate may take the seal over."""
    path = tmp_path / "v3.db"
    sealed, other = Scope(uuid.uuid4(), uuid.uuid4(), "sealed"), Scope(uuid.uuid4(), uuid.uuid4(), "open")
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        for scope in (sealed, other):
            await store.create_session(scope, None, {}, T0, EventRecord("spawn", T0, 0.0, "ok"))
    finally:
        await store.close()
    db = sqlite3.connect(path)
    with db:  # back to schema 3: the columns go, the seal stays (as schema 3 stored it)
        db.execute("ALTER TABLE sessions DROP COLUMN seal_token")
        db.execute("ALTER TABLE sessions DROP COLUMN seal_until")
        db.execute("UPDATE sessions SET sealed = 1 WHERE session_id = 'sealed'")
        db.execute("UPDATE schema_version SET version = 3")
        db.execute("DROP TABLE mcp_memory_alembic_version")  # schema 3 was written before Alembic
    db.close()
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        assert (await store.ping())["schema_version"] == SCHEMA_VERSION == 10
        with pytest.raises(Conflict, match="being terminated"):
            await store.set(sealed, "k", Item("1"), T0, Limits(10))
        await store.seal(sealed, "a-terminate", T0, 60.0)  # taken over at once: the old seal has no owner
        with pytest.raises(Conflict, match="already in progress"):
            await store.seal(sealed, "another", T0 + 1, 60.0)
        await store.unseal(sealed, "a-terminate")
        await store.set(sealed, "k", Item("1"), T0, Limits(10))
        await store.seal(other, "a-terminate", T0, 60.0)
        info = await store.get_session(other)
        assert info is not None and info.sealed
    finally:
        await store.close()


async def test_a_server_starts_on_a_current_file_while_another_process_holds_its_write_lock(tmp_path: Path) -> None:
    """Start-up checks a current file without taking SQLite's write lock: a server starts (and reads) while another
    process writes a long transaction (an import), where it waited 30 s for the lock and then failed."""
    path = tmp_path / "memory.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}")
    async with MemoryRuntime(settings) as rt:
        await rt.lifecycle.spawn(str(uuid.uuid4()), str(uuid.uuid4()), "s")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        with anyio.fail_after(10):
            async with MemoryRuntime(settings) as rt:
                assert (await rt.sessions.list_sessions(uuid.uuid4()))["sessions"] == []
    finally:
        writer.execute("ROLLBACK")
        writer.close()
