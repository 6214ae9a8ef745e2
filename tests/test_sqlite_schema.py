"""The SQLite file's schema: a checkpoint's state is one row, and files of schema 1 are upgraded on start.

The version-1 file is built here with schema 1's own DDL and rows (not with the store), so the migration is
tested against what an old mcp-memory really left on disk.
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

from mcp_memory.errors import Conflict, Internal, Unavailable
from mcp_memory.models import CheckpointInfo, Item, Scope, to_datetime
from mcp_memory.stores.ports import EventRecord, Limits
from mcp_memory.stores.sqlite import SCHEMA_VERSION, SqliteStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0

# Schema 1's tables as mcp-memory 0.x created them (the ones the migration touches or joins on).
_V1_DDL = [
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
    """CREATE TABLE checkpoints (
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
    )""",
    "CREATE INDEX checkpoints_session_created ON checkpoints (session_pk, created_at, id)",
    """CREATE TABLE checkpoint_items (
        checkpoint_pk INTEGER NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at REAL,
        PRIMARY KEY (checkpoint_pk, key)
    ) WITHOUT ROWID""",
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
        assert (await store.ping())["schema_version"] == SCHEMA_VERSION == 2
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
        for _ in range(200):  # the thread wakes after every 32 writes, or each second
            if (await data.stat()).st_size >= size_before + 2_000_000:
                break
            await anyio.sleep(0.05)  # polling a file another thread writes
        assert (await data.stat()).st_size >= size_before + 2_000_000
    finally:
        await store.close()
    data_file = sqlite3.connect(tmp_path / "direct.db")
    try:
        assert data_file.execute("SELECT COUNT(*) FROM checkpoints").fetchone() == (40,)
    finally:
        data_file.close()
