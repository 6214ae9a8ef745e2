"""SQLite schema 3: full-text statistics per project (``text_projects``, postings in ``episode_terms``,
``episodes.text_tokens``) instead of the FTS5 table ``episodes_fts`` that all projects shared.

The existing episodes are indexed by today's indexer (:func:`mcp_memory.stores.sqlite.fulltext.index_episodes`), so
the postings are created in the shape it writes: schema 5's (each posting with its episode's length, and
``text_terms``); ``sqlite_5`` then finds them there and has nothing to do.

Revision ID: sqlite_3
Revises: sqlite_2
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mcp_memory.stores.migrations.sqlite_steps import columns, connection, set_version
from mcp_memory.stores.sqlite.fulltext import create_tokenizer, index_episodes
from mcp_memory.stores.sqlite.schema import EPISODE_TERMS_DDL

revision = "sqlite_3"
down_revision = "sqlite_2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "text_tokens" not in columns("episodes"):
        with op.batch_alter_table("episodes") as batch:
            batch.add_column(sa.Column("text_tokens", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        """CREATE TABLE IF NOT EXISTS text_projects (
        id INTEGER PRIMARY KEY,
        project_id TEXT NOT NULL UNIQUE,
        episodes INTEGER NOT NULL DEFAULT 0,
        tokens INTEGER NOT NULL DEFAULT 0
    )"""
    )
    op.execute(
        """CREATE TABLE IF NOT EXISTS text_terms (
        project_pk INTEGER NOT NULL,
        term TEXT NOT NULL,
        episodes INTEGER NOT NULL,
        PRIMARY KEY (project_pk, term)
    ) WITHOUT ROWID"""
    )
    op.execute(EPISODE_TERMS_DDL.format(name="episode_terms"))
    db = connection()
    create_tokenizer(db)  # (the connection's TEMP tokenizer, if it has none yet)
    index_episodes(db, 0)
    op.execute("DROP TABLE IF EXISTS episodes_fts")
    set_version(3)


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
