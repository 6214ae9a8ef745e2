"""The SQLite file's schema is Alembic's ``sqlite`` history (``mcp_memory/stores/migrations/versions/sqlite/``):
replaying it ends at today's tables, a new file is stamped at its head, an upgrade is all or nothing, and a file of
a revision this release does not know is refused. (The upgrades of files of each old schema version, with their
data, are in ``tests/test_sqlite_schema.py``; a file written by the last release before Alembic in
``tests/test_release_file_upgrade.py``.)"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from mcp_memory.errors import Unavailable
from mcp_memory.stores import migrations
from mcp_memory.stores.postgres import schema as pg_schema
from mcp_memory.stores.sqlite import upgrade
from mcp_memory.stores.sqlite.schema import SCHEMA_VERSION
from mcp_memory.stores.sqlite.store import SqliteStore

pytestmark = pytest.mark.anyio


def _structure(path: Path) -> dict[str, object]:
    """Every table's columns (order aside: ALTER TABLE appends), keys, indexes and rowid-ness; the index SQL."""
    db = sqlite3.connect(path)
    try:
        out: dict[str, object] = {}
        for name, kind, sql in db.execute(
            "SELECT name, type, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall():
            if kind == "index":
                out[name] = " ".join(sql.split()) if sql else None
                continue
            if kind != "table" or sql.startswith("CREATE VIRTUAL"):
                out[name] = kind
                continue
            out[name] = {
                # A default added by ALTER TABLE through Alembic is quoted ('0'); INTEGER affinity stores it as 0.
                "columns": sorted(
                    (c[1], c[2].upper(), c[3], (c[4] or "").strip("'"), c[5])
                    for c in db.execute(f"PRAGMA table_info({name})")
                ),
                "foreign_keys": sorted(tuple(f[2:]) for f in db.execute(f"PRAGMA foreign_key_list({name})")),
                "without_rowid": "WITHOUT ROWID" in sql.upper(),
                "autoincrement": "AUTOINCREMENT" in sql.upper(),
                "unique": sorted(
                    tuple(c[2] for c in db.execute(f"PRAGMA index_info({i[1]})"))
                    for i in db.execute(f"PRAGMA index_list({name})")
                    if i[3] == "u"
                ),
            }
        return out
    finally:
        db.close()


def _replay(path: Path, to: str) -> None:
    """The history from nothing up to ``to`` (Alembic's own run, as a file would take it revision by revision)."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            config = migrations.alembic_config("sqlite")
            config.attributes["connection"] = conn
            command.upgrade(config, to)
    finally:
        engine.dispose()


async def test_replaying_the_history_from_the_baseline_ends_at_the_tables_of_a_new_file(tmp_path: Path) -> None:
    _replay(tmp_path / "replayed.db", upgrade.HEAD)
    # Start-up adds what a release adds without a schema version (indexes, the vector index's bookkeeping): the
    # replayed file, once a store has started on it, is the same as a new file.
    for name in ("replayed.db", "new.db"):
        store = SqliteStore(f"sqlite+aiosqlite:///{tmp_path / name}")
        await store.start()
        await store.close()
    replayed, new = _structure(tmp_path / "replayed.db"), _structure(tmp_path / "new.db")
    assert replayed == new
    assert {"sessions", "checkpoints", "episodes", "episode_terms", "mcp_memory_alembic_version"} <= set(new)


def test_each_backend_has_one_line_of_revisions_and_the_environment_names_both_heads() -> None:
    sqlite_scripts = ScriptDirectory.from_config(migrations.alembic_config("sqlite"))
    assert sqlite_scripts.get_heads() == [upgrade.HEAD] == [f"sqlite_{SCHEMA_VERSION}"]
    assert upgrade.known_revisions() == {f"sqlite_{n}" for n in range(1, SCHEMA_VERSION + 1)}
    postgres_scripts = ScriptDirectory.from_config(migrations.alembic_config("postgres"))
    assert postgres_scripts.get_heads() == [pg_schema.head_revision()]
    assert not any(r.revision.startswith("sqlite") for r in postgres_scripts.walk_revisions())
    both = ScriptDirectory.from_config(migrations.alembic_config("all"))
    assert set(both.get_heads()) == {pg_schema.head_revision(), upgrade.HEAD}
    assert both.get_revision("postgres@head").revision == pg_schema.head_revision()
    assert both.get_revision("sqlite@head").revision == upgrade.HEAD


async def test_a_new_file_is_stamped_at_the_head_as_alembic_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        assert (await store.ping())["schema_version"] == SCHEMA_VERSION
    finally:
        await store.close()
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert upgrade.current_revision(conn) == upgrade.HEAD
    finally:
        engine.dispose()


async def test_a_file_at_a_revision_this_release_does_not_know_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    await store.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE mcp_memory_alembic_version SET version_num = 'sqlite_99'")
        db.execute("CREATE TABLE from_the_future (x)")
    db.close()
    with pytest.raises(Unavailable, match="revision sqlite_99, newer than this mcp-memory understands"):
        await SqliteStore(f"sqlite+aiosqlite:///{path}").start()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version_num FROM mcp_memory_alembic_version").fetchall() == [("sqlite_99",)]
    finally:
        db.close()


def _v1_file_whose_upgrade_fails_halfway(path: Path) -> None:
    """A schema-1 file (the baseline's tables, no version table: written before Alembic) with a checkpoint (its
    items as rows, which ``sqlite_2`` converts) and an episode whose lessons are not JSON (``sqlite_3``, the
    next step, fails on it)."""
    _replay(path, "sqlite_1")
    db = sqlite3.connect(path)
    with db:
        db.execute("DROP TABLE mcp_memory_alembic_version")
        db.execute(
            "INSERT INTO sessions (id, project_id, agent_instance_id, session_id, status, created_at, updated_at) "
            "VALUES (1, 'p', 'a', 's', 'paused', 0, 0)"
        )
        db.execute(
            "INSERT INTO checkpoints (id, session_pk, checkpoint_id, created_at, keys_count, bytes, content_hash) "
            "VALUES (1, 1, 'c1', 0, 1, 1, 'sha256:c1')"
        )
        db.execute("INSERT INTO checkpoint_items VALUES (1, 'k', '1', NULL)")
        db.execute(
            "INSERT INTO episodes (episode_id, project_id, agent_instance_id, task_type, task_description, outcome, "
            "lessons_learned, importance_score, created_at) VALUES (?, 'p', 'a', 't', 'd', 'success', 'not json', "
            "0.5, 0)",
            (str(uuid.uuid4()),),
        )
    db.close()


def _dump(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


async def test_an_upgrade_that_fails_halfway_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _v1_file_whose_upgrade_fails_halfway(path)
    before = _dump(path)
    with pytest.raises(json.JSONDecodeError):  # in sqlite_3, after sqlite_2 converted the checkpoints
        await SqliteStore(f"sqlite+aiosqlite:///{path}").start()
    assert _dump(path) == before  # not stamped, checkpoint_items kept, no state column: wholly schema 1
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    finally:
        db.close()
    # Mended, the same file upgrades (the failure left nothing behind that would stop it).
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE episodes SET lessons_learned = '[]'")
    db.close()
    store = SqliteStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        assert (await store.ping())["schema_version"] == SCHEMA_VERSION
    finally:
        await store.close()


def test_every_folder_of_revisions_is_a_package_so_that_the_wheel_ships_it() -> None:
    """setuptools' package discovery (pyproject: ``packages.find``) takes ``.py`` files from packages only."""
    root = Path(migrations.__file__).parent
    folders = {p.parent for p in root.rglob("*.py")}
    assert folders >= {root / "versions" / "postgres", root / "versions" / "sqlite"}
    assert all((folder / "__init__.py").exists() for folder in folders | {root / "versions"})
