"""Per-session counts for retention: ``sessions.unkept_checkpoints`` (the session's checkpoints not kept, those
retention may prune) and ``sessions.event_count`` (all its events), backfilled here and kept exact by every writer
of checkpoints and events, each under the session's row lock (the functions below, and the statements of
``stores/postgres/statements.py``, ``transfer.py``).

Retention then reads nothing while a session is within its bounds, and beyond them deletes the excess, the oldest in
index order, and counts what it deleted: revision 0008's pause found the newest 100 kept checkpoint ids and scanned
the 1,000 newest event ids on every pause (0.22 ms of the function's 0.37 ms at 10 keys). The excess is exactly what
0008's ``OFFSET`` left over (the oldest ``count - bound`` rows), so what goes is unchanged; the newest checkpoint and
event, kept checkpoints and the successful spawn and terminate events are still never pruned (they count towards
the bound as before).

- ``mcpmem_prune_checkpoints`` / ``mcpmem_prune_events``: that prune, called by the functions only when a bound is
  passed or an age is set; they return the session's new count. ``plan_cache_mode = force_generic_plan``: their
  statements' best plans (index scans by session, from one end) do not depend on the values, but ``auto`` kept
  planning them on every call (a ``LIMIT`` of a parameter makes the generic plan look dearer than a custom one):
  0.12 ms of a 10-key pause's 0.67 ms, measured. No other setting: they run under their caller's (the pauses'
  ``enable_bitmapscan = off``), and setting it again on them cost as much again, measured.
- ``mcpmem_pause`` and ``mcpmem_record_pause``: same signatures, counting and pruning as above.
- ``mcpmem_resume`` (two arguments more: the event bounds) and ``mcpmem_record_resume`` (new; the two-step resume's
  record, a function for the same reason as 0010's): a resume prunes events too, as a pause does, so that resumes
  in a row no longer add events beyond the bound until the next pause.

The SQL is frozen here (a copy, not imported from live code). The downgrade restores 0008's and 0010's functions
(imported from those revisions, frozen too) and drops the columns.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_VERSIONS = "mcp_memory.stores.migrations.versions.postgres"

COLUMNS = (
    "ALTER TABLE sessions ADD COLUMN unkept_checkpoints integer NOT NULL DEFAULT 0, "
    "ADD COLUMN event_count integer NOT NULL DEFAULT 0"
)
# Exact at the migration's commit: the tables are locked against writers (SHARE: reads go on) while it counts.
BACKFILL = (
    "LOCK TABLE sessions, checkpoints, events IN SHARE MODE",
    "UPDATE sessions s SET "
    "unkept_checkpoints = (SELECT count(*) FROM checkpoints c WHERE c.session_pk = s.id AND NOT c.keep), "
    "event_count = (SELECT count(*) FROM events e WHERE e.session_pk = s.id) "
    "WHERE EXISTS (SELECT 1 FROM checkpoints c WHERE c.session_pk = s.id) "
    "OR EXISTS (SELECT 1 FROM events e WHERE e.session_pk = s.id)",
)

PRUNE_CHECKPOINTS = r"""
CREATE FUNCTION mcpmem_prune_checkpoints(
    p_pk bigint, p_unkept integer, p_keep_last integer, p_cutoff timestamptz)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    n integer := p_unkept;
    gone integer;
BEGIN
    -- The session's row is locked by the caller, and p_unkept is its count of checkpoints not kept (the caller's
    -- new one included). Beyond p_keep_last: the oldest (count - bound) not kept, along the index on
    -- (session_pk, created_at DESC, id DESC) read backwards; older than p_cutoff: along the same index. Never the
    -- session's newest. Returns the count left.
    IF p_keep_last IS NOT NULL AND n > p_keep_last THEN
        DELETE FROM checkpoints
        WHERE id = ANY (ARRAY(
                SELECT id FROM checkpoints WHERE session_pk = p_pk AND NOT keep
                ORDER BY created_at, id LIMIT n - p_keep_last))
          AND id <> (SELECT id FROM checkpoints WHERE session_pk = p_pk ORDER BY created_at DESC, id DESC LIMIT 1);
        GET DIAGNOSTICS gone = ROW_COUNT;
        n := n - gone;
    END IF;
    IF p_cutoff IS NOT NULL THEN
        DELETE FROM checkpoints
        WHERE session_pk = p_pk AND NOT keep AND created_at < p_cutoff
          AND id <> (SELECT id FROM checkpoints WHERE session_pk = p_pk ORDER BY created_at DESC, id DESC LIMIT 1);
        GET DIAGNOSTICS gone = ROW_COUNT;
        n := n - gone;
    END IF;
    RETURN n;
END
$fn$
"""

PRUNE_EVENTS = r"""
CREATE FUNCTION mcpmem_prune_events(
    p_pk bigint, p_count integer, p_keep_last integer, p_cutoff timestamptz)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    n integer := p_count;
    gone integer;
BEGIN
    -- The session's row is locked by the caller, and p_count is its count of events (the caller's new one
    -- included). Beyond p_keep_last: of the oldest (count - bound), along the index on (session_pk, id), those
    -- that are not a successful spawn or terminate; older than p_cutoff: the same. Never the newest. Returns the
    -- count left.
    IF p_keep_last IS NOT NULL AND n > p_keep_last THEN
        DELETE FROM events
        WHERE id = ANY (ARRAY(SELECT id FROM events WHERE session_pk = p_pk ORDER BY id LIMIT n - p_keep_last))
          AND NOT (event_type IN ('spawn', 'terminate') AND outcome = 'ok')
          AND id <> (SELECT max(id) FROM events WHERE session_pk = p_pk);
        GET DIAGNOSTICS gone = ROW_COUNT;
        n := n - gone;
    END IF;
    IF p_cutoff IS NOT NULL THEN
        DELETE FROM events
        WHERE session_pk = p_pk AND at < p_cutoff AND NOT (event_type IN ('spawn', 'terminate') AND outcome = 'ok')
          AND id <> (SELECT max(id) FROM events WHERE session_pk = p_pk);
        GET DIAGNOSTICS gone = ROW_COUNT;
        n := n - gone;
    END IF;
    RETURN n;
END
$fn$
"""

PAUSE = r"""
CREATE OR REPLACE FUNCTION mcpmem_pause(
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
    n_unkept integer;
    n_events integer;
BEGIN
    o_done := false;
    -- The session's row locked, if it takes writes (a concurrent seal or status change is waited for and its
    -- result checked again), with its counts: the statements below see every write committed before.
    SELECT id, unkept_checkpoints, event_count INTO pk, n_unkept, n_events FROM sessions
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

RECORD_PAUSE = r"""
CREATE OR REPLACE FUNCTION mcpmem_record_pause(
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
                             metadata, state, state_bytes, keep)
    VALUES (pk, p_checkpoint, p_created, p_keys, p_bytes, p_label, p_hash, p_metadata, p_state, p_state_bytes,
            p_keep)
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

RESUME = r"""
CREATE FUNCTION mcpmem_resume(
    p_project uuid, p_agent uuid, p_session text, p_now double precision, p_checkpoint text,
    p_clear boolean, p_max_keys integer,
    p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text, p_ev_detail jsonb,
    p_events_keep_last integer, p_events_cutoff timestamptz,
    OUT o_status text, OUT o_sealed boolean, OUT o_checkpoint text, OUT o_created timestamptz, OUT o_keys integer,
    OUT o_bytes bigint, OUT o_label text, OUT o_hash text, OUT o_metadata text, OUT o_keep boolean,
    OUT o_restored bigint, OUT o_kept bigint, OUT o_done boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto
AS $fn$
DECLARE
    pk bigint;
    st jsonb;
    n_events integer;
BEGIN
    o_done := false;
    SELECT id, status, sealed, event_count INTO pk, o_status, o_sealed, n_events FROM sessions
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
    -- Restored from the JSONB inside Postgres (see revision 0008): only keys whose value or expiry differ are
    -- written, and nothing at all if the result would not fit p_max_keys.
    WITH r AS (
        SELECT e.key, e.value ->> 0 AS v, CAST(e.value ->> 1 AS double precision) AS x FROM jsonb_each(st) AS e
    ),
    live AS (SELECT key, v, x FROM r WHERE x IS NULL OR x > p_now),
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
    ev AS (
        INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail)
        SELECT pk, p_ev_type, p_ev_at, p_ev_ms, p_ev_outcome,
               p_ev_detail || jsonb_build_object('checkpoint_id', o_checkpoint, 'items', n.restored)
        FROM go, n
    )
    SELECT n.restored, others.kept, EXISTS (SELECT 1 FROM go) INTO o_restored, o_kept, o_done FROM n, others;
    IF NOT o_done THEN
        RETURN;
    END IF;
    -- Event retention, as a pause applies it (this statement sees the event just written).
    n_events := n_events + 1;
    IF (p_events_keep_last IS NOT NULL AND n_events > p_events_keep_last) OR p_events_cutoff IS NOT NULL THEN
        n_events := mcpmem_prune_events(pk, n_events, p_events_keep_last, p_events_cutoff);
    END IF;
    UPDATE sessions SET status = 'running', updated_at = p_ev_at, event_count = n_events WHERE id = pk;
END
$fn$
"""

RECORD_RESUME = r"""
CREATE FUNCTION mcpmem_record_resume(
    p_project uuid, p_agent uuid, p_session text,
    p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text, p_ev_detail jsonb,
    p_events_keep_last integer, p_events_cutoff timestamptz,
    OUT o_status text, OUT o_sealed boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto SET enable_bitmapscan = off
AS $fn$
DECLARE
    pk bigint;
    n_events integer;
BEGIN
    -- The session's row locked; if it takes writes, it is marked running, the event recorded and events pruned
    -- as a pause prunes them. Its status and seal are returned either way (NULL: no session).
    SELECT id, status, sealed, event_count INTO pk, o_status, o_sealed, n_events FROM sessions
    WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
    FOR NO KEY UPDATE;
    IF pk IS NULL OR o_sealed OR o_status = 'terminated' THEN
        RETURN;
    END IF;
    INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail)
    VALUES (pk, p_ev_type, p_ev_at, p_ev_ms, p_ev_outcome, p_ev_detail);
    n_events := n_events + 1;
    IF (p_events_keep_last IS NOT NULL AND n_events > p_events_keep_last) OR p_events_cutoff IS NOT NULL THEN
        n_events := mcpmem_prune_events(pk, n_events, p_events_keep_last, p_events_cutoff);
    END IF;
    UPDATE sessions SET status = 'running', updated_at = p_ev_at, event_count = n_events WHERE id = pk;
END
$fn$
"""

PAUSE_SIGNATURE = (
    "mcpmem_pause(uuid, uuid, text, double precision, text, timestamptz, text, jsonb, boolean, text, timestamptz, "
    "double precision, text, jsonb, integer, timestamptz, integer, timestamptz)"
)
RECORD_PAUSE_SIGNATURE = (
    "mcpmem_record_pause(uuid, uuid, text, text, timestamptz, integer, bigint, text, text, jsonb, jsonb, bigint, "
    "boolean, text, timestamptz, double precision, text, jsonb, integer, timestamptz, integer, timestamptz)"
)
OLD_RESUME_SIGNATURE = (
    "mcpmem_resume(uuid, uuid, text, double precision, text, boolean, integer, text, timestamptz, double precision, "
    "text, jsonb)"
)
NEW = (
    "mcpmem_resume(uuid, uuid, text, double precision, text, boolean, integer, text, timestamptz, double precision, "
    "text, jsonb, integer, timestamptz)",
    "mcpmem_record_resume(uuid, uuid, text, text, timestamptz, double precision, text, jsonb, integer, timestamptz)",
    "mcpmem_prune_checkpoints(bigint, integer, integer, timestamptz)",
    "mcpmem_prune_events(bigint, integer, integer, timestamptz)",
)


def upgrade() -> None:
    op.execute(COLUMNS)
    for statement in BACKFILL:
        op.execute(statement)
    op.execute(PRUNE_CHECKPOINTS)
    op.execute(PRUNE_EVENTS)
    op.execute(PAUSE)
    op.execute(RECORD_PAUSE)
    op.execute(f"DROP FUNCTION {OLD_RESUME_SIGNATURE}")
    op.execute(RESUME)
    op.execute(RECORD_RESUME)


def downgrade() -> None:
    transitions = importlib.import_module(f"{_VERSIONS}.0008_transition_functions")
    two_step = importlib.import_module(f"{_VERSIONS}.0010_two_step_functions")
    for signature in (PAUSE_SIGNATURE, RECORD_PAUSE_SIGNATURE, *NEW):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.execute(transitions.PAUSE)
    op.execute(transitions.RESUME)
    op.execute(two_step.RECORD_PAUSE)
    op.execute("ALTER TABLE sessions DROP COLUMN unkept_checkpoints, DROP COLUMN event_count")
