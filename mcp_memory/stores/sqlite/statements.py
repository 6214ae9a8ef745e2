"""The SQLite store's SQL text and the steps its direct transactions run on the connection's thread (plain
``sqlite3``, named parameters), and how values cross its driver (:data:`DIALECT`)."""

from __future__ import annotations

import json
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from mcp_memory.errors import MemoryServiceError
from mcp_memory.models import CheckpointInfo, Item, PackedState, Scope, SessionStatus, to_datetime
from mcp_memory.stores.ports import EventRecord, Limits, respawned
from mcp_memory.stores.sql.dialect import Dialect, as_is
from mcp_memory.stores.sql.queries import CHECKPOINT_FIELDS, COMPLETE, LIVE, SCOPE, SESSION_PK
from mcp_memory.stores.sql.rules import check_fits, check_writable, restore_overflows
from mcp_memory.stores.sqlite.schema import encode_state

DIALECT = Dialect(
    read_json=json.loads,
    read_time=to_datetime,
    read_epoch=as_is,
    write_uuid=str,
    write_time=as_is,
    before_bound="AND (created_at < :b_at OR (created_at = :b_at AND id < :b_id))",
    # SQLite has no starts_with; substr and length count characters (code points) of UTF-8 text.
    prefix_match="substr({column}, 1, length(:prefix)) = :prefix",
)
scope_params = DIALECT.scope_params

# A checkpoint's description and its key (the paging bound): every column but its state.
CHECKPOINT_ROW_FIELDS = ("id", *CHECKPOINT_FIELDS)
CheckpointRow = namedtuple("CheckpointRow", CHECKPOINT_ROW_FIELDS)  # type: ignore[misc]
CHECKPOINT_ROW_COLUMNS = ", ".join(CHECKPOINT_ROW_FIELDS)
WRITABLE_SESSION = (
    "s.project_id = :p AND s.agent_instance_id = :a AND s.session_id = :s AND s.sealed = 0 AND s.status != 'terminated'"
    " AND s.spawn_until IS NULL"
)
INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, label, content_hash, "
    "metadata, state, keep, snapshot) SELECT s.id, :cid, :at, :n, :b, :label, :h, :m, :state, :keep, :snap "
    f"FROM sessions s WHERE {WRITABLE_SESSION} "
    "ON CONFLICT (session_pk, checkpoint_id) DO NOTHING RETURNING session_pk"
)
NEWER_CHECKPOINT = (
    f"SELECT 1 FROM checkpoints WHERE session_pk = {SESSION_PK} AND created_at > :at AND created_at <= :until LIMIT 1"
)
"""Whether the session has a checkpoint dated after ``:at`` (a pause's stamp, checked under the write lock), by no
more than ``records.OVERTAKEN_WITHIN_SECONDS`` (``:until``)."""
SET_SQL = f"""
INSERT INTO working_items (session_pk, key, value, expires_at)
SELECT s.id, :k, :v, :e FROM sessions s
WHERE {WRITABLE_SESSION}
  AND (EXISTS (SELECT 1 FROM working_items WHERE session_pk = s.id AND key = :k AND {LIVE})
       OR (SELECT COUNT(*) FROM working_items WHERE session_pk = s.id AND {LIVE}) < :max)
ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
RETURNING 1
"""


def writable_pk(scope: Scope, row: tuple[Any, ...] | None) -> int:
    """A session's primary key from its ``(id, status, sealed)`` row, or the error that says why it takes no
    writes."""
    check_writable(scope, None if row is None else (row[1], row[2]))
    assert row is not None
    return int(row[0])


def is_incarnation(created_at: float, made_from: datetime | None) -> bool:
    """Whether a session record created at ``created_at`` (as stored) is the one ``made_from`` notes (None: any).
    Compared here, as the datetime the record is read as, not in SQL: the note is that datetime, to the microsecond,
    and the stored epoch seconds need not round-trip through it exactly."""
    return made_from is None or to_datetime(created_at) == made_from


def writable_pk_sync(db: sqlite3.Connection, scope: Scope, made_from: datetime | None = None, call: str = "") -> int:
    """The session's primary key, or the error that says why it takes no writes; given ``made_from``, also
    ``Respawned`` if its record was created at another time (the session ``call`` read was deleted and its id spawned
    again since: :func:`is_incarnation`)."""
    row = db.execute(
        f"SELECT id, status, sealed, created_at FROM sessions WHERE {SCOPE} AND {COMPLETE}", scope_params(scope)
    ).fetchone()
    if row is not None and not is_incarnation(row[3], made_from):
        raise respawned(scope.session_id, call)
    return writable_pk(scope, row)


FOUND_SESSION = f"SELECT status, created_at FROM sessions WHERE {SCOPE} AND {COMPLETE}"


def found_session_sync(db: sqlite3.Connection, scope: Scope) -> tuple[str, datetime] | None:
    """The session's status and its record's creation time (the datetime :func:`is_incarnation` compares), as the
    transaction on ``db`` sees them; None: no session (or one still spawning)."""
    row = db.execute(FOUND_SESSION, scope_params(scope)).fetchone()
    return None if row is None else (row[0], to_datetime(row[1]))


_T = TypeVar("_T")


def noting_refusals(scope: Scope, work: Callable[[sqlite3.Connection], _T]) -> Callable[[sqlite3.Connection], _T]:
    """``work``, a write transaction's body on ``db``, whose refusals (``MemoryServiceError``) note the creation time
    of the session record that transaction sees, unless they note one already: with the write lock held since its
    BEGIN IMMEDIATE, that is the record the refusal was about, however much later this read comes. Only on the way
    out of a refusal: a call that succeeds reads nothing more."""

    def run(db: sqlite3.Connection) -> _T:
        try:
            return work(db)
        except MemoryServiceError as exc:
            if exc.session_created_at is None:
                found = found_session_sync(db, scope)
                exc.of_session(None if found is None else found[1])
            raise

    return run


INSERT_EVENT = (
    "INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail) "
    "VALUES (:pk, :t, :at, :d, :o, :detail)"
)
INSERT_SESSION = (
    "INSERT INTO sessions (project_id, agent_instance_id, session_id, agent_type_id, status, created_at, updated_at, "
    "metadata) VALUES (:p, :a, :s, :t, 'running', :now, :now, :m) ON CONFLICT DO NOTHING RETURNING *"
)
INSERT_SPAWNING = (
    "INSERT INTO sessions (project_id, agent_instance_id, session_id, agent_type_id, status, created_at, updated_at, "
    "metadata, spawn_token, spawn_until) VALUES (:p, :a, :s, :t, 'running', :now, :now, :m, :tok, :until) "
    "ON CONFLICT DO NOTHING RETURNING *"
)
SET_STATUS = "UPDATE sessions SET status = :status, updated_at = :now WHERE id = :pk"
# A record of a transition ordered in working memory (Redis): the status moves only if its order is above the last
# ordered one recorded (a late record of an older transition leaves the newer one's status); the order is kept.
_NEWER = "status_order IS NULL OR :order > status_order"
SET_ORDERED_STATUS = (
    f"UPDATE sessions SET status = CASE WHEN {_NEWER} THEN :status ELSE status END, "
    f"status_order = CASE WHEN {_NEWER} THEN :order ELSE status_order END, updated_at = :now WHERE id = :pk"
)


def event_params(session_pk: int, ev: EventRecord) -> dict[str, Any]:
    # Built as the event is written: its measured duration counts the store's own work.
    return {
        "pk": session_pk,
        "t": ev.event_type,
        "at": ev.at,
        "d": ev.measured_ms(),
        "o": ev.outcome,
        "detail": json.dumps(dict(ev.detail), default=str),
    }


def set_status_sync(
    db: sqlite3.Connection, session_pk: int, status: SessionStatus, event: EventRecord, order: int | None = None
) -> None:
    """Set the session's status (with ``order``: unless an ordered transition after it is recorded) and record the
    event."""
    params = {"status": status.value, "now": event.at, "pk": session_pk}
    if order is None:
        db.execute(SET_STATUS, params)
    else:
        db.execute(SET_ORDERED_STATUS, {**params, "order": order})
    db.execute(INSERT_EVENT, event_params(session_pk, event))


UPSERT_ITEM = (
    "INSERT INTO working_items (session_pk, key, value, expires_at) VALUES (:pk, :k, :v, :e) "
    "ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)


def item_rows(session_pk: int, items: Mapping[str, Item], now: float) -> list[dict[str, Any]]:
    """The rows of the items still live at ``now`` (expired ones are skipped)."""
    return [
        {"pk": session_pk, "k": key, "v": item.value, "e": item.expires_at}
        for key, item in items.items()
        if item.expires_at is None or item.expires_at > now
    ]


LIVE_COUNT = f"SELECT COUNT(*) FROM working_items WHERE session_pk = :pk AND {LIVE}"
"""How many of the session ``:pk``'s items are live at ``:now``."""


def restore_sync(
    db: sqlite3.Connection, pk: int, items: Mapping[str, Item], clear: bool, now: float, limits: Limits
) -> int:
    """``restore``'s writes in the caller's transaction (which rolls back on ``TooLarge``). Its clear is on resume's
    path: it deletes under the connection's ``secure_delete`` (FAST), with no PRAGMA of its own."""
    if clear:
        check_fits(items, now, limits)
        db.execute("DELETE FROM working_items WHERE session_pk = :pk", {"pk": pk})
    rows = item_rows(pk, items, now)
    db.executemany(UPSERT_ITEM, rows)
    if not clear:
        (live,) = db.execute(LIVE_COUNT, {"pk": pk, "now": now}).fetchone()
        if live > limits.max_keys:
            raise restore_overflows(limits)
    return len(rows)


def checkpoint_params(scope: Scope, info: CheckpointInfo, items: Mapping[str, Item] | PackedState) -> dict[str, Any]:
    """The parameters of :data:`INSERT_CHECKPOINT` (a packed state is stored as its text, as it is)."""
    return {
        **scope_params(scope),
        "cid": info.checkpoint_id,
        "at": info.created_at.timestamp(),
        "n": info.keys_count,
        "b": info.bytes,
        "label": info.label,
        "h": info.content_hash,
        "m": json.dumps(info.metadata),
        "state": items.text if isinstance(items, PackedState) else encode_state(items),
        "keep": int(info.keep),
        "snap": info.snapshot,
    }
