"""The SQLite store's own (pre-Alembic) schema migrations, versions 1 to :data:`SCHEMA_VERSION`.

Entry points: :func:`prepare` (what start-up runs: create today's tables in a new file, refuse a newer file,
upgrade an older one) and :func:`migrate` (upgrade a file of ``version`` to today's). Both run on a plain
``sqlite3`` connection inside the caller's one write transaction, so a file is either wholly converted or left
untouched. Today's DDL is :data:`mcp_memory.stores.sqlite.schema.SCHEMA`.
"""

from __future__ import annotations

import logging
import sqlite3

from mcp_memory.errors import Unavailable
from mcp_memory.models import Item
from mcp_memory.stores.sqlite.fulltext import index_episodes
from mcp_memory.stores.sqlite.schema import EPISODE_TERMS_DDL, SCHEMA, SCHEMA_VERSION, encode_state

logger = logging.getLogger(__name__)


def prepare(db: sqlite3.Connection, path: str) -> None:
    """Bring the file at ``path`` (open as ``db``, in a write transaction) to today's schema: its tables created
    if it is new, its version recorded; ``Unavailable`` if a newer mcp-memory wrote it; migrated if it is older."""
    for statement in SCHEMA:
        db.execute(statement)
    row = db.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    elif row[0] > SCHEMA_VERSION:
        raise Unavailable(
            f"the database {path} has schema version {row[0]}, newer than this "
            f"mcp-memory understands ({SCHEMA_VERSION}); upgrade mcp-memory"
        )
    elif row[0] < SCHEMA_VERSION:
        migrate(db, row[0])
        logger.info("migrated the SQLite store %s to schema version %d", path, SCHEMA_VERSION)


def migrate(db: sqlite3.Connection, version: int) -> int:
    """Bring a file of an older schema ``version`` up to :data:`SCHEMA_VERSION` (inside the caller's transaction,
    today's tables created already by :func:`prepare`); the version reached."""
    if version == 1:
        _migrate_1_to_2(db)
        version = 2
    if version == 2:
        _migrate_2_to_3(db)
        version = 3
    if version == 3:
        _migrate_3_to_4(db)
        version = 4
    if version == 4:
        _migrate_4_to_5(db)
        version = 5
    if version == 5:
        _migrate_5_to_6(db)
        version = 6
    if version == 6:
        _migrate_6_to_7(db)
        version = 7
    db.execute("UPDATE schema_version SET version = ?", (version,))
    return version


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: each checkpoint's ``checkpoint_items`` rows become its ``state`` column, then the table
    goes."""
    db.execute("ALTER TABLE checkpoints ADD COLUMN state TEXT NOT NULL DEFAULT '{}'")
    checkpoint_pks = [pk for (pk,) in db.execute("SELECT id FROM checkpoints ORDER BY id").fetchall()]
    for pk in checkpoint_pks:
        rows = db.execute(
            "SELECT key, value, expires_at FROM checkpoint_items WHERE checkpoint_pk = ? ORDER BY key", (pk,)
        ).fetchall()
        items = {key: Item(value, expires_at) for key, value, expires_at in rows}
        if items:
            db.execute("UPDATE checkpoints SET state = ? WHERE id = ?", (encode_state(items), pk))
    db.execute("DROP TABLE checkpoint_items")


def _migrate_3_to_4(db: sqlite3.Connection) -> None:
    """Schema 3 -> 4: a seal's owner (the terminate that made it) and lease. A seal made before has neither: any
    terminate may take it over."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(sessions)")}
    for column, kind in (("seal_token", "TEXT"), ("seal_until", "REAL")):
        if column not in columns:  # (a file built with the newer table has them)
            db.execute(f"ALTER TABLE sessions ADD COLUMN {column} {kind}")


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """Schema 2 -> 3: postings and per-project statistics for the existing episodes (:func:`index_episodes`, in
    schema 5's tables: :func:`_migrate_4_to_5` then has nothing to do), then the shared ``episodes_fts`` goes."""
    if "text_tokens" not in {r[1] for r in db.execute("PRAGMA table_info(episodes)")}:
        db.execute("ALTER TABLE episodes ADD COLUMN text_tokens INTEGER NOT NULL DEFAULT 0")
    index_episodes(db, 0)
    db.execute("DROP TABLE IF EXISTS episodes_fts")


def _migrate_4_to_5(db: sqlite3.Connection) -> None:
    """Schema 4 -> 5: each posting gets its episode's length (the table is rebuilt with the new column) and each
    project its terms' episode counts, from the postings. In the start-up transaction, as the others. Nothing to do
    for postings written in schema 5's table (a file of schema 2 converted on the way)."""
    if "episode_tokens" in {r[1] for r in db.execute("PRAGMA table_info(episode_terms)")}:
        return
    db.execute(EPISODE_TERMS_DDL.format(name="episode_terms_5"))
    db.execute(
        "INSERT INTO episode_terms_5 (project_pk, term, episode_pk, freq, episode_tokens) "
        "SELECT t.project_pk, t.term, t.episode_pk, t.freq, e.text_tokens FROM episode_terms t "
        "JOIN episodes e ON e.id = t.episode_pk ORDER BY t.project_pk, t.term, t.episode_pk"
    )
    db.execute("DROP TABLE episode_terms")
    db.execute("ALTER TABLE episode_terms_5 RENAME TO episode_terms")
    db.execute(
        "INSERT INTO text_terms (project_pk, term, episodes) "
        "SELECT project_pk, term, COUNT(*) FROM episode_terms GROUP BY project_pk, term"
    )


def _migrate_5_to_6(db: sqlite3.Connection) -> None:
    """Schema 5 -> 6: a two-step spawn's token and lease. A session made before has neither: it is complete."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(sessions)")}
    for column, kind in (("spawn_token", "TEXT"), ("spawn_until", "REAL")):
        if column not in columns:  # (a file built with the newer table has them)
            db.execute(f"ALTER TABLE sessions ADD COLUMN {column} {kind}")


def _migrate_6_to_7(db: sqlite3.Connection) -> None:
    """Schema 6 -> 7: a checkpoint can be kept from retention pruning. Those made before are not kept."""
    if "keep" not in {r[1] for r in db.execute("PRAGMA table_info(checkpoints)")}:
        db.execute("ALTER TABLE checkpoints ADD COLUMN keep INTEGER NOT NULL DEFAULT 0")
