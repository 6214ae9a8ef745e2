"""Checkpoint and event retention and checkpoint deletion, as both SQL stores run them.

Pruning runs in the pause's transaction, after its checkpoint went in and while the session's row is held by that
transaction (SQLite: the single writer; Postgres: the row lock the insert took), so that two concurrent pauses of one
session cannot each prune without seeing the other's checkpoint: a session never holds more than the policy allows,
except for one checkpoint more when the pause's own is dated before the session's newest (a prune spares both).
"""

from __future__ import annotations

from typing import Any

from mcp_memory.stores.ports import Retention
from mcp_memory.stores.sql.dialect import Dialect
from mcp_memory.stores.sql.queries import NEWEST_FIRST, SCOPE

NEWEST = f"(SELECT id FROM checkpoints WHERE session_pk = :pk ORDER BY {NEWEST_FIRST} LIMIT 1)"
"""The session's newest checkpoint, never pruned (whether kept or not)."""


def prune_statement(
    d: Dialect, retention: Retention | None, session_pk: int, now: float, offset_all: str, own: str
) -> tuple[str, dict[str, Any]] | None:
    """The DELETE that applies ``retention`` to the session ``session_pk`` at ``now`` and its parameters, or None if
    the policy keeps everything. A checkpoint goes if it is not kept, not the newest, not ``own`` (the id of the
    checkpoint the pause has just written: a checkpoint dated after it, imported from a machine whose clock runs
    ahead or written before the clock stepped back, would otherwise leave it the oldest, pruned by its own pause),
    and either beyond the newest ``keep_last`` checkpoints not kept or older than ``max_age_seconds``. ``offset_all``
    is the dialect's way of saying "every row after the first :n" (SQLite: ``LIMIT -1 OFFSET :n``; Postgres:
    ``OFFSET :n``)."""
    if retention is None or (retention.keep_last is None and retention.max_age_seconds is None):
        return None
    params: dict[str, Any] = {"pk": session_pk, "own": own}
    reasons: list[str] = []
    if retention.keep_last is not None:
        params["n"] = retention.keep_last
        reasons.append(
            "id IN (SELECT id FROM checkpoints WHERE session_pk = :pk AND NOT keep "
            f"ORDER BY {NEWEST_FIRST} {offset_all})"
        )
    if retention.max_age_seconds is not None:
        params["cutoff"] = d.write_time(now - retention.max_age_seconds)
        reasons.append("created_at < :cutoff")
    sql = (
        f"DELETE FROM checkpoints WHERE session_pk = :pk AND NOT keep AND id <> {NEWEST} AND checkpoint_id <> :own "
        f"AND ({' OR '.join(reasons)})"
    )
    return sql, params


NEWEST_EVENT = "(SELECT MAX(id) FROM events WHERE session_pk = :pk)"
"""The session's newest event (the pause's own), never pruned."""

PROTECTED_EVENT = "(event_type IN ('spawn', 'terminate') AND outcome = 'ok')"
"""The events that date a session's life: they count towards the bound but are never pruned."""


def prune_events_statement(
    d: Dialect, retention: Retention | None, session_pk: int, now: float, offset_all: str
) -> tuple[str, dict[str, Any]] | None:
    """The DELETE that applies ``retention``'s event bounds to the session ``session_pk`` at ``now``, or None if the
    policy keeps every event. An event goes if it is not protected (:data:`PROTECTED_EVENT`), not the newest, and
    either beyond the session's newest ``events_keep_last`` events or older than ``events_max_age_seconds``. Its
    parameters are named apart from :func:`prune_statement`'s so that Postgres can run both as one statement."""
    if retention is None or (retention.events_keep_last is None and retention.events_max_age_seconds is None):
        return None
    params: dict[str, Any] = {"pk": session_pk}
    reasons: list[str] = []
    if retention.events_keep_last is not None:
        params["en"] = retention.events_keep_last
        skip = offset_all.replace(":n", ":en")  # the dialect's phrase, with this statement's parameter
        reasons.append(f"id IN (SELECT id FROM events WHERE session_pk = :pk ORDER BY id DESC {skip})")
    if retention.events_max_age_seconds is not None:
        params["ecutoff"] = d.write_time(now - retention.events_max_age_seconds)
        reasons.append("at < :ecutoff")
    sql = (
        f"DELETE FROM events WHERE session_pk = :pk AND NOT {PROTECTED_EVENT} AND id <> {NEWEST_EVENT} "
        f"AND ({' OR '.join(reasons)})"
    )
    return sql, params


AGED_CHECKPOINTS = (
    "SELECT c.{column} FROM checkpoints c WHERE NOT c.keep AND c.created_at < :cutoff {within} AND c.id <> "
    # NEWEST's order: its unqualified columns are the inner table's, n.
    f"(SELECT n.id FROM checkpoints n WHERE n.session_pk = c.session_pk ORDER BY {NEWEST_FIRST} LIMIT 1) "
    "LIMIT :limit"
)
"""Up to ``:limit`` checkpoints older than ``:cutoff`` that the age bound prunes across sessions (``{column}``: what
of each is selected, ``id`` or ``session_pk``; ``{within}``: an extra condition on ``c``, or nothing): never kept,
never a session's newest (:data:`NEWEST`'s order), as :func:`prune_statement` spares them.
For the periodic sweep, which reaches sessions no pause writes any more (terminated or abandoned). It finds them
through an index on ``created_at`` (SQLite: ``checkpoints_aged``, whose predicate is ``NOT keep`` as written here;
Postgres: ``checkpoints_newest``)."""

AGED_EVENTS = (
    f"SELECT e.{{column}} FROM events e WHERE e.at < :cutoff {{within}} AND NOT {PROTECTED_EVENT} "
    "AND e.id <> (SELECT MAX(n.id) FROM events n WHERE n.session_pk = e.session_pk) LIMIT :limit"
)
"""Up to ``:limit`` events older than ``:cutoff`` that the age bound prunes across sessions, with the exceptions of
:func:`prune_events_statement` (protected events and each session's newest); ``{column}`` and ``{within}`` as in
:data:`AGED_CHECKPOINTS`. Found through the partial index ``events_aged`` on ``at`` (both stores), whose predicate is
``NOT`` :data:`PROTECTED_EVENT` as written here: SQLite uses a partial index only for a query that repeats its
predicate, so the two change together (a test explains the sweep's statements)."""


DELETE_CHECKPOINT = (
    f"DELETE FROM checkpoints WHERE session_pk = (SELECT id FROM sessions WHERE {SCOPE} AND spawn_until IS NULL) "
    "AND checkpoint_id = :cid RETURNING session_pk"
)
"""Delete one checkpoint of one session (none if the id is another session's or unknown)."""
