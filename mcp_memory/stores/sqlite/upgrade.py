"""Start-up's schema step for the SQLite file: Alembic's ``sqlite`` history (:mod:`mcp_memory.stores.migrations`),
run automatically, in one write transaction, so a file is either wholly upgraded or left untouched.

- A file at the head (every start but the first after an upgrade of mcp-memory) is checked with one query, without
  loading Alembic (importing it costs 0.1-0.3 s).
- A new file (or an empty one: no table, index or trigger) gets today's tables
  (:data:`~mcp_memory.stores.sqlite.schema.SCHEMA`) and is stamped at the head
  (Alembic's version table, written here for the same reason): faster than replaying every revision, and a test
  checks that replaying the history from the baseline ends at the same tables.
- A file written before Alembic (no version table; its ``schema_version`` row says N) is stamped at ``sqlite_N``
  and upgraded to the head by Alembic.
- A file at an older revision is upgraded; one at a revision this release does not know (a newer release wrote
  it), or with a ``schema_version`` newer than any it knows, is refused with ``Unavailable``; so is a file with
  tables but neither (another application's database, at a mistyped path: nothing is written into it).

It runs on a plain connection of its own, on a worker thread, before the store's async engine opens: Alembic speaks
synchronous SQLAlchemy, and the revisions' Python steps need the ``sqlite3`` connection on the thread that runs
them. Each path holds ``BEGIN IMMEDIATE`` from its first read to its commit: another process starting on the same
file waits, then finds the file at the head.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from mcp_memory.errors import Unavailable
from mcp_memory.stores.migrations import VERSION_TABLE
from mcp_memory.stores.sqlite.schema import SCHEMA, SCHEMA_VERSION

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)


def revision_of(version: int) -> str:
    """The Alembic revision of the SQLite schema version ``version``."""
    return f"sqlite_{version}"


HEAD = revision_of(SCHEMA_VERSION)
"""The newest SQLite revision this release knows (a test checks that it is the history's head)."""

_VERSION_TABLE_DDL = (
    f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
    f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
)
"""Alembic's version table, as Alembic creates it (a test checks that Alembic reads a file stamped here)."""

_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=30000")


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _state(db: sqlite3.Connection) -> tuple[str | None, int | None]:
    """The file's Alembic revision and its ``schema_version`` row (None, None: an empty file, or not mcp-memory's)."""
    revision = None
    if _has_table(db, VERSION_TABLE):
        row = db.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        revision = None if row is None else str(row[0])
    version = None
    if _has_table(db, "schema_version"):
        row = db.execute("SELECT version FROM schema_version").fetchone()
        version = None if row is None else int(row[0])
    return revision, version


_SCHEMA_OBJECT = re.compile(r"\s*CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|TRIGGER)\s+IF NOT EXISTS\s+(\w+)")
_SCHEMA_NAMES = frozenset(m.group(1) for m in map(_SCHEMA_OBJECT.match, SCHEMA) if m is not None)
"""Every table, index and trigger that :data:`SCHEMA` creates."""


def _current(db: sqlite3.Connection, revision: str | None) -> bool:
    """Whether the file, at ``revision`` (its :func:`_state`), is at the head and holds every object of today's
    schema: read without the write lock, so that a server starts on a current file while another process writes (an
    import can hold the lock a while)."""
    if revision != HEAD:
        return False
    present = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master")}
    return _SCHEMA_NAMES <= present


FileKind = Literal["missing", "empty", "foreign", "newer", "older", "incomplete", "current"]
"""What a start would do with a file: create it (``missing``, ``empty``), refuse it (``foreign``: another
application's database; ``newer``: written by a newer release), upgrade it (``older``), add the objects of today's
schema it lacks (``incomplete``), or nothing (``current``)."""


@dataclass(frozen=True, slots=True)
class FileState:
    """What a SQLite store's file holds, read without changing it (``doctor``, ``export``, ``forget --dry-run``)."""

    kind: FileKind
    schema_version: int | None = None
    revision: str | None = None
    refusal: str | None = None
    """``foreign`` and ``newer``: the sentence a start refuses the file with."""

    @property
    def exists(self) -> bool:
        return self.kind != "missing"

    @property
    def current(self) -> bool:
        """At this release's head, every object of today's schema there: a start changes nothing."""
        return self.kind == "current"


def file_state(path: str) -> FileState:
    """The file at ``path`` as it is: opened read-only (no file or directory created, nothing upgraded).
    ``Unavailable`` if it cannot be read as SQLite (not a database, damaged, unreadable), as a start says it."""
    file = Path(path).expanduser()
    if not file.is_file():
        return FileState("missing")
    try:
        db = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            return _classify(db, path)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise unreadable(path, exc) from exc


def _classify(db: sqlite3.Connection, path: str) -> FileState:
    revision, version = _state(db)
    if revision is None and version is None:
        if _empty(db):
            return FileState("empty")
        return FileState("foreign", refusal=_foreign(path).message)
    if _current(db, revision):
        return FileState("current", version, revision)
    if revision == HEAD:
        return FileState("incomplete", version, revision)
    known = known_revisions()  # (loads Alembic: only for a file a start would change or refuse)
    if revision is None and version is not None and revision_of(version) not in known:
        return FileState("newer", version, revision, _newer(path, f"schema version {version}").message)
    if revision is not None and revision not in known:
        return FileState("newer", version, revision, _newer(path, f"schema revision {revision}").message)
    return FileState("older", version, revision)


def _empty(db: sqlite3.Connection) -> bool:
    """No table, index, view or trigger: a file a start may create the schema in (``touch``ed, or new)."""
    return db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None


def unreadable(path: str, exc: Exception) -> Unavailable:
    """A file that cannot be opened or read as SQLite (a directory, not a database, damaged) as one sentence."""
    reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return Unavailable(f"cannot open the SQLite file {path}: {reason}")


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite database URL (None: not SQLite, or in memory)."""
    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("sqlite") or not parsed.database:
        return None
    database: str = parsed.database
    return None if database == ":memory:" or database.startswith("file::memory:") else database


def _create(db: sqlite3.Connection) -> None:
    """A new file: today's tables, stamped at the head."""
    for statement in SCHEMA:
        db.execute(statement)
    db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    db.execute(_VERSION_TABLE_DDL)
    db.execute(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (?)", (HEAD,))


def prepare(path: str) -> None:
    """Start-up's step (blocking; run it on a worker thread): the file at ``path`` at the head revision."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        # Another application's database (a mistyped path) is refused before the pragmas: WAL mode would be a
        # change to its file. Checked again under the write lock, where an empty file gets the schema.
        revision, version = _state(db)
        _refuse_foreign(db, path, revision, version)
        for pragma in _PRAGMAS:
            db.execute(pragma)
        if _current(db, revision):
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            revision, version = _state(db)
            _refuse_foreign(db, path, revision, version)
            if revision is None and version is None:
                _create(db)
            if revision == HEAD or (revision is None and version is None):
                _ensure(db)
                db.execute("COMMIT")
                return
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
    finally:
        db.close()
    was = _upgrade(path)
    if was is not None:
        logger.info("upgraded the SQLite store %s from %s to %s", path, was, HEAD)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        _ensure(db)
        db.execute("COMMIT")
    finally:
        db.close()


def _refuse_foreign(db: sqlite3.Connection, path: str, revision: str | None, version: int | None) -> None:
    """``_foreign`` for a file at that state (:func:`_state`) that has objects but no mcp-memory version."""
    if (revision, version) == (None, None) and not _empty(db):
        raise _foreign(path)


def _ensure(db: sqlite3.Connection) -> None:
    """Today's tables, indexes and triggers that the file lacks (every statement is ``IF NOT EXISTS``): what a
    release adds without a schema version (an index, the vector index's bookkeeping) reaches every file at start."""
    for statement in SCHEMA:
        db.execute(statement)


def known_revisions() -> frozenset[str]:
    """Every SQLite revision this release ships (loads Alembic)."""
    from alembic.script import ScriptDirectory

    from mcp_memory.stores import migrations

    scripts = ScriptDirectory.from_config(migrations.alembic_config("sqlite"))
    return frozenset(script.revision for script in scripts.walk_revisions())


def current_revision(conn: Connection) -> str | None:
    """The file's Alembic revision, as Alembic reads it (None: not stamped)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _config(conn: Connection) -> Config:
    from mcp_memory.stores import migrations

    config = migrations.alembic_config("sqlite")
    config.attributes["connection"] = conn
    return config


def _newer(path: str, what: str) -> Unavailable:
    return Unavailable(
        f"the database {path} has {what}, newer than this mcp-memory understands (schema version "
        f"{SCHEMA_VERSION}, revision {HEAD}); upgrade mcp-memory"
    )


def _foreign(path: str) -> Unavailable:
    return Unavailable(
        f"the database {path} has tables but no mcp-memory schema version; it was not written by mcp-memory "
        "(check MCP_MEMORY_DATABASE_URL)"
    )


def bring_to_head(conn: Connection, path: str) -> str | None:
    """Upgrade the file open as ``conn`` (in its write transaction) to the head with Alembic; what it was at
    (``"schema N"`` for a file written before Alembic, its revision otherwise; None if it was at the head)."""
    from alembic import command

    revision = current_revision(conn)
    if revision == HEAD:
        return None
    if revision is None:
        row = conn.exec_driver_sql("SELECT version FROM schema_version").first() if _legacy(conn) else None
        if row is None:  # (a new file is created by prepare, before Alembic is loaded)
            raise _foreign(path)
        version = int(row[0])
        if revision_of(version) not in known_revisions():
            raise _newer(path, f"schema version {version}")
        command.stamp(_config(conn), revision_of(version))
        command.upgrade(_config(conn), HEAD)
        return f"schema {version}"
    if revision not in known_revisions():
        raise _newer(path, f"schema revision {revision}")
    command.upgrade(_config(conn), HEAD)
    return revision


def _legacy(conn: Connection) -> bool:
    found = conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    return found.first() is not None


def _upgrade(path: str) -> str | None:
    """:func:`bring_to_head` in one ``BEGIN IMMEDIATE`` transaction on a synchronous engine of its own."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        for pragma in _PRAGMAS:
            dbapi_conn.execute(pragma)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.begin() as conn:
            return bring_to_head(conn, path)
    finally:
        engine.dispose()


__all__ = [
    "HEAD",
    "FileKind",
    "FileState",
    "bring_to_head",
    "current_revision",
    "file_state",
    "known_revisions",
    "prepare",
    "revision_of",
    "sqlite_file",
    "unreadable",
]
