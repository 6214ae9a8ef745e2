"""A checkpoint can be kept from retention pruning (``pause(keep=true)``): ``checkpoints.keep``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: Postgres 11+ adds the column without rewriting the table.
    op.execute("ALTER TABLE checkpoints ADD COLUMN keep boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE checkpoints DROP COLUMN keep")
