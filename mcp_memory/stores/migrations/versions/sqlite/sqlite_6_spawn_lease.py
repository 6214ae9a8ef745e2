"""SQLite schema 6: a two-step spawn's token and lease (``sessions.spawn_token``, ``sessions.spawn_until``: the
session exists once its spawn has completed). A session made before has neither: it is complete.

Also the indexes of ``list_sessions`` (newest activity first, per project or per agent), which schema 5's releases
created at start-up without a version bump: a file of schema 5 may lack them.

Revision ID: sqlite_6
Revises: sqlite_5
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mcp_memory.stores.migrations.sqlite_steps import add_missing_columns, set_version

revision = "sqlite_6"
down_revision = "sqlite_5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_missing_columns(
        "sessions",
        sa.Column("spawn_token", sa.Text(), nullable=True),
        sa.Column("spawn_until", sa.REAL(), nullable=True),
    )
    op.execute("CREATE INDEX IF NOT EXISTS sessions_project_activity ON sessions (project_id, updated_at, id)")
    op.execute(
        "CREATE INDEX IF NOT EXISTS sessions_agent_activity ON sessions (project_id, agent_instance_id, updated_at, id)"
    )
    set_version(6)


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
