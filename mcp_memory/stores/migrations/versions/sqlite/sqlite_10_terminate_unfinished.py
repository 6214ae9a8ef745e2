"""SQLite schema 10: a terminated session says whether its terminate finished its job after the record
(``sessions.terminate_unfinished``: true from ``record_terminate`` under a seal's token until that terminate has marked
working memory terminated, cleared it if asked, and run its hooks), with a partial index of the unfinished rows for the
sweep that finishes what a crash cut off (``services/terminate_sweep.py``). A session terminated before is finished.

Revision ID: sqlite_10
Revises: sqlite_9
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op

from mcp_memory.stores.migrations.sqlite_steps import columns, set_version

revision = "sqlite_10"
down_revision = "sqlite_9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ALTER TABLE (SQLite adds a NOT NULL column with a constant default in place): Alembic's batch mode would
    # copy ``sessions`` into a new table, which the rows referring to it forbid.
    if "terminate_unfinished" not in columns("sessions"):
        op.execute("ALTER TABLE sessions ADD COLUMN terminate_unfinished INTEGER NOT NULL DEFAULT 0")
    op.execute("CREATE INDEX IF NOT EXISTS sessions_unfinished_terminates ON sessions (id) WHERE terminate_unfinished")
    set_version(10)


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
