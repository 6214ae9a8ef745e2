"""An index for the periodic spawn sweep (``stores/sql/lapsed_spawns.py``): the sessions whose spawn is under way or
was cut off, by the end of their lease.

The sweep lists the incomplete sessions whose lease (``spawn_until``) ended before its cutoff; with no index on
``spawn_until`` every pass read the whole ``sessions`` table, even one that found nothing, as most do. The index is
partial, on the incomplete sessions only (``spawn_until`` is NULL once a spawn has completed): it holds the spawns
under way and those cut off, a handful, not one entry per session. Its predicate is implied by the sweep's
``spawn_until <= $1``; ``id`` after ``spawn_until`` is the listing's order, so a pass sorts nothing.

``CREATE INDEX`` in the migration's transaction, not ``CONCURRENTLY`` (which no transaction may hold): writes of
sessions (spawns, pauses, resumes, terminates) wait while it reads the table, reads do not.

The SQL is frozen here (a copy, not imported from live code): a later change is a new revision.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-10
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX sessions_spawning ON sessions (spawn_until, id) WHERE spawn_until IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX sessions_spawning")
