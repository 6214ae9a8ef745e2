"""The durable half of a pause and a resume whose working memory is elsewhere (Redis, the two-step strategy): the
checkpoint's record, its read, and the resume's record, each one statement sent on the asyncpg connection itself in
autocommit (``PostgresConnection._driver``): one message, its own transaction (no BEGIN or COMMIT round trip),
prepared once per connection by asyncpg's statement cache, its arguments typed binary values (no SQLAlchemy
compilation, no result wrapping).

- :data:`RECORD_PAUSE`: a ``SELECT`` of ``mcpmem_record_pause`` (migrations 0010, 0011, 0013, 0016, 0024): lock the
  writable session, if it is the one the snapshot was read from (its creation time, as Redis notes it), insert the
  checkpoint (with the nonce of the Redis snapshot it was made from), mark the session paused unless a transition of
  a later order is recorded (the snapshot's order, ``stores/redis/copies.py``), record the event, prune by retention.
  A function, because the prune must read a snapshot taken after the lock (see the migration); ``false`` if nothing
  was written.
- :data:`RECORD_RESUME`: a ``SELECT`` of ``mcpmem_record_resume`` (migrations 0011, 0016, 0024): lock the session's
  row, mark it running (unless a transition of a later order is recorded), record the event and prune events by
  retention if it takes writes and is the session the checkpoint was read from; returns its status and seal (NULL:
  no session) and whether it is another session. A function for the pause's reason: the prune must read a snapshot
  taken after the lock.
- :data:`PACKED_CHECKPOINT` / :data:`NEWEST_PACKED_CHECKPOINT`: a checkpoint with its state as JSON text, whether its
  session is sealed, and the session's creation time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime

from mcp_memory.models import CheckpointInfo, Scope, to_datetime
from mcp_memory.stores.ports import Retention

RECORD_PAUSE = (
    "SELECT mcpmem_record_pause($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, "
    "$19, $20, $21, $22, $23, $24, $25) AS done"
)

RECORD_RESUME = (
    "SELECT o_status AS status, o_sealed AS sealed, o_other AS other "
    "FROM mcpmem_record_resume($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
"""Lock the session's row; if it takes writes and is the session the checkpoint was read from, mark it running
(unless a transition of a later order is recorded), record the event and prune events by retention
(``mcpmem_record_resume``, migration 0024). Returns its status and seal either way (NULL: no session), and whether
the row is another session than the one the checkpoint was read from (then nothing was written)."""

# The session's row read once (its seal), and its checkpoint picked by a LATERAL subquery: a nested loop on the
# session's pk, so the newest is the first entry of the index on (session_pk, created_at DESC, id DESC), read alone.
# (A plain join let the planner read all the session's checkpoints and sort them, converting every state to text:
# 30 to 50 ms per resume at 1,000 keys.) Metadata and state leave as text, decoded (metadata) or handed on (state) by
# the caller, whatever codecs the connection has.
_PACKED = (
    "SELECT c.checkpoint_id, c.created_at, c.keys_count, c.bytes, c.label, c.content_hash, "
    "CAST(c.metadata AS text) AS metadata, c.keep, c.snapshot, CAST(c.state AS text) AS state, "
    "s.sealed OR s.status = 'terminated' AS session_sealed, s.created_at AS made_from "
    "FROM sessions s CROSS JOIN LATERAL (SELECT * FROM checkpoints WHERE session_pk = s.id {}) AS c "
    "WHERE s.project_id = $1 AND s.agent_instance_id = $2 AND s.session_id = $3"
)
PACKED_CHECKPOINT = _PACKED.format("AND checkpoint_id = $4")
NEWEST_PACKED_CHECKPOINT = _PACKED.format("ORDER BY created_at DESC, id DESC LIMIT 1")


@functools.cache
def packed_reads(state_below: int | None) -> tuple[str, str]:
    """The newest checkpoint's read and one id's; with ``state_below``, the state only for a checkpoint of fewer keys
    or one that names no snapshot (a larger one's Redis copy may be taken instead: no jsonb to text conversion, no
    100 kB to send; one without a snapshot has no copy to take)."""
    if state_below is None:
        return NEWEST_PACKED_CHECKPOINT, PACKED_CHECKPOINT
    state = (
        f"CASE WHEN c.keys_count < {int(state_below)} OR c.snapshot IS NULL THEN CAST(c.state AS text) ELSE '' END "
        "AS state"
    )
    newest, by_id = (
        q.replace("CAST(c.state AS text) AS state", state) for q in (NEWEST_PACKED_CHECKPOINT, PACKED_CHECKPOINT)
    )
    return newest, by_id


def scope_args(scope: Scope) -> tuple[object, ...]:
    """A session's scope, the first three arguments of every statement of this module and of ``transitions``."""
    return (scope.project_id, scope.agent_instance_id, scope.session_id)


def event_args(event: Mapping[str, object]) -> tuple[object, ...]:
    """An event's arguments, in the order of every statement that records one, from ``statements.event_params``."""
    return (event["ev_t"], event["ev_at"], event["ev_d"], event["ev_o"], event["ev_detail"])


def retention_args(retention: Retention | None, at: float) -> tuple[object, ...]:
    """A pause's retention, the last four arguments of both pause functions: checkpoints to keep and their oldest
    time, events to keep and theirs (None: no bound of that kind). Both ages count from the checkpoint's time
    ``at``, as the SQLite store's prune does."""
    if retention is None:
        return (None, None, None, None)
    max_age, events_age = retention.max_age_seconds, retention.events_max_age_seconds
    return (
        retention.keep_last,
        None if max_age is None else to_datetime(at - max_age),
        retention.events_keep_last,
        None if events_age is None else to_datetime(at - events_age),
    )


def event_retention_args(retention: Retention | None, at: float) -> tuple[object, ...]:
    """A resume's retention, the last two arguments of both resume functions: events to keep and their oldest time
    (None: no bound of that kind), the age counted from ``at``."""
    return retention_args(retention, at)[2:]


def record_resume_args(
    scope: Scope,
    event: Mapping[str, object],
    retention: Retention | None,
    order: int | None,
    made_from: datetime | None = None,
) -> tuple[object, ...]:
    """The arguments of :data:`RECORD_RESUME`; ``event`` from ``event_params``, its event bounds counted from the
    event's time; ``order``: the restore's order among the session's transitions (None: not ordered); ``made_from``:
    the creation time of the session the checkpoint was read from (None: whichever holds the id)."""
    at = event["ev_at"]
    assert isinstance(at, datetime)
    retention_bounds = event_retention_args(retention, at.timestamp())
    return (*scope_args(scope), *event_args(event), *retention_bounds, order, made_from)


def record_pause_args(
    scope: Scope,
    info: CheckpointInfo,
    metadata: str,
    state: bytes,
    event: Mapping[str, object],
    retention: Retention | None,
    order: int | None,
    made_from: datetime | None = None,
) -> tuple[object, ...]:
    """The arguments of :data:`RECORD_PAUSE`; ``metadata`` as JSON text, ``state`` as ``statements.state_text``;
    ``order``: the snapshot's order among the session's transitions (None: not ordered); ``made_from``: the creation
    time of the session the snapshot was read from (None: whichever holds the id)."""
    return (
        *scope_args(scope),
        info.checkpoint_id,
        info.created_at,
        info.keys_count,
        info.bytes,
        info.label,
        info.content_hash,
        metadata,
        state.decode(),
        len(state),
        info.keep,
        *event_args(event),
        *retention_args(retention, info.created_at.timestamp()),
        info.snapshot,
        order,
        made_from,
    )


__all__ = [
    "NEWEST_PACKED_CHECKPOINT",
    "PACKED_CHECKPOINT",
    "RECORD_PAUSE",
    "RECORD_RESUME",
    "event_args",
    "event_retention_args",
    "packed_reads",
    "record_pause_args",
    "record_resume_args",
    "retention_args",
    "scope_args",
]
