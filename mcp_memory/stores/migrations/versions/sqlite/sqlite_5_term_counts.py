"""SQLite schema 5: each posting carries its episode's length (``episode_terms.episode_tokens``, so that ranking
reads no episode row but the results') and each project its terms' episode counts (``text_terms``).

``episode_terms`` is rebuilt in batch mode (SQLite cannot add a NOT NULL column without a default to a table with
rows): copied with the new column at 0, which is then set from each posting's episode. The rebuilt table keeps
``DEFAULT 0`` on that column, where a new file's has no default; every insert names the column, so nothing reads
the difference. Nothing to do for postings written in schema 5's shape already (a file of schema 2 converted on
the way, see ``sqlite_3``).

Revision ID: sqlite_5
Revises: sqlite_4
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mcp_memory.stores.migrations.sqlite_steps import columns, set_version

revision = "sqlite_5"
down_revision = "sqlite_4"
branch_labels = None
depends_on = None

EPISODE_TERMS_4 = sa.Table(
    "episode_terms",
    sa.MetaData(),
    sa.Column("project_pk", sa.Integer(), nullable=False, primary_key=True),
    sa.Column("term", sa.Text(), nullable=False, primary_key=True),
    sa.Column("episode_pk", sa.Integer(), nullable=False, primary_key=True),
    sa.Column("freq", sa.REAL(), nullable=False),
    sqlite_with_rowid=False,
)
"""Schema 4's postings (given to batch mode rather than reflected: reflection would lose WITHOUT ROWID)."""


def upgrade() -> None:
    op.execute(
        """CREATE TABLE IF NOT EXISTS text_terms (
        project_pk INTEGER NOT NULL,
        term TEXT NOT NULL,
        episodes INTEGER NOT NULL,
        PRIMARY KEY (project_pk, term)
    ) WITHOUT ROWID"""
    )
    if "episode_tokens" not in columns("episode_terms"):
        with op.batch_alter_table("episode_terms", copy_from=EPISODE_TERMS_4, recreate="always") as batch:
            batch.add_column(sa.Column("episode_tokens", sa.Integer(), nullable=False, server_default="0"))
        op.execute(
            "UPDATE episode_terms SET episode_tokens = (SELECT e.text_tokens FROM episodes e WHERE e.id = episode_pk)"
        )
        op.execute(
            "INSERT INTO text_terms (project_pk, term, episodes) "
            "SELECT project_pk, term, COUNT(*) FROM episode_terms GROUP BY project_pk, term"
        )
    set_version(5)


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
