"""An index for the periodic age sweep (``stores/postgres/aged_sweep.py``): the events it may delete, by date.

The sweep's candidates are the events dated before the cutoff that are not protected (a successful spawn or
terminate); with no index on ``events.at`` every pass read the whole table, even one that found nothing. The index
is partial, on the unprotected events only: those a pass finds but keeps are then only each session's newest event
(a terminated session's is its terminate, which is not in the index at all), not also every session's spawn and
terminate for ever. Its predicate is the sweep's own condition, as written there, so that the planner proves the
query within it. Checkpoints need nothing: ``checkpoints_newest`` (0001) holds ``created_at`` first.

It is built in the migration's transaction, not ``CONCURRENTLY`` (which cannot run in one): every write of an event,
so every lifecycle call, waits while it builds (about 0.5 s at a million events on a 2-core machine).

The SQL is frozen here (a copy, not imported from live code): a later change is a new revision.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-09
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX events_aged ON events (at) WHERE NOT (event_type IN ('spawn', 'terminate') AND outcome = 'ok')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX events_aged")
