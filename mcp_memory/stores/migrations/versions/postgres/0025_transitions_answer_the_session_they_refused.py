"""``mcpmem_pause`` and ``mcpmem_resume`` answer, with a refusal, the session they read: the pause its status, seal
and record's creation time (``o_status``, ``o_sealed``, ``o_made``), the resume its record's creation time
(``o_made``). Same arguments; the functions are dropped and created again (an output more changes the return type).

A pause or resume whose working memory is in Postgres is one call of these functions, and the server reads no
session before it. When the function refused (a taken checkpoint id, no such checkpoint, a terminated or sealed
session), the server told why by reading the session in a statement of its own (pause) or left it to the service,
which read it again (resume), and recorded the call's failure event on whichever session held the id when the event
was written. Another server may delete the session and spawn its id again in between: the new session got an event
about a call that never touched it. Now the function's own read says why, and the server records the failure only
on the session created at ``o_made`` (``record_event``'s ``made_from``), as a two-step call does.

The pause locks the session's row whatever its status (a refused pause held no lock before; it holds one for its own
statement now) and checks whether it takes writes after the lock, so that the status, seal and creation time it
answers are those of the row it locked. Its other work, and the resume's, is unchanged. An uncontended call is still
one statement, its success path reads nothing more.

A server of the previous release selects the outputs it knows by name from the same calls, so it keeps working
during an upgrade (its prepared statements are planned again once the functions are replaced). The SQL is frozen
here (copies of 0020's bodies with the reads added). The downgrade restores 0020's functions.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-12
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

PAUSE_SIGNATURE = (
    "mcpmem_pause(uuid, uuid, text, double precision, text, timestamptz, text, jsonb, boolean, text, timestamptz, "
    "double precision, text, jsonb, integer, timestamptz, integer, timestamptz, boolean)"
)
RESUME_SIGNATURE = (
    "mcpmem_resume(uuid, uuid, text, double precision, text, boolean, integer, text, timestamptz, double precision, "
    "text, jsonb, integer, timestamptz, boolean)"
)

PAUSE = r"""CREATE FUNCTION mcpmem_pause(
    p_project uuid, p_agent uuid, p_session text, p_now double precision, p_checkpoint text,
    p_created timestamptz, p_label text, p_metadata jsonb, p_keep boolean,
    p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text, p_ev_detail jsonb,
    p_keep_last integer, p_cutoff timestamptz, p_events_keep_last integer, p_events_cutoff timestamptz,
    p_check_newer boolean,
    OUT o_done boolean, OUT o_keys integer, OUT o_bytes bigint, OUT o_hash text, OUT o_overtaken boolean,
    OUT o_status text, OUT o_sealed boolean, OUT o_made timestamptz)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto SET enable_bitmapscan = off
AS $fn$
DECLARE
    pk bigint;
    n_unkept integer;
    n_events integer;
    own bigint;
    own_event bigint;
    gone integer;
BEGIN
    o_done := false;
    o_overtaken := false;
    -- The session's row locked (a concurrent seal or status change is waited for and its result read), with its
    -- counts, status, seal and creation time: the statements below see every write committed before, and a refusal
    -- is told from what this statement read (o_status NULL: no session; o_made: the record refused, on which alone
    -- the caller records its failure: not one deleted and spawned again under the id since).
    -- With p_check_newer the lock is not waited for: held by another transaction (a write, pause or resume of the
    -- session under way), nothing is written and the answer is o_overtaken, as the caller's time was read before
    -- whatever that transaction commits; the caller reads its clock again under the lock.
    IF p_check_newer THEN
        SELECT id, status, sealed, created_at, unkept_checkpoints, event_count
        INTO pk, o_status, o_sealed, o_made, n_unkept, n_events FROM sessions
        WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
          AND spawn_until IS NULL
        FOR NO KEY UPDATE SKIP LOCKED;
        IF pk IS NULL THEN
            -- Skipped (locked) or missing: the session as it stands, read without the lock; only a writable one
            -- is worth a second try.
            SELECT status, sealed, created_at INTO o_status, o_sealed, o_made FROM sessions
            WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
              AND spawn_until IS NULL;
            o_overtaken := FOUND AND NOT o_sealed AND o_status <> 'terminated';
            RETURN;
        END IF;
    ELSE
        SELECT id, status, sealed, created_at, unkept_checkpoints, event_count
        INTO pk, o_status, o_sealed, o_made, n_unkept, n_events FROM sessions
        WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
          AND spawn_until IS NULL
        FOR NO KEY UPDATE;
    END IF;
    IF pk IS NULL OR o_sealed OR o_status = 'terminated' THEN
        RETURN;  -- missing or not writable: the caller says which
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
    RETURNING id, keys_count, bytes, content_hash INTO own, o_keys, o_bytes, o_hash;
    IF NOT FOUND THEN
        RETURN;  -- the checkpoint id is taken: nothing written
    END IF;
    IF NOT p_keep THEN
        n_unkept := n_unkept + 1;
    END IF;
    -- Retention by count, the common case, is pruned here rather than by mcpmem_prune_checkpoints (a nested call
    -- cost more than the delete itself): the oldest (count - bound) not kept, never the session's newest nor this
    -- pause's own. With an age bound too, that function does both.
    IF p_cutoff IS NOT NULL THEN
        n_unkept := mcpmem_prune_checkpoints(pk, n_unkept, p_keep_last, p_cutoff);
    ELSIF p_keep_last IS NOT NULL AND n_unkept > p_keep_last THEN
        DELETE FROM checkpoints
        WHERE id IN (SELECT id FROM checkpoints WHERE session_pk = pk AND NOT keep
                     ORDER BY created_at, id LIMIT n_unkept - p_keep_last)
          AND id <> own
          AND id <> (SELECT id FROM checkpoints WHERE session_pk = pk ORDER BY created_at DESC, id DESC LIMIT 1);
        GET DIAGNOSTICS gone = ROW_COUNT;
        n_unkept := n_unkept - gone;
    END IF;
    INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail)
    VALUES (pk, p_ev_type, p_ev_at, p_ev_ms, p_ev_outcome, p_ev_detail || jsonb_build_object('items', o_keys))
    RETURNING id INTO own_event;
    n_events := n_events + 1;
    -- Event retention by count, inline for the same reason: the oldest (count - bound) but a successful spawn or
    -- terminate, never the newest (this pause's).
    IF p_events_cutoff IS NOT NULL THEN
        n_events := mcpmem_prune_events(pk, n_events, p_events_keep_last, p_events_cutoff);
    ELSIF p_events_keep_last IS NOT NULL AND n_events > p_events_keep_last THEN
        DELETE FROM events
        WHERE id IN (SELECT id FROM events WHERE session_pk = pk ORDER BY id
                     LIMIT n_events - p_events_keep_last)
          AND NOT (event_type IN ('spawn', 'terminate') AND outcome = 'ok')
          AND id <> own_event;
        GET DIAGNOSTICS gone = ROW_COUNT;
        n_events := n_events - gone;
    END IF;
    UPDATE sessions SET status = 'paused', updated_at = p_ev_at, unkept_checkpoints = n_unkept,
                        event_count = n_events
    WHERE id = pk;
    o_done := true;
END
$fn$
"""

RESUME = r"""CREATE FUNCTION mcpmem_resume(
    p_project uuid, p_agent uuid, p_session text, p_now double precision, p_checkpoint text,
    p_clear boolean, p_max_keys integer,
    p_ev_type text, p_ev_at timestamptz, p_ev_ms double precision, p_ev_outcome text, p_ev_detail jsonb,
    p_events_keep_last integer, p_events_cutoff timestamptz, p_skip_locked boolean,
    OUT o_status text, OUT o_sealed boolean, OUT o_checkpoint text, OUT o_created timestamptz, OUT o_keys integer,
    OUT o_bytes bigint, OUT o_label text, OUT o_hash text, OUT o_metadata text, OUT o_keep boolean,
    OUT o_restored bigint, OUT o_kept bigint, OUT o_done boolean, OUT o_waited boolean, OUT o_made timestamptz)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = auto
AS $fn$
DECLARE
    pk bigint;
    st jsonb;
    n_events integer;
    gone integer;
BEGIN
    o_done := false;
    o_waited := false;
    -- The session's row locked, with its status, seal and creation time (o_made: the record a refusal is about, on
    -- which alone the caller records its failure: not one deleted and spawned again under the id since).
    -- With p_skip_locked the session's row lock is not waited for: held by another transaction, nothing is written
    -- and the answer is o_waited (every other column NULL); the caller reads its clock again under the lock.
    IF p_skip_locked THEN
        SELECT id, status, sealed, created_at, event_count INTO pk, o_status, o_sealed, o_made, n_events
        FROM sessions
        WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
        FOR NO KEY UPDATE SKIP LOCKED;
        IF pk IS NULL THEN
            o_waited := EXISTS (SELECT 1 FROM sessions WHERE project_id = p_project AND agent_instance_id = p_agent
                                AND session_id = p_session);
            RETURN;
        END IF;
    ELSE
        SELECT id, status, sealed, created_at, event_count INTO pk, o_status, o_sealed, o_made, n_events
        FROM sessions
        WHERE project_id = p_project AND agent_instance_id = p_agent AND session_id = p_session
        FOR NO KEY UPDATE;
        IF pk IS NULL THEN
            RETURN;  -- no session: every column NULL
        END IF;
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
    IF p_events_cutoff IS NOT NULL THEN
        n_events := mcpmem_prune_events(pk, n_events, p_events_keep_last, p_events_cutoff);
    ELSIF p_events_keep_last IS NOT NULL AND n_events > p_events_keep_last THEN
        DELETE FROM events
        WHERE id IN (SELECT id FROM events WHERE session_pk = pk ORDER BY id
                     LIMIT n_events - p_events_keep_last)
          AND NOT (event_type IN ('spawn', 'terminate') AND outcome = 'ok')
          AND id <> (SELECT max(id) FROM events WHERE session_pk = pk);
        GET DIAGNOSTICS gone = ROW_COUNT;
        n_events := n_events - gone;
    END IF;
    UPDATE sessions SET status = 'running', updated_at = p_ev_at, event_count = n_events WHERE id = pk;
END
$fn$
"""


def upgrade() -> None:
    op.execute(f"DROP FUNCTION {PAUSE_SIGNATURE}")
    op.execute(PAUSE)
    op.execute(f"DROP FUNCTION {RESUME_SIGNATURE}")
    op.execute(RESUME)


def downgrade() -> None:
    inline = importlib.import_module("mcp_memory.stores.migrations.versions.postgres.0020_retention_pruned_inline")
    op.execute(f"DROP FUNCTION {PAUSE_SIGNATURE}")
    op.execute(inline.PAUSE)
    op.execute(f"DROP FUNCTION {RESUME_SIGNATURE}")
    op.execute(inline.RESUME)
