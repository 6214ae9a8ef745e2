"""SQLite schema 9: a session keeps the order of its last ordered transition recorded (``sessions.status_order``).

With working memory in Redis, a pause is a snapshot then a durable record and a resume a restore then a durable
record; across servers the records can land in another order than the Redis steps. The Redis steps give each
transition its order (``stores/redis/copies.py``), the records carry it, and a record older than the session's last
ordered one keeps its checkpoint and event without setting the status back. Sessions recorded before have none: their
next ordered record sets the status, as before.

Revision ID: sqlite_9
Revises: sqlite_8
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa

from mcp_memory.stores.migrations.sqlite_steps import add_missing_columns, set_version

revision = "sqlite_9"
down_revision = "sqlite_8"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_missing_columns("sessions", sa.Column("status_order", sa.Integer(), nullable=True))
    set_version(9)


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
