"""SQLite schema 8: a checkpoint names the Redis snapshot it was made from (``checkpoints.snapshot``, the pause's
nonce), so that a resume takes the pause's copy in Redis only if the copy carries that nonce
(``stores/redis/copies.py``). Checkpoints made before name none: their resumes restore the stored text.

Revision ID: sqlite_8
Revises: sqlite_7
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa

from mcp_memory.stores.migrations.sqlite_steps import add_missing_columns, set_version

revision = "sqlite_8"
down_revision = "sqlite_7"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_missing_columns("checkpoints", sa.Column("snapshot", sa.Text(), nullable=True))
    set_version(8)


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
