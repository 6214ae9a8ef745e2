"""Pause and resume as server-side functions: ``mcpmem_pause`` and ``mcpmem_resume``, each called as one
``SELECT`` (one message, its own transaction in autocommit: no BEGIN, lock and COMMIT round trips).

A function's statements each take a fresh snapshot (READ COMMITTED, a VOLATILE function), so the first one can lock
the session's row and the next ones see everything committed before the lock was granted: what the three-message
transaction of revision 0007's code did (the retention of two concurrent pauses, the keys a resume clears).

``plan_cache_mode = auto`` on the functions: our connections force custom plans (for search, whose best plan depends
on its LIMIT and vector); these statements' best plans do not change from call to call, and planning them again each
time was as long as running them at 10 keys. ``enable_bitmapscan = off`` on the pause: its retention reads one
session's checkpoints and events newest first, which an index scan returns in order; a bitmap scan (the planner's
pick while the tables' statistics are young, or say a session has few rows) reads them all and sorts them, 0.2 ms
for a session's 1,000 events.

The SQL is frozen here (a copy, not imported from live code): a later change of the functions is a new revision.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PAUSE = r"""
CREATE FUNCTION mcpmem_pause(
    p_project uuid, p_agent uuid, p_session text, p_now double precision, p_checkpoint text,
    p_created timestamptz, p_label text, p_metadata jsonb, p_keep boolean,
    p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text, p_ev_detail jsonb,
    p_keep_last integer, p_cutoff timestamptz, p_events_keep_last integer, p_events_cutoff timestamptz,
    OUT o_done boolean, OUT o_keys integer, OUT o_bytes bigint, OUT o_hash text)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto SET enable_bitmapscan = off
AS $fn$
DECLARE
    pk bigint;
    gone bigint[];
BEGIN
    o_done := false;
    -- The session's row locked, if it takes writes (a concurrent seal or status change is waited for and its
    -- result checked again): the statements below see every pause, write or resume committed before.
    SELECT id INTO pk FROM sessions
    WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
      AND NOT sealed AND status <> 'terminated' AND spawn_until IS NULL
    FOR NO KEY UPDATE;
    IF pk IS NULL THEN
        RETURN;  -- missing or not writable: the caller asks why
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
    -- Checkpoint retention (the new one included; it may go itself if it is not the newest): never a kept one
    -- nor the newest; beyond the newest p_keep_last not kept, or older than p_cutoff (NULL: no bound). The ids
    -- to go are found along the index on (session_pk, created_at DESC, id DESC) and deleted by primary key, and
    -- no DELETE runs while nothing is beyond the bounds (a session's first p_keep_last pauses).
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
    UPDATE sessions SET status = 'paused', updated_at = p_ev_at WHERE id = pk;
    INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail)
    VALUES (pk, p_ev_type, p_ev_at, p_ev_ms, p_ev_outcome, p_ev_detail || jsonb_build_object('items', o_keys));
    -- Event retention (the new event counted): never a spawn or terminate that succeeded, nor the newest; beyond
    -- the newest p_events_keep_last, or older than p_events_cutoff. Their ids are found along the index on
    -- (session_pk, id) (ids only: an index-only scan where the table is vacuumed), deleted by primary key, and no
    -- DELETE runs while none is beyond the bounds.
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
    o_done := true;
END
$fn$
"""

RESUME = r"""
CREATE FUNCTION mcpmem_resume(
    p_project uuid, p_agent uuid, p_session text, p_now double precision, p_checkpoint text,
    p_clear boolean, p_max_keys integer,
    p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text, p_ev_detail jsonb,
    OUT o_status text, OUT o_sealed boolean, OUT o_checkpoint text, OUT o_created timestamptz, OUT o_keys integer,
    OUT o_bytes bigint, OUT o_label text, OUT o_hash text, OUT o_metadata text, OUT o_keep boolean,
    OUT o_restored bigint, OUT o_kept bigint, OUT o_done boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto
AS $fn$
DECLARE
    pk bigint;
    st jsonb;
BEGIN
    o_done := false;
    SELECT id, status, sealed INTO pk, o_status, o_sealed FROM sessions
    WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
    FOR NO KEY UPDATE;
    IF pk IS NULL THEN
        RETURN;  -- no session: every column NULL
    END IF;
    -- The checkpoint p_checkpoint, or (NULL) the newest.
    IF p_checkpoint IS NOT NULL THEN
        SELECT checkpoint_id, created_at, keys_count, bytes, label, content_hash, CAST(metadata AS text), keep, state
        INTO o_checkpoint, o_created, o_keys, o_bytes, o_label, o_hash, o_metadata, o_keep, st
        FROM checkpoints WHERE session_pk = pk AND checkpoint_id = p_checkpoint;
    ELSE
        SELECT checkpoint_id, created_at, keys_count, bytes, label, content_hash, CAST(metadata AS text), keep, state
        INTO o_checkpoint, o_created, o_keys, o_bytes, o_label, o_hash, o_metadata, o_keep, st
        FROM checkpoints WHERE session_pk = pk ORDER BY created_at DESC, id DESC LIMIT 1;
    END IF;
    IF o_checkpoint IS NULL OR o_sealed OR o_status = 'terminated' THEN
        RETURN;  -- nothing to restore, or the session refuses: the caller says which
    END IF;
    -- Restored from the JSONB inside Postgres (the state never travels to the client): the checkpoint's live
    -- items, if they and (without p_clear) the other live keys fit p_max_keys. Working memory then becomes them
    -- (p_clear: the other keys deleted) or they are written over it. A key that already holds the checkpoint's
    -- value and expiry is not written at all (an upsert would still lock its row: a WAL record per key).
    WITH r AS (
        SELECT e.key, e.value ->> 0 AS v, CAST(e.value ->> 1 AS double precision) AS x FROM jsonb_each(st) AS e
    ),
    live AS (SELECT key, v, x FROM r WHERE x IS NULL OR x > p_now),
    -- The session's rows read once (a hash join each below, not an index probe per key).
    cur AS (SELECT key, value, expires_at FROM working_items WHERE session_pk = pk),
    n AS (SELECT count(*) AS restored FROM live),
    others AS (
        SELECT count(*) AS kept FROM cur
        WHERE NOT p_clear AND (cur.expires_at IS NULL OR cur.expires_at > p_now)
          AND NOT EXISTS (SELECT 1 FROM live WHERE live.key = cur.key)
    ),
    go AS (SELECT 1 AS ok FROM n, others WHERE n.restored + others.kept <= p_max_keys),
    d AS (
        DELETE FROM working_items
        WHERE session_pk = pk AND key = ANY (ARRAY(
            SELECT cur.key FROM cur
            WHERE p_clear AND EXISTS (SELECT 1 FROM go) AND NOT EXISTS (SELECT 1 FROM live WHERE live.key = cur.key)))
    ),
    changed AS (
        SELECT live.key, live.v, live.x FROM live LEFT JOIN cur ON cur.key = live.key
        WHERE EXISTS (SELECT 1 FROM go)
          AND (cur.key IS NULL OR cur.value <> live.v OR cur.expires_at IS DISTINCT FROM live.x)
    ),
    ins AS (
        INSERT INTO working_items (session_pk, key, value, expires_at) SELECT pk, key, v, x FROM changed
        ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
    ),
    upd AS (UPDATE sessions SET status = 'running', updated_at = p_ev_at WHERE id = pk AND EXISTS (SELECT 1 FROM go)),
    ev AS (
        INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail)
        SELECT pk, p_ev_type, p_ev_at, p_ev_ms, p_ev_outcome,
               p_ev_detail || jsonb_build_object('checkpoint_id', o_checkpoint, 'items', n.restored)
        FROM go, n
    )
    SELECT n.restored, others.kept, EXISTS (SELECT 1 FROM go) INTO o_restored, o_kept, o_done FROM n, others;
END
$fn$
"""

SIGNATURES = (
    "mcpmem_pause(uuid, uuid, text, double precision, text, timestamptz, text, jsonb, boolean, text, timestamptz, "
    "double precision, text, jsonb, integer, timestamptz, integer, timestamptz)",
    "mcpmem_resume(uuid, uuid, text, double precision, text, boolean, integer, text, timestamptz, double precision, "
    "text, jsonb)",
)


def upgrade() -> None:
    op.execute(PAUSE)
    op.execute(RESUME)


def downgrade() -> None:
    for signature in SIGNATURES:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
