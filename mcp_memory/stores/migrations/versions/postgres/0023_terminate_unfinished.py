"""A terminated session says whether its terminate finished its job after the record: ``sessions.terminate_unfinished``
(true from ``record_terminate`` under a seal's token until that terminate has marked working memory terminated,
cleared it if asked, and run its hooks), with a partial index of the unfinished rows for the sweep that finishes
what a crash cut off (``services/terminate_sweep.py``).

Before, a retried terminate told an unfinished one only by what its clear found left, so a retry within the lease of a
terminate whose server died cleared working memory and answered as a repeat, and the hooks never ran. A session
terminated before this revision is finished (the default); so is one a server of the previous release records during
an upgrade. A constant default: no rewrite of ``sessions``.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE sessions ADD COLUMN terminate_unfinished boolean NOT NULL DEFAULT false")
    op.execute("CREATE INDEX sessions_unfinished_terminates ON sessions (id) WHERE terminate_unfinished")


def downgrade() -> None:
    op.execute("DROP INDEX sessions_unfinished_terminates")
    op.execute("ALTER TABLE sessions DROP COLUMN terminate_unfinished")
