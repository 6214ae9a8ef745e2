"""Pause and resume of a session whose working memory is in Postgres: each one ``SELECT`` of a server-side function
(``mcpmem_pause``, ``mcpmem_resume``; migrations 0008, 0011, 0017, 0018, 0020 and 0025), sent on the asyncpg
connection itself in autocommit.

One message each way (a call that finds the session's row locked, rare, is sent again: see :data:`PAUSE`): the call is
its own transaction (no BEGIN or COMMIT round trip), prepared once per connection
by asyncpg's statement cache (Bind, Execute and Sync in one write), and its arguments go as typed binary values (no
SQLAlchemy compilation, no result wrapping). Inside, the function locks the session's row first, and each of its
statements takes a snapshot after that lock, so a pause sees every write, pause and resume committed before it (the
retention of two concurrent pauses) and a resume every key it must clear. The state never travels: a pause
aggregates it from the live rows into the checkpoint's JSONB, a resume restores it from there (``jsonb_each``).

- :data:`PAUSE`: snapshot the live items into the checkpoint (state, count, size, hash), prune by retention, mark
  the session paused and record the event; or, if another transaction holds the session's row (the function takes
  it ``SKIP LOCKED``: what that transaction commits would be snapshotted at a time read before it) or the session has
  a checkpoint dated after this one (another process's pause, dated later, took the lock first), nothing: the caller
  dates the pause again after :data:`LOCK_SESSION` in a transaction and sends it without that check.
- :data:`RESUME`: restore the checkpoint (by id, or the newest), check the key limit, mark the session running,
  record the event and prune events by retention; nothing is written if the limit or the session refuses. If another
  transaction holds the session's row, nothing either: the caller reads its clock again after :data:`LOCK_SESSION`
  and sends it without ``SKIP LOCKED``, so the keys live at the restore's time are those live once it holds the
  lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from mcp_memory.models import Scope
from mcp_memory.stores.ports import Retention
from mcp_memory.stores.postgres.two_step import event_args, event_retention_args, retention_args, scope_args

PAUSE = (
    "SELECT o_done AS done, o_keys AS keys_count, o_bytes AS bytes, o_hash AS content_hash, o_overtaken AS overtaken, "
    "o_status AS status, o_sealed AS sealed, o_made AS made "
    "FROM mcpmem_pause($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
)
"""The pause. One row: ``overtaken`` (with ``$19``) if another transaction holds the session's row or the session has a
checkpoint dated after ``$6``; else ``done``
false if the session is missing, takes no writes, or already has a checkpoint of this id (nothing written), else
the checkpoint's count, size and hash. ``status``, ``sealed`` and ``made`` are the session's status, seal and
record's creation time as the function read them (NULL: no session; migration 0025): which of those refusals it is,
and the session it refused."""

LOCK_SESSION = (
    "SELECT id FROM sessions WHERE project_id = $1 AND agent_instance_id = $2 AND session_id = $3 FOR NO KEY UPDATE"
)
"""The session's row locked as :data:`PAUSE` and :data:`RESUME` lock it, in a transaction: a pause or resume timed after
this holds the lock."""

RESUME = (
    "SELECT o_status AS status, o_sealed AS sealed, o_checkpoint AS checkpoint_id, o_created AS created_at, "
    "o_keys AS keys_count, o_bytes AS bytes, o_label AS label, o_hash AS content_hash, o_metadata AS metadata, "
    "o_keep AS keep, o_restored AS restored, o_kept AS kept, o_done AS done, o_waited AS waited, o_made AS made "
    "FROM mcpmem_resume($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
)
"""The resume of checkpoint ``$5`` (NULL: the newest): with ``$6`` (clear) working memory becomes the checkpoint's
live items, else they are written over the others, if the result fits ``$7`` keys; then the session's events are
pruned by ``$13``/``$14`` as a pause prunes them (migration 0011). One row: the session's status, seal and record's
creation time (``made``, migration 0025; NULL: no session), the checkpoint (NULL: none), the items restored, the
other live keys kept, and ``done`` (false: nothing written); or, with ``$15``, only ``waited`` if another transaction
holds the session's row (migration 0018)."""


def pause_args(
    scope: Scope,
    now: float,
    checkpoint_id: str,
    created_at: datetime,
    label: str | None,
    metadata: str,
    keep: bool,
    event: Mapping[str, object],
    retention: Retention | None,
    check_newer: bool,
) -> tuple[object, ...]:
    """The arguments of :data:`PAUSE`; ``metadata`` as JSON text, ``event`` from ``event_params``; ``check_newer``:
    write nothing if another transaction holds the session's row or it has a checkpoint dated after ``created_at``."""
    return (
        *scope_args(scope),
        now,
        checkpoint_id,
        created_at,
        label,
        metadata,
        keep,
        *event_args(event),
        *retention_args(retention, created_at.timestamp()),
        check_newer,
    )


def resume_args(
    scope: Scope,
    now: float,
    checkpoint_id: str | None,
    clear: bool,
    max_keys: int,
    event: Mapping[str, object],
    retention: Retention | None,
    skip_locked: bool,
) -> tuple[object, ...]:
    """The arguments of :data:`RESUME`; ``event`` from ``event_params``, its event bounds counted from ``now``;
    ``skip_locked``: write nothing if another transaction holds the session's row."""
    return (*scope_args(scope), now, checkpoint_id, clear, max_keys, *event_args(event),
            *event_retention_args(retention, now), skip_locked)  # fmt: skip


__all__ = ["LOCK_SESSION", "PAUSE", "RESUME", "pause_args", "resume_args"]
