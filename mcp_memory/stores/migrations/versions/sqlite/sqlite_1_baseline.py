"""SQLite schema 1, the baseline: the tables of the first release (a checkpoint's items as rows of
``checkpoint_items``, one FTS5 table ``episodes_fts`` for every project's episodes).

A file written before Alembic records its version in ``schema_version`` only; start-up stamps it at the revision of
that number (``sqlite_N``) and upgrades it from there. A new file is created with today's tables and stamped at the
head (:mod:`mcp_memory.stores.sqlite.upgrade`); this revision runs only when the whole history is replayed (the test
that the history ends at today's tables does that).

Revision ID: sqlite_1
Revises:
Create Date: 2026-12-09
"""

from __future__ import annotations

from alembic import op

revision = "sqlite_1"
down_revision = None
branch_labels = ("sqlite",)
depends_on = None

SCHEMA_1 = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS sessions (
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
    """CREATE TABLE IF NOT EXISTS working_items (
        session_pk INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at REAL,
        PRIMARY KEY (session_pk, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        session_pk INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        event_type TEXT NOT NULL,
        at REAL NOT NULL,
        duration_ms REAL NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX IF NOT EXISTS working_expiry ON working_items (expires_at) WHERE expires_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS events_session ON events (session_pk, id)",
    """CREATE TABLE IF NOT EXISTS checkpoints (
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
    "CREATE INDEX IF NOT EXISTS checkpoints_session_created ON checkpoints (session_pk, created_at, id)",
    """CREATE TABLE IF NOT EXISTS checkpoint_items (
        checkpoint_pk INTEGER NOT NULL REFERENCES checkpoints(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at REAL,
        PRIMARY KEY (checkpoint_pk, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS episodes (
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
    "CREATE INDEX IF NOT EXISTS episodes_project_created ON episodes (project_id, created_at)",
    "CREATE INDEX IF NOT EXISTS episodes_unembedded ON episodes (created_at, id) WHERE embedding IS NULL",
    """CREATE VIRTUAL TABLE IF NOT EXISTS episodes_fts USING fts5(
        task_type, task_description, outcome_details, lessons, context_summary,
        content='', tokenize='porter unicode61'
    )""",
]
"""Schema 1's DDL, as the first release ran it at every start (frozen here: history, not today's tables)."""


def upgrade() -> None:
    for statement in SCHEMA_1:
        op.execute(statement)
    op.execute("INSERT INTO schema_version (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_version)")


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
