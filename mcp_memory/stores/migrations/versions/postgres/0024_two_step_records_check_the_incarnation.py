"""The two-step records land only on the session they were made from: ``mcpmem_record_pause`` and
``mcpmem_record_resume`` with one argument more (``p_made_from``, the creation time of the session record the
working memory snapshotted, or the checkpoint restored, was made from), and the resume one output more
(``o_other``).

With working memory in Redis, a pause is a snapshot then this record, and a resume a read of the checkpoint, a
restore, then its record. Between the steps another server may delete the session and spawn it again under its id: a
late record then made the old session's snapshot a checkpoint of the new session (whose resume would restore the old
state), or marked the new session running with the old one's resume. Called with ``p_made_from``, a record whose
session row was created at another time writes nothing: the pause answers ``false`` (the caller asks why and finds
the row another), the resume ``o_other``. NULL (a Redis session of an earlier release, which notes no incarnation)
records as before.

The 24-argument ``mcpmem_record_pause`` and the 11-argument ``mcpmem_record_resume`` of 0016 (and those of 0011 and
0013) stay, so a server of the previous release keeps working during an upgrade; the new ones are overloads. The SQL
is frozen here (copies of 0016's bodies with the check added). The downgrade drops the overloads.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-11
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

RECORD_PAUSE = r"""CREATE FUNCTION mcpmem_record_pause(
    p_project uuid, p_agent uuid, p_session text, p_checkpoint text, p_created timestamptz, p_keys integer,
    p_bytes bigint, p_label text, p_hash text, p_metadata jsonb, p_state jsonb, p_state_bytes bigint,
    p_keep boolean, p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text,
    p_ev_detail jsonb, p_keep_last integer, p_cutoff timestamptz, p_events_keep_last integer,
    p_events_cutoff timestamptz, p_snapshot text, p_order bigint, p_made_from timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto SET enable_bitmapscan = off
AS $fn$
DECLARE
    pk bigint;
    n_unkept integer;
    n_events integer;
    last_order bigint;
BEGIN
    -- Only the session the snapshot was read from (p_made_from: its row's creation time; NULL: whichever row holds
    -- the id), never one spawned again under its id since.
    SELECT id, unkept_checkpoints, event_count, status_order INTO pk, n_unkept, n_events, last_order FROM sessions
    WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
      AND NOT sealed AND status <> 'terminated' AND spawn_until IS NULL
      AND (p_made_from IS NULL OR created_at = p_made_from)
    FOR NO KEY UPDATE;
    IF pk IS NULL THEN
        RETURN false;  -- missing, not writable or another session: the caller asks why
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
    -- Paused only if no transition of a later order is recorded (a resume of another server that restored after
    -- this snapshot and recorded first keeps the session running); the checkpoint and event are kept either way.
    IF p_order IS NULL OR last_order IS NULL OR p_order > last_order THEN
        UPDATE sessions SET status = 'paused', status_order = COALESCE(p_order, status_order), updated_at = p_ev_at,
                            unkept_checkpoints = n_unkept, event_count = n_events
        WHERE id = pk;
    ELSE
        UPDATE sessions SET updated_at = p_ev_at, unkept_checkpoints = n_unkept, event_count = n_events WHERE id = pk;
    END IF;
    RETURN true;
END
$fn$
"""

RECORD_RESUME = r"""CREATE FUNCTION mcpmem_record_resume(
    p_project uuid, p_agent uuid, p_session text,
    p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text, p_ev_detail jsonb,
    p_events_keep_last integer, p_events_cutoff timestamptz, p_order bigint, p_made_from timestamptz,
    OUT o_status text, OUT o_sealed boolean, OUT o_other boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto SET enable_bitmapscan = off
AS $fn$
DECLARE
    pk bigint;
    n_events integer;
    last_order bigint;
    made timestamptz;
BEGIN
    -- The session's row locked; if it takes writes and is the session the checkpoint was read from (p_made_from: its
    -- creation time; NULL: whichever row holds the id), it is marked running (unless a transition of a later order is
    -- recorded: a pause of another server that snapshotted after this restore and recorded first keeps it paused),
    -- the event recorded and events pruned as a pause prunes them. Its status and seal are returned either way (NULL:
    -- no session), and o_other: the row is another session (deleted and spawned again under its id), left as it is.
    SELECT id, status, sealed, event_count, status_order, created_at
    INTO pk, o_status, o_sealed, n_events, last_order, made
    FROM sessions
    WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
    FOR NO KEY UPDATE;
    o_other := pk IS NOT NULL AND p_made_from IS NOT NULL AND made <> p_made_from;
    IF pk IS NULL OR o_other OR o_sealed OR o_status = 'terminated' THEN
        RETURN;
    END IF;
    INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail)
    VALUES (pk, p_ev_type, p_ev_at, p_ev_ms, p_ev_outcome, p_ev_detail);
    n_events := n_events + 1;
    IF (p_events_keep_last IS NOT NULL AND n_events > p_events_keep_last) OR p_events_cutoff IS NOT NULL THEN
        n_events := mcpmem_prune_events(pk, n_events, p_events_keep_last, p_events_cutoff);
    END IF;
    IF p_order IS NULL OR last_order IS NULL OR p_order > last_order THEN
        UPDATE sessions SET status = 'running', status_order = COALESCE(p_order, status_order), updated_at = p_ev_at,
                            event_count = n_events
        WHERE id = pk;
    ELSE
        UPDATE sessions SET updated_at = p_ev_at, event_count = n_events WHERE id = pk;
    END IF;
END
$fn$
"""

RECORD_PAUSE_SIGNATURE = (
    "mcpmem_record_pause(uuid, uuid, text, text, timestamptz, integer, bigint, text, text, jsonb, jsonb, bigint, "
    "boolean, text, timestamptz, double precision, text, jsonb, integer, timestamptz, integer, timestamptz, text, "
    "bigint, timestamptz)"
)
RECORD_RESUME_SIGNATURE = (
    "mcpmem_record_resume(uuid, uuid, text, text, timestamptz, double precision, text, jsonb, integer, timestamptz, "
    "bigint, timestamptz)"
)


def upgrade() -> None:
    op.execute(RECORD_PAUSE)
    op.execute(RECORD_RESUME)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {RECORD_RESUME_SIGNATURE}")
    op.execute(f"DROP FUNCTION IF EXISTS {RECORD_PAUSE_SIGNATURE}")
