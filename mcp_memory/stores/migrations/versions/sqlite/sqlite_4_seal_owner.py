"""SQLite schema 4: a seal's owner (the terminate that made it) and lease. A seal made before has neither: any
terminate may take it over.

Revision ID: sqlite_4
Revises: sqlite_3
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa

from mcp_memory.stores.migrations.sqlite_steps import add_missing_columns, set_version

revision = "sqlite_4"
down_revision = "sqlite_3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_missing_columns(
        "sessions", sa.Column("seal_token", sa.Text(), nullable=True), sa.Column("seal_until", sa.REAL(), nullable=True)
    )
    set_version(4)


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
