"""The record of a pause whose working memory is elsewhere (Redis): ``mcpmem_record_pause``, called as one
``SELECT`` (one message, its own transaction in autocommit), as ``mcpmem_pause`` of revision 0008 is for a pause of
working memory in Postgres.

Why a function and not one data-modifying statement: the pause prunes by retention after it has locked the session's
row, and the prune must see every checkpoint committed before that lock was granted (two concurrent pauses of one
session never leave more than the policy allows). One statement reads one snapshot, taken before its lock wait, and
does not see its own insert; a function's statements each take a fresh snapshot (READ COMMITTED, VOLATILE), as the
two statements of the transaction it replaces did. The resume's record and the checkpoint's read are one statement
each already, so they need no function.

The settings are 0008's and for the same reasons (``plan_cache_mode = auto``: plans that do not change from call to
call; ``enable_bitmapscan = off``: retention reads one session's rows newest first along an index). The SQL is frozen
here (a copy, not imported from live code): a later change of the function is a new revision.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

RECORD_PAUSE = r"""
CREATE FUNCTION mcpmem_record_pause(
    p_project uuid, p_agent uuid, p_session text, p_checkpoint text, p_created timestamptz, p_keys integer,
    p_bytes bigint, p_label text, p_hash text, p_metadata jsonb, p_state jsonb, p_state_bytes bigint,
    p_keep boolean, p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text,
    p_ev_detail jsonb, p_keep_last integer, p_cutoff timestamptz, p_events_keep_last integer,
    p_events_cutoff timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto SET enable_bitmapscan = off
AS $fn$
DECLARE
    pk bigint;
    gone bigint[];
BEGIN
    -- The session's row locked, if it takes writes (a concurrent seal or status change is waited for and its
    -- result checked again): the retention below sees every pause committed before.
    SELECT id INTO pk FROM sessions
    WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
      AND NOT sealed AND status <> 'terminated' AND spawn_until IS NULL
    FOR NO KEY UPDATE;
    IF pk IS NULL THEN
        RETURN false;  -- missing or not writable: the caller asks why
    END IF;
    INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, label, content_hash,
                             metadata, state, state_bytes, keep)
    VALUES (pk, p_checkpoint, p_created, p_keys, p_bytes, p_label, p_hash, p_metadata, p_state, p_state_bytes,
            p_keep)
    ON CONFLICT (session_pk, checkpoint_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;  -- the checkpoint id is taken: nothing written
    END IF;
    UPDATE sessions SET status = 'paused', updated_at = p_ev_at WHERE id = pk;
    INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail)
    VALUES (pk, p_ev_type, p_ev_at, p_ev_ms, p_ev_outcome, p_ev_detail);
    -- Checkpoint retention (the new one included; it may go itself if it is not the newest): never a kept one
    -- nor the newest; beyond the newest p_keep_last not kept, or older than p_cutoff (NULL: no bound). The ids
    -- to go are found along the index on (session_pk, created_at DESC, id DESC) and deleted by primary key, and
    -- no DELETE runs while nothing is beyond the bounds.
    IF p_keep_last IS NOT NULL OR p_cutoff IS NOT NULL THEN
        SELECT array_agg(id) INTO gone FROM (
            SELECT id FROM checkpoints WHERE session_pk = pk AND NOT keep
            ORDER BY created_at DESC, id DESC OFFSET p_keep_last
        ) AS beyond
        WHERE p_keep_last IS NOT NULL;
        IF p_cutoff IS NOT NULL THEN
            gone := gone || ARRAY(
                SELECT id FROM checkpoints WHERE session_pk = pk AND NOT keep AND created_at < p_cutoff);
        END IF;
        IF gone <> '{}' THEN
            DELETE FROM checkpoints
            WHERE id = ANY (gone)
              AND id <> (SELECT id FROM checkpoints WHERE session_pk = pk ORDER BY created_at DESC, id DESC LIMIT 1);
        END IF;
    END IF;
    -- Event retention (the new event counted): never a spawn or terminate that succeeded, nor the newest; beyond
    -- the newest p_events_keep_last, or older than p_events_cutoff.
    IF p_events_keep_last IS NOT NULL OR p_events_cutoff IS NOT NULL THEN
        SELECT array_agg(id) INTO gone FROM (
            SELECT id FROM events WHERE session_pk = pk ORDER BY id DESC OFFSET p_events_keep_last
        ) AS beyond
        WHERE p_events_keep_last IS NOT NULL;
        IF p_events_cutoff IS NOT NULL THEN
            gone := gone || ARRAY(SELECT id FROM events WHERE session_pk = pk AND at < p_events_cutoff);
        END IF;
        IF gone <> '{}' THEN
            DELETE FROM events
            WHERE id = ANY (gone) AND NOT (event_type IN ('spawn', 'terminate') AND outcome = 'ok')
              AND id <> (SELECT max(id) FROM events WHERE session_pk = pk);
        END IF;
    END IF;
    RETURN true;
END
$fn$
"""

SIGNATURE = (
    "mcpmem_record_pause(uuid, uuid, text, text, timestamptz, integer, bigint, text, text, jsonb, jsonb, bigint, "
    "boolean, text, timestamptz, double precision, text, jsonb, integer, timestamptz, integer, timestamptz)"
)


def upgrade() -> None:
    op.execute(RECORD_PAUSE)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
