"""A pause of a session whose working memory is in Postgres is dated after every checkpoint written before it:
``mcpmem_pause`` with one argument more (``p_check_newer``) and one output more (``o_overtaken``).

The server reads its clock for the checkpoint's time and id before the function waits for the session's row lock.
A pause of another process that read its clock later but took the lock first committed a newer-dated checkpoint,
and this one then recorded the newer state under the older time: the newest checkpoint by time (what a resume takes
by default) was not the latest state. With ``p_check_newer``, the function, once it holds the lock, writes nothing
and answers ``o_overtaken`` if the session has a checkpoint dated after ``p_created``; the server then reads its
clock again under the lock (a transaction that locks the row first) and calls it without the check. Uncontended,
a pause stays one statement.

The 18-argument ``mcpmem_pause`` of revision 0011 stays, so a server of the previous release keeps working during an
upgrade; the new one is an overload. The SQL is frozen here (a copy of 0011's body with the check added). The
downgrade drops the overload.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

PAUSE = r"""CREATE FUNCTION mcpmem_pause(
    p_project uuid, p_agent uuid, p_session text, p_now double precision, p_checkpoint text,
    p_created timestamptz, p_label text, p_metadata jsonb, p_keep boolean,
    p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text, p_ev_detail jsonb,
    p_keep_last integer, p_cutoff timestamptz, p_events_keep_last integer, p_events_cutoff timestamptz,
    p_check_newer boolean,
    OUT o_done boolean, OUT o_keys integer, OUT o_bytes bigint, OUT o_hash text, OUT o_overtaken boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto SET enable_bitmapscan = off
AS $fn$
DECLARE
    pk bigint;
    n_unkept integer;
    n_events integer;
BEGIN
    o_done := false;
    o_overtaken := false;
    -- The session's row locked, if it takes writes (a concurrent seal or status change is waited for and its
    -- result checked again), with its counts: the statements below see every write committed before.
    SELECT id, unkept_checkpoints, event_count INTO pk, n_unkept, n_events FROM sessions
    WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
      AND NOT sealed AND status <> 'terminated' AND spawn_until IS NULL
    FOR NO KEY UPDATE;
    IF pk IS NULL THEN
        RETURN;  -- missing or not writable: the caller asks why
    END IF;
    -- A checkpoint dated after this pause's time, written while it waited for the lock: nothing written, the caller
    -- dates the pause again under the lock (one index probe of (session_pk, created_at DESC, id DESC)).
    -- Dated further ahead than 60 s (records.OVERTAKEN_WITHIN_SECONDS), it came from elsewhere (an import, a clock
    -- stepped back): dating this pause again would not place it after that one, so no second try.
    IF p_check_newer AND EXISTS (SELECT 1 FROM checkpoints WHERE session_pk = pk AND created_at > p_created
                                 AND created_at <= p_created + interval '60 seconds') THEN
        o_overtaken := true;
        RETURN;
    END IF;
    -- The snapshot of the live items: state {"key": ["<value JSON text>", expires_at]}, count, size, and the
    -- content hash of mcp_memory.models.content_hash (sha256 over key NUL value NUL in code point order).
    INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, label, content_hash,
                             metadata, state, state_bytes, keep)
    SELECT pk, p_checkpoint, p_created, agg.n, agg.b, p_label, agg.h, p_metadata, agg.state,
           octet_length(CAST(agg.state AS text)), p_keep
    FROM (
        SELECT count(*) AS n, COALESCE(sum(octet_length(value)), 0) AS b,
               COALESCE(jsonb_object_agg(key, jsonb_build_array(value, expires_at)), CAST('{}' AS jsonb)) AS state,
               'sha256:' || encode(sha256(COALESCE(string_agg(
                   convert_to(key, 'UTF8') || decode('00', 'hex') || convert_to(value, 'UTF8') || decode('00', 'hex'),
                   decode('', 'hex') ORDER BY key COLLATE "C"), decode('', 'hex'))), 'hex') AS h
        FROM working_items
        WHERE session_pk = pk AND (expires_at IS NULL OR expires_at > p_now)
    ) AS agg
    ON CONFLICT (session_pk, checkpoint_id) DO NOTHING
    RETURNING keys_count, bytes, content_hash INTO o_keys, o_bytes, o_hash;
    IF NOT FOUND THEN
        RETURN;  -- the checkpoint id is taken: nothing written
    END IF;
    IF NOT p_keep THEN
        n_unkept := n_unkept + 1;
    END IF;
    IF (p_keep_last IS NOT NULL AND n_unkept > p_keep_last) OR p_cutoff IS NOT NULL THEN
        n_unkept := mcpmem_prune_checkpoints(pk, n_unkept, p_keep_last, p_cutoff);
    END IF;
    INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail)
    VALUES (pk, p_ev_type, p_ev_at, p_ev_ms, p_ev_outcome, p_ev_detail || jsonb_build_object('items', o_keys));
    n_events := n_events + 1;
    IF (p_events_keep_last IS NOT NULL AND n_events > p_events_keep_last) OR p_events_cutoff IS NOT NULL THEN
        n_events := mcpmem_prune_events(pk, n_events, p_events_keep_last, p_events_cutoff);
    END IF;
    UPDATE sessions SET status = 'paused', updated_at = p_ev_at, unkept_checkpoints = n_unkept,
                        event_count = n_events
    WHERE id = pk;
    o_done := true;
END
$fn$
"""

PAUSE_SIGNATURE = (
    "mcpmem_pause(uuid, uuid, text, double precision, text, timestamptz, text, jsonb, boolean, text, timestamptz, "
    "double precision, text, jsonb, integer, timestamptz, integer, timestamptz, boolean)"
)


def upgrade() -> None:
    op.execute(PAUSE)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {PAUSE_SIGNATURE}")
