"""SQLite schema 7: a checkpoint can be kept from retention pruning (``checkpoints.keep``, set by
``pause(keep=true)``). Checkpoints made before are not kept.

Revision ID: sqlite_7
Revises: sqlite_6
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa

from mcp_memory.stores.migrations.sqlite_steps import add_missing_columns, set_version

revision = "sqlite_7"
down_revision = "sqlite_6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_missing_columns("checkpoints", sa.Column("keep", sa.Integer(), nullable=False, server_default="0"))
    set_version(7)


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
