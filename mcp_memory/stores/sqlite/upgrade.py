"""Start-up's schema step for the SQLite file: Alembic's ``sqlite`` history (:mod:`mcp_memory.stores.migrations`),
run automatically, in one write transaction, so a file is either wholly upgraded or left untouched.

- A new file gets today's tables (:data:`~mcp_memory.stores.sqlite.schema.SCHEMA`) and is stamped at the head:
  creating today's schema directly is faster than replaying every revision, and a test checks that replaying the
  history from the baseline ends at the same tables.
- A file written before Alembic (no version table; its ``schema_version`` row says N) is stamped at ``sqlite_N``
  and upgraded to the head.
- A file at an older revision is upgraded; one at a revision this release does not know (a newer release wrote
  it), or with a ``schema_version`` newer than any it knows, is refused with ``Unavailable``.

It runs on a plain synchronous engine of its own, on a worker thread, before the store's async engine opens:
Alembic speaks synchronous SQLAlchemy, and the revisions' Python steps need the ``sqlite3`` connection on the
thread that runs them.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from mcp_memory.errors import Unavailable
from mcp_memory.stores import migrations
from mcp_memory.stores.sqlite.fulltext import create_tokenizer
from mcp_memory.stores.sqlite.schema import SCHEMA, SCHEMA_VERSION

logger = logging.getLogger(__name__)


def revision_of(version: int) -> str:
    """The Alembic revision of the SQLite schema version ``version``."""
    return f"sqlite_{version}"


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(migrations.alembic_config("sqlite"))


def head_revision() -> str:
    """The newest SQLite revision this release knows."""
    head = _scripts().get_current_head()
    assert head is not None
    return head


def known_revisions() -> frozenset[str]:
    """Every SQLite revision this release ships."""
    return frozenset(script.revision for script in _scripts().walk_revisions())


def current_revision(conn: Connection) -> str | None:
    """The file's Alembic revision (None: not stamped, a new file or one written before Alembic)."""
    return MigrationContext.configure(conn, opts={"version_table": migrations.VERSION_TABLE}).get_current_revision()


def _legacy_version(conn: Connection) -> int | None:
    """The ``schema_version`` row of a file written before Alembic (None: a new file)."""
    exists = conn.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"))
    if exists.first() is None:
        return None
    row = conn.execute(text("SELECT version FROM schema_version")).first()
    return None if row is None else int(row[0])


def _config(conn: Connection) -> Config:
    config = migrations.alembic_config("sqlite")
    config.attributes["connection"] = conn
    return config


def _newer(path: str, what: str) -> Unavailable:
    return Unavailable(
        f"the database {path} has {what}, newer than this mcp-memory understands ({head_revision()}, schema "
        f"version {SCHEMA_VERSION}); upgrade mcp-memory"
    )


def bring_to_head(conn: Connection, path: str) -> str | None:
    """Bring the file open as ``conn`` (in a write transaction) to the head revision; the revision it was at
    (``"new"`` for a new file, ``"schema N"`` for a file written before Alembic, None if it was at the head)."""
    head = head_revision()
    revision = current_revision(conn)
    if revision == head:
        return None
    if revision is None:
        version = _legacy_version(conn)
        if version is None:
            for statement in SCHEMA:
                conn.exec_driver_sql(statement)
            conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": SCHEMA_VERSION})
            command.stamp(_config(conn), head)
            return "new"
        if revision_of(version) not in known_revisions():
            raise _newer(path, f"schema version {version}")
        command.stamp(_config(conn), revision_of(version))
        command.upgrade(_config(conn), head)
        return f"schema {version}"
    if revision not in known_revisions():
        raise _newer(path, f"schema revision {revision}")
    command.upgrade(_config(conn), head)
    return revision


def prepare(path: str) -> None:
    """Start-up's step (blocking; run it on a worker thread): the file at ``path`` at the head revision, in one
    ``BEGIN IMMEDIATE`` transaction (another process starting on the same file waits for it)."""
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=30000"):
            dbapi_conn.execute(pragma)
        create_tokenizer(dbapi_conn)  # the revisions that index episodes tokenize with it

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.begin() as conn:
            was = bring_to_head(conn, path)
    finally:
        engine.dispose()
    if was is not None and was != "new":
        logger.info("upgraded the SQLite store %s from %s to %s", path, was, head_revision())


__all__ = ["bring_to_head", "current_revision", "head_revision", "known_revisions", "prepare", "revision_of"]
