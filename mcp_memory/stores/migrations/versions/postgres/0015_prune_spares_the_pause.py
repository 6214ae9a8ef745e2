"""Retention never prunes the checkpoint its own pause has just written: ``mcpmem_prune_checkpoints`` also spares the
session's checkpoint of the highest ``id``.

Revision 0011's prune spared only the session's newest checkpoint by ``created_at``. A session can hold a checkpoint
dated after a new pause's: one imported from a machine whose clock runs ahead (imports keep checkpoints as they are),
or one written before the clock stepped back. With the bound reached, that pause's checkpoint was then the oldest
left and was deleted by its own transaction, which still answered with its id: the state just paused was lost.

The prune runs only inside a pause, right after its insert and under the session's row lock, so the session's
highest ``id`` (an identity column: ids only grow) is that pause's checkpoint. In that rare case the session holds
one checkpoint more than the bound until a later pause. The function keeps its signature, so the pause functions
that call it (0011, 0013) need no change. The SQL is frozen here; the downgrade restores 0011's body.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

PRUNE_CHECKPOINTS = r"""
CREATE OR REPLACE FUNCTION mcpmem_prune_checkpoints(
    p_pk bigint, p_unkept integer, p_keep_last integer, p_cutoff timestamptz)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    n integer := p_unkept;
    gone integer;
BEGIN
    -- The session's row is locked by the caller, a pause that has just inserted its checkpoint, and p_unkept is its
    -- count of checkpoints not kept (that one included). Beyond p_keep_last: the oldest (count - bound) not kept,
    -- along the index on (session_pk, created_at DESC, id DESC) read backwards; older than p_cutoff: along the same
    -- index. Never the session's newest, nor the pause's own (the highest id). Returns the count left.
    IF p_keep_last IS NOT NULL AND n > p_keep_last THEN
        DELETE FROM checkpoints
        WHERE id = ANY (ARRAY(
                SELECT id FROM checkpoints WHERE session_pk = p_pk AND NOT keep
                ORDER BY created_at, id LIMIT n - p_keep_last))
          AND id <> (SELECT id FROM checkpoints WHERE session_pk = p_pk ORDER BY created_at DESC, id DESC LIMIT 1)
          AND id <> (SELECT max(id) FROM checkpoints WHERE session_pk = p_pk);
        GET DIAGNOSTICS gone = ROW_COUNT;
        n := n - gone;
    END IF;
    IF p_cutoff IS NOT NULL THEN
        DELETE FROM checkpoints
        WHERE session_pk = p_pk AND NOT keep AND created_at < p_cutoff
          AND id <> (SELECT id FROM checkpoints WHERE session_pk = p_pk ORDER BY created_at DESC, id DESC LIMIT 1)
          AND id <> (SELECT max(id) FROM checkpoints WHERE session_pk = p_pk);
        GET DIAGNOSTICS gone = ROW_COUNT;
        n := n - gone;
    END IF;
    RETURN n;
END
$fn$
"""


def upgrade() -> None:
    op.execute(PRUNE_CHECKPOINTS)


def downgrade() -> None:
    counts = importlib.import_module("mcp_memory.stores.migrations.versions.postgres.0011_retention_counts")
    op.execute(counts.PRUNE_CHECKPOINTS.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
