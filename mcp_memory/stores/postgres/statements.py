"""The Postgres store's SQL text, the parameters it takes, and how values cross asyncpg (:data:`DIALECT`).

Most port methods are one statement: writes that must happen together (a session and its event, a checkpoint, the
session's status and its event) are data-modifying CTEs of one ``WITH``, atomic without BEGIN/COMMIT. Checkpoints
keep their state in one JSONB column ``{"key": ["<value JSON text>", expires_at], ...}`` (a pause builds it in
SQL: ``mcpmem_pause`` of migration 0008, with :func:`mcp_memory.models.content_hash` written again there). The
statements sent on the asyncpg connection itself (pause and resume) are in :mod:`.transitions` and :mod:`.two_step`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from mcp_memory.models import Episode, Item, PackedState, Scope, to_datetime
from mcp_memory.stores.ports import EventRecord
from mcp_memory.stores.sql.dialect import Dialect, as_is
from mcp_memory.stores.sql.queries import COMPLETE, LIVE, SCOPE, SESSION_PK

DIALECT = Dialect(
    read_json=as_is,
    read_time=as_is,
    read_epoch=datetime.timestamp,
    write_uuid=as_is,
    write_time=to_datetime,
    before_bound="AND (created_at, id) < (:b_at, :b_id)",
    prefix_match="starts_with(CAST({column} AS TEXT), :prefix)",
    lock_rows=" FOR UPDATE",
)
scope_params = DIALECT.scope_params

WRITABLE = f"NOT sealed AND status <> 'terminated' AND {COMPLETE}"
SESSION_SEALED = f"(SELECT sealed OR status = 'terminated' FROM sessions WHERE {SCOPE})"
"""Whether the session is terminated or being terminated (a scalar subquery, for reads of its checkpoints)."""
LOCK_WRITABLE = f"SELECT id, status, sealed FROM sessions WHERE {SCOPE} AND {COMPLETE} FOR NO KEY UPDATE"
"""Lock the session's row for the transaction (writers of one session queue on it) and read what says whether it
takes writes."""

# -- working memory ---------------------------------------------------------------------------------------
UPSERT_ITEMS = """
INSERT INTO working_items (session_pk, key, value, expires_at)
SELECT CAST(:pk AS bigint), k, v, e
FROM unnest(CAST(:keys AS text[]), CAST(:values AS text[]), CAST(:expiries AS float8[])) AS t(k, v, e)
ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
"""
SET_ITEM = f"""
INSERT INTO working_items (session_pk, key, value, expires_at)
SELECT CAST(:pk AS bigint), CAST(:k AS text), CAST(:v AS text), CAST(:e AS float8)
WHERE EXISTS (SELECT 1 FROM working_items WHERE session_pk = :pk AND key = :k AND {LIVE})
   OR (SELECT count(*) FROM working_items WHERE session_pk = :pk AND {LIVE}) < :max
ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
RETURNING 1
"""
DELETE_ITEM = (
    f"WITH s AS (SELECT id, status, sealed FROM sessions WHERE {SCOPE} FOR NO KEY UPDATE), "
    "d AS (DELETE FROM working_items w USING s WHERE w.session_pk = s.id AND w.key = :k "
    f"AND NOT s.sealed AND s.status <> 'terminated' RETURNING w.expires_at) "
    "SELECT s.status, s.sealed, "
    "(SELECT count(*) FROM d WHERE d.expires_at IS NULL OR d.expires_at > :now) AS live "
    "FROM s"
)
"""One statement: lock the session row, delete only if it is writable, report what it found."""
LIST_KEYS = (
    f"SELECT key FROM working_items WHERE session_pk = {SESSION_PK} AND {LIVE} "
    'AND starts_with(key, :prefix) ORDER BY key COLLATE "C"'
)
"""The live keys starting with ``:prefix``: ``starts_with`` (Postgres 11) counts no characters, so it needs no length
from Python, whose count need not be the database's; the primary key's index still finds the session's rows."""
PURGE_ROWS = 10_000
"""At most this many expired rows go per purge (~10 ms), so that a memory_set that purges stays within its deadline."""
PURGE_EXPIRED = (
    "DELETE FROM working_items WHERE ctid = ANY(ARRAY(SELECT ctid FROM working_items "
    f"WHERE expires_at IS NOT NULL AND expires_at <= :now LIMIT {PURGE_ROWS} FOR UPDATE SKIP LOCKED)) "
    "AND expires_at <= :now"
)
"""The purge of expired working-memory rows of every session, run inside one session's ``memory_set`` transaction:
it skips the rows other transactions hold, so it never waits. Waiting, it could deadlock with another purging
``memory_set`` that overwrote an expired key (each holding a row the other's purge deletes), or hold its
session's row and its caller until an operator's erase of another project committed."""
SNAPSHOT = (
    f"SELECT key, value, expires_at FROM working_items WHERE session_pk = {SESSION_PK} "
    f'AND {LIVE} ORDER BY key COLLATE "C"'
)
LIVE_COUNT = f"SELECT count(*) FROM working_items WHERE session_pk = :pk AND {LIVE}"


def clear_items(session_pk: str) -> str:
    """Delete the working memory of the session row ``session_pk`` selects (a subquery on the scope's parameters);
    one statement that answers how many of its keys were live."""
    return (
        f"WITH d AS (DELETE FROM working_items WHERE session_pk = {session_pk} RETURNING expires_at) "
        f"SELECT count(*) FROM d WHERE {LIVE}"
    )


def item_arrays(items: Mapping[str, Item], now: float) -> dict[str, Any]:
    """The parameters ``:keys``, ``:values``, ``:expiries`` of :data:`UPSERT_ITEMS`: the items still live at
    ``now``."""
    keys: list[str] = []
    values: list[str] = []
    expiries: list[float | None] = []
    for key, item in items.items():
        if item.expires_at is None or item.expires_at > now:
            keys.append(key)
            values.append(item.value)
            expiries.append(item.expires_at)
    return {"keys": keys, "values": values, "expiries": expiries}


# -- sessions and events ----------------------------------------------------------------------------------
EVENT_COLUMNS = "(session_pk, event_type, at, duration_ms, outcome, detail)"
EVENT_VALUES_NO_DETAIL = "CAST(:ev_t AS text), CAST(:ev_at AS timestamptz), CAST(:ev_d AS float8), CAST(:ev_o AS text)"
EVENT_VALUES = f"{EVENT_VALUES_NO_DETAIL}, CAST(:ev_detail AS jsonb)"
# event_count 1: the spawn event that :func:`with_event` writes with the row (every use of these two).
INSERT_SESSION = (
    "INSERT INTO sessions (project_id, agent_instance_id, session_id, agent_type_id, status, created_at, updated_at, "
    "metadata, event_count) VALUES (:p, :a, :s, :t, 'running', :now, :now, CAST(:m AS jsonb), 1) "
    "ON CONFLICT DO NOTHING RETURNING *"
)
INSERT_SPAWNING = (
    "INSERT INTO sessions (project_id, agent_instance_id, session_id, agent_type_id, status, created_at, updated_at, "
    "metadata, spawn_token, spawn_until, event_count) VALUES (:p, :a, :s, :t, 'running', :now, :now, "
    "CAST(:m AS jsonb), CAST(:tok AS text), CAST(:until AS timestamptz), 1) ON CONFLICT DO NOTHING RETURNING *"
)


def with_event(insert: str, items: bool = False, or_found: bool = False) -> str:
    """One statement: the session ``insert`` makes (:data:`INSERT_SESSION` or :data:`INSERT_SPAWNING`), its event
    and (``items``) its working memory from :func:`item_arrays`, or nothing if the session exists; returns its
    row. With ``or_found``, the row has one column more, ``spawned``: true for the new session's row; false for the
    row of the session that exists instead, as the statement's snapshot holds it (no row if it does not: a session
    committed after the statement began, which its insert found)."""
    its = (
        ", it AS (INSERT INTO working_items (session_pk, key, value, expires_at) SELECT s.id, k, v, e "
        "FROM s, unnest(CAST(:keys AS text[]), CAST(:values AS text[]), CAST(:expiries AS float8[])) AS t(k, v, e))"
        if items
        else ""
    )
    # The existing row is read only if nothing was inserted (a one-time filter: the spawn itself reads no more).
    answer = (
        "SELECT *, true AS spawned FROM s UNION ALL "
        f"SELECT *, false AS spawned FROM sessions WHERE {SCOPE} AND NOT EXISTS (SELECT 1 FROM s)"
        if or_found
        else "SELECT * FROM s"
    )
    return (
        f"WITH s AS ({insert}), ev AS (INSERT INTO events {EVENT_COLUMNS} SELECT id, {EVENT_VALUES} FROM s){its} "
        f"{answer}"
    )


INSERT_EVENT = f"INSERT INTO events {EVENT_COLUMNS} VALUES (:pk, {EVENT_VALUES})"
"""An event of session ``:pk``, whose ``event_count`` the same statement or transaction counts (see
:func:`terminate`)."""
COUNTED_EVENT = (
    "WITH s AS (UPDATE sessions SET event_count = event_count + 1 WHERE id = :pk RETURNING id, event_count), "
    f"e AS (INSERT INTO events {EVENT_COLUMNS} SELECT id, {EVENT_VALUES} FROM s) "
    "SELECT event_count FROM s"
)
"""An event of session ``:pk``, counted: the update locks the session's row before the event goes in (every writer
of a session's events counts them under that lock, migration 0011); the session's new event count (no row if the
session is gone)."""
DISCARD_SESSION = (
    f"WITH s AS (DELETE FROM sessions WHERE {SCOPE} AND status = 'running' AND NOT sealed "
    "AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE session_pk = sessions.id) RETURNING id) "
    "DELETE FROM working_items WHERE session_pk IN (SELECT id FROM s)"
)


def record_event(made_from: bool) -> str:
    """An event of a session, counted under its row lock (no row if the session is missing or still spawning; with
    ``made_from``, also if its record was created at another time than ``:made_from``: the session the caller worked
    on was deleted and its id spawned again since): the session's id and its new event count."""
    of_incarnation = " AND created_at = CAST(:made_from AS timestamptz)" if made_from else ""
    return (
        f"WITH s AS (UPDATE sessions SET event_count = event_count + 1 WHERE {SCOPE} AND {COMPLETE}{of_incarnation} "
        "RETURNING id, event_count), "
        f"e AS (INSERT INTO events {EVENT_COLUMNS} SELECT id, {EVENT_VALUES} FROM s) "
        "SELECT id, event_count FROM s"
    )


RECORD_EVENT = record_event(made_from=False)
"""An event of whichever session holds the id (:func:`record_event`)."""
RECORD_EVENT_OF_INCARNATION = record_event(made_from=True)
"""An event of the session created at ``:made_from`` only (:func:`record_event`)."""

PRUNE_EVENTS = (
    "WITH n AS (SELECT mcpmem_prune_events(:pk, :n, :keep_last, :cutoff) AS n) "
    "UPDATE sessions SET event_count = n.n FROM n WHERE id = :pk"
)
"""Apply event bounds to the session ``:pk`` (its row locked by this transaction) holding ``:n`` events, and keep
its count exact (``mcpmem_prune_events``, migration 0011)."""


def json_text(value: Any) -> str:
    """A JSON (or JSONB) parameter's text."""
    return orjson.dumps(value).decode()


def event_params(ev: EventRecord) -> dict[str, Any]:
    """The parameters of :data:`EVENT_VALUES` (built as the event is written: its duration counts the store's
    own work)."""
    return {
        "ev_t": ev.event_type,
        "ev_at": to_datetime(ev.at),
        "ev_d": ev.measured_ms(),
        "ev_o": ev.outcome,
        "ev_detail": orjson.dumps(dict(ev.detail), default=str).decode(),
    }


def session_params(scope: Scope, agent_type_id: UUID | None, metadata: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The parameters of :data:`INSERT_SESSION`."""
    return {
        **scope_params(scope),
        "t": agent_type_id,
        "now": to_datetime(now),
        "m": json_text(dict(metadata)),
    }


# -- lifecycle transitions ----------------------------------------------------------------------------------
LOCK_FOR_TERMINATE = f"SELECT id, status, terminate_result, sealed, seal_token FROM sessions WHERE {SCOPE} FOR UPDATE"


def terminate(episode_sql: str) -> str:
    """Episode (the CTE ``episode_sql`` of :func:`insert_episode`, if any), session and event in one statement; the
    session unfinished (``:u``) if a terminate under a seal's token recorded it (it marks it finished after its last
    step)."""
    return (
        f"WITH {episode_sql + ', ' if episode_sql else ''}"
        "upd AS (UPDATE sessions SET status = 'terminated', sealed = true, updated_at = :ev_at, "
        "terminated_at = :ev_at, episode_id = :eid, terminate_result = CAST(:r AS jsonb), "
        "terminate_unfinished = :u, event_count = event_count + 1 WHERE id = :pk) "
        f"{INSERT_EVENT}"
    )


DELETE_CHECKPOINT_WITH_EVENT = (
    f"WITH s AS (SELECT id FROM sessions WHERE {SCOPE} AND {COMPLETE} FOR NO KEY UPDATE), "
    "d AS (DELETE FROM checkpoints WHERE session_pk = (SELECT id FROM s) AND checkpoint_id = :cid "
    "RETURNING session_pk, keep), "
    "upd AS (UPDATE sessions SET event_count = event_count + 1, "
    "unkept_checkpoints = unkept_checkpoints - CASE WHEN d.keep THEN 0 ELSE 1 END "
    "FROM d WHERE sessions.id = d.session_pk), "
    f"ev AS (INSERT INTO events {EVENT_COLUMNS} SELECT session_pk, {EVENT_VALUES} FROM d) SELECT session_pk FROM d"
)
"""One statement: the session's row locked first (as every writer of its checkpoints and events locks it: a pause
pruning the same checkpoint waits, or is waited for, and no deadlock), the checkpoint goes, and only if it did the
event is recorded and both counts follow."""
COUNT_SESSIONS = (
    "UPDATE sessions s SET "
    "unkept_checkpoints = (SELECT count(*) FROM checkpoints c WHERE c.session_pk = s.id AND NOT c.keep), "
    "event_count = (SELECT count(*) FROM events e WHERE e.session_pk = s.id) "
    "WHERE s.id = ANY (CAST(:pks AS bigint[]))"
)
"""The retention counts of sessions ``:pks`` set from their rows (an import's, written in its own transaction)."""


def state_text(items: Mapping[str, Item] | PackedState) -> bytes:
    """A checkpoint's ``state`` column as JSON: ``{"key": ["<value JSON text>", expires_at], ...}``."""
    if isinstance(items, PackedState):
        return items.text.encode()
    return orjson.dumps({key: [it.value, it.expires_at] for key, it in items.items()})


def state_items(state: Mapping[str, Any]) -> dict[str, Item]:
    """The items of a checkpoint's ``state`` column (decoded by the driver)."""
    return {key: Item(value, expires_at) for key, (value, expires_at) in state.items()}


# -- episodes ----------------------------------------------------------------------------------------------
INSERT_EPISODE = (
    "ins_ep AS (INSERT INTO episodes (episode_id, project_id, agent_instance_id, session_id, task_type, "
    "task_description, outcome, outcome_details, lessons_learned, importance_score, context_summary, "
    "metadata, created_at, embedding, embedding_model) VALUES (:ep_id, :ep_p, :ep_a, :ep_s, :ep_tt, :ep_td, "
    ":ep_o, :ep_od, CAST(:ep_ll AS jsonb), :ep_imp, :ep_cs, CAST(:ep_m AS jsonb), :ep_at, "
    "CAST(:ep_emb AS vector), CAST(:ep_model AS text)))"
)
"""A CTE inserting an episode (parameters: :func:`episode_params`)."""


def episode_params(ep: Episode, emb: str | None, model: str | None) -> dict[str, Any]:
    """The parameters of :data:`INSERT_EPISODE`; ``emb`` in pgvector's text form. The model's name is kept only
    with a vector."""
    return {
        "ep_id": ep.episode_id,
        "ep_p": ep.project_id,
        "ep_a": ep.agent_instance_id,
        "ep_s": ep.session_id,
        "ep_tt": ep.task_type,
        "ep_td": ep.task_description,
        "ep_o": ep.outcome.value,
        "ep_od": ep.outcome_details,
        "ep_ll": json_text(ep.lessons_learned),
        "ep_imp": ep.importance_score,
        "ep_cs": ep.context_summary,
        "ep_m": json_text(ep.metadata),
        "ep_at": ep.created_at,
        "ep_emb": emb,
        "ep_model": model if emb is not None else None,
    }


LOCK_SAME_EPISODE = "SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"
"""Writers of one episode (the key names it) queue on this lock, held to commit: of two concurrent repeats, the
second finds the first."""
_NEAREST = (
    "SELECT episode_id, 1.0 - (embedding <=> CAST(:qv AS vector)) AS cos FROM episodes "
    "WHERE project_id = :p AND task_type = :tt AND outcome = :o AND embedding IS NOT NULL{} "
    "ORDER BY (embedding <=> CAST(:qv AS vector)) + 0 LIMIT 1"
)


def nearest_episode(of_model: bool, of_agent: bool) -> str:
    """The project's episode of one task type and outcome nearest to ``:qv``, and its cosine; among the vectors of
    the model ``:model`` if ``of_model``, and the episodes of the agent ``:a`` if ``of_agent``. Exact (no index): one
    task type and outcome of one project, a B-tree's rows."""
    model = " AND embedding_model = CAST(:model AS text)" if of_model else ""
    agent = " AND agent_instance_id = :a" if of_agent else ""
    return _NEAREST.format(model + agent)


SET_EMBEDDING = (
    "UPDATE episodes SET embedding = CAST(:emb AS vector), embedding_model = CAST(:model AS text) "
    "WHERE project_id = :p AND episode_id = :e "
    "AND (embedding IS NULL OR embedding_model IS DISTINCT FROM CAST(:model AS text))"
)
PING = (
    "SELECT current_setting('server_version') AS server, "
    "(SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector, "
    "(SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM episodes) AS episodes, "
    "(SELECT count(*) FROM episodes WHERE embedding IS NULL) AS missing"
)

__all__ = [
    "COUNTED_EVENT",
    "COUNT_SESSIONS",
    "DELETE_CHECKPOINT_WITH_EVENT",
    "DELETE_ITEM",
    "DIALECT",
    "DISCARD_SESSION",
    "EVENT_COLUMNS",
    "EVENT_VALUES",
    "INSERT_EPISODE",
    "INSERT_EVENT",
    "INSERT_SESSION",
    "INSERT_SPAWNING",
    "LIST_KEYS",
    "LIVE_COUNT",
    "LOCK_FOR_TERMINATE",
    "LOCK_SAME_EPISODE",
    "LOCK_WRITABLE",
    "PING",
    "PURGE_EXPIRED",
    "RECORD_EVENT",
    "RECORD_EVENT_OF_INCARNATION",
    "SET_EMBEDDING",
    "SET_ITEM",
    "SNAPSHOT",
    "UPSERT_ITEMS",
    "clear_items",
    "episode_params",
    "event_params",
    "item_arrays",
    "json_text",
    "nearest_episode",
    "scope_params",
    "session_params",
    "state_items",
    "state_text",
    "terminate",
    "with_event",
]
