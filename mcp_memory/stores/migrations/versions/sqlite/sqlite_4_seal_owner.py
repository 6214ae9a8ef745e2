"""SQLite schema 4: a seal's owner (the terminate that made it) and lease. A seal made before has neither: any
terminate may take it over.

Revision ID: sqlite_4
Revises: sqlite_3
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mcp_memory.stores.migrations.sqlite_steps import columns, set_version

revision = "sqlite_4"
down_revision = "sqlite_3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = columns("sessions")  # (a file built with the newer table has them)
    with op.batch_alter_table("sessions") as batch:
        for name, kind in (("seal_token", sa.Text()), ("seal_until", sa.REAL())):
            if name not in present:
                batch.add_column(sa.Column(name, kind, nullable=True))
    set_version(4)


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
