"""A checkpoint names the Redis snapshot it was made from: ``checkpoints.snapshot``, the pause's nonce, written by
``mcpmem_record_pause`` with one argument more (``p_snapshot``).

A pause whose snapshot left a copy of the state in Redis (``stores/redis/copies.py``) records that snapshot's nonce
with the checkpoint, in the same statement. A resume takes the copy only if the copy carries the nonce its
checkpoint names. This replaces a second Redis call per pause, which bound the copy to the checkpoint once the
durable write had succeeded. A checkpoint written before names none, and its resume restores the stored text.

The 22-argument ``mcpmem_record_pause`` of revision 0011 stays, so a server of the previous release keeps working
during an upgrade; the new one is an overload. The SQL is frozen here (a copy of 0011's body with the column added).
The downgrade drops the overload and the column.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

RECORD_PAUSE = r"""CREATE FUNCTION mcpmem_record_pause(
    p_project uuid, p_agent uuid, p_session text, p_checkpoint text, p_created timestamptz, p_keys integer,
    p_bytes bigint, p_label text, p_hash text, p_metadata jsonb, p_state jsonb, p_state_bytes bigint,
    p_keep boolean, p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text,
    p_ev_detail jsonb, p_keep_last integer, p_cutoff timestamptz, p_events_keep_last integer,
    p_events_cutoff timestamptz, p_snapshot text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto SET enable_bitmapscan = off
AS $fn$
DECLARE
    pk bigint;
    n_unkept integer;
    n_events integer;
BEGIN
    SELECT id, unkept_checkpoints, event_count INTO pk, n_unkept, n_events FROM sessions
    WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
      AND NOT sealed AND status <> 'terminated' AND spawn_until IS NULL
    FOR NO KEY UPDATE;
    IF pk IS NULL THEN
        RETURN false;  -- missing or not writable: the caller asks why
    END IF;
    INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, label, content_hash,
                             metadata, state, state_bytes, keep, snapshot)
    VALUES (pk, p_checkpoint, p_created, p_keys, p_bytes, p_label, p_hash, p_metadata, p_state, p_state_bytes,
            p_keep, p_snapshot)
    ON CONFLICT (session_pk, checkpoint_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;  -- the checkpoint id is taken: nothing written
    END IF;
    IF NOT p_keep THEN
        n_unkept := n_unkept + 1;
    END IF;
    IF (p_keep_last IS NOT NULL AND n_unkept > p_keep_last) OR p_cutoff IS NOT NULL THEN
        n_unkept := mcpmem_prune_checkpoints(pk, n_unkept, p_keep_last, p_cutoff);
    END IF;
    INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail)
    VALUES (pk, p_ev_type, p_ev_at, p_ev_ms, p_ev_outcome, p_ev_detail);
    n_events := n_events + 1;
    IF (p_events_keep_last IS NOT NULL AND n_events > p_events_keep_last) OR p_events_cutoff IS NOT NULL THEN
        n_events := mcpmem_prune_events(pk, n_events, p_events_keep_last, p_events_cutoff);
    END IF;
    UPDATE sessions SET status = 'paused', updated_at = p_ev_at, unkept_checkpoints = n_unkept,
                        event_count = n_events
    WHERE id = pk;
    RETURN true;
END
$fn$
"""

RECORD_PAUSE_SIGNATURE = (
    "mcpmem_record_pause(uuid, uuid, text, text, timestamptz, integer, bigint, text, text, jsonb, jsonb, bigint, "
    "boolean, text, timestamptz, double precision, text, jsonb, integer, timestamptz, integer, timestamptz, text)"
)


def upgrade() -> None:
    op.execute("ALTER TABLE checkpoints ADD COLUMN snapshot text")
    op.execute(RECORD_PAUSE)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {RECORD_PAUSE_SIGNATURE}")
    op.execute("ALTER TABLE checkpoints DROP COLUMN snapshot")
