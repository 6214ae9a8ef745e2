"""Pause and resume of a session whose working memory is in Postgres, in as few round trips and as little
server work as the guarantees allow, sent on the asyncpg connection itself (prepared once per connection by
asyncpg's statement cache; no SQLAlchemy compilation or result wrapping on the hot path).

Each is a transaction of three messages: :func:`begin_locked` (BEGIN, a generic plan allowed, the session's row
locked: one simple-protocol message), then one statement doing the whole transition with a snapshot taken after
the lock (so it sees every change committed before it: the retention of two concurrent pauses, the keys a
resume clears), then COMMIT.

- :data:`PAUSE`: aggregate the session's live items into the checkpoint (state, count, size, hash), mark it
  paused, record the event and prune by retention.
- :func:`resume_sql`: restore the checkpoint from its JSONB state inside Postgres (``jsonb_each``: the state never
  travels to Python and back), check the key limit, mark the session running and record the event; nothing is
  written if the limit or the session refuses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mcp_memory.models import Scope, to_datetime
from mcp_memory.stores.ports import Retention
from mcp_memory.stores.postgres.statements import EVENT_COLUMNS, PAUSE_STATE

_SCOPE = "project_id = $1 AND agent_instance_id = $2 AND session_id = $3"
_LIVE = "(expires_at IS NULL OR expires_at > $4)"
_NEWEST_FIRST = "created_at DESC, id DESC"

PAUSE = (
    f"WITH s AS (SELECT id FROM sessions WHERE {_SCOPE} AND NOT sealed AND status <> 'terminated' "
    "AND spawn_until IS NULL), "
    f"w AS (SELECT key, value, expires_at FROM working_items WHERE session_pk = (SELECT id FROM s) AND {_LIVE}), "
    f"{PAUSE_STATE}, "
    "go AS (SELECT s.id FROM s WHERE NOT EXISTS (SELECT 1 FROM checkpoints WHERE session_pk = s.id "
    "AND checkpoint_id = $5)), "
    # Retention over the session's checkpoints and the new one (the newest id; its row is not visible to this
    # statement's reads): the rule of ``prune_statement``: never a kept one nor the newest; beyond the newest $15
    # not kept, or older than $16 (NULL: no bound of that kind). The new one may be among them (an older snapshot
    # committed after newer ones): then it is not stored, as if inserted and pruned.
    "allc AS (SELECT id, created_at, keep, false AS new FROM checkpoints WHERE session_pk = (SELECT id FROM go) "
    "UNION ALL SELECT 9223372036854775807, CAST($6 AS timestamptz), CAST($9 AS boolean), true FROM go), "
    f"ranked AS (SELECT id, keep, created_at, new, row_number() OVER (ORDER BY {_NEWEST_FIRST}) AS pos, "
    f"row_number() OVER (PARTITION BY keep ORDER BY {_NEWEST_FIRST}) AS kpos FROM allc), "
    "gone AS (SELECT id, new FROM ranked WHERE NOT keep AND pos > 1 "
    "AND (kpos > CAST($15 AS integer) OR created_at < CAST($16 AS timestamptz))), "
    "cp AS (INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, label, content_hash, "
    "metadata, state, state_bytes, keep) SELECT go.id, CAST($5 AS text), CAST($6 AS timestamptz), agg.n, agg.b, "
    "CAST($7 AS text), agg.h, CAST($8 AS jsonb), agg.state, octet_length(CAST(agg.state AS text)), "
    "CAST($9 AS boolean) FROM go, agg WHERE NOT EXISTS (SELECT 1 FROM gone WHERE new)), "
    "pr AS (DELETE FROM checkpoints WHERE id IN (SELECT id FROM gone WHERE NOT new)), "
    "upd AS (UPDATE sessions SET status = 'paused', updated_at = $11 WHERE id = (SELECT id FROM go)), "
    f"ev AS (INSERT INTO events {EVENT_COLUMNS} SELECT go.id, CAST($10 AS text), CAST($11 AS timestamptz), "
    "CAST($12 AS float8), CAST($13 AS text), CAST($14 AS jsonb) || jsonb_build_object('items', agg.n) "
    "FROM go, agg) "
    "SELECT (SELECT count(*) FROM s) AS found, (SELECT count(*) FROM go) AS done, agg.n AS keys_count, "
    "agg.b AS bytes, agg.h AS content_hash FROM agg"
)
"""The pause's statement (after :func:`begin_locked`). Returns one row: ``found`` 0 if the session is missing or
takes no writes, ``done`` 0 if the checkpoint id is taken (nothing written), and the checkpoint's count, size and
hash."""


def pause_args(
    scope: Scope,
    now: float,
    checkpoint_id: str,
    created_at: datetime,
    label: str | None,
    metadata: str,
    keep: bool,
    event: Mapping[str, Any],
    retention: Retention | None,
) -> tuple[Any, ...]:
    """The arguments of :data:`PAUSE`; ``metadata`` as JSON text, ``event`` from ``event_params``."""
    keep_last = None if retention is None else retention.keep_last
    max_age = None if retention is None else retention.max_age_seconds
    cutoff = None if max_age is None else to_datetime(created_at.timestamp() - max_age)
    return (
        scope.project_id,
        scope.agent_instance_id,
        scope.session_id,
        now,
        checkpoint_id,
        created_at,
        label,
        metadata,
        keep,
        event["ev_t"],
        event["ev_at"],
        event["ev_d"],
        event["ev_o"],
        event["ev_detail"],
        keep_last,
        cutoff,
    )


_SESSION_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def begin_locked(scope: Scope) -> str:
    """BEGIN and the session's row locked, as one simple-protocol message (one round trip; no parameters, so the
    scope is written as literals, which its validation makes safe: two UUIDs and an id of ``A-Z a-z 0-9 . _ -``).

    The transaction may use generic plans: the connection's default (``force_custom_plan``, for search, whose best
    plan depends on its LIMIT and vector) would plan these many-CTE statements again on every call, the largest
    part of a small pause or resume; nothing in them changes the best plan from one call to the next."""
    if _SESSION_ID.fullmatch(scope.session_id) is None:  # Scope.parse has refused it already: never reached
        raise ValueError("session_id is not an identifier")
    return (
        "BEGIN; SET LOCAL plan_cache_mode = auto; SELECT 1 FROM sessions WHERE "
        f"project_id = '{scope.project_id}' AND agent_instance_id = '{scope.agent_instance_id}' "
        f"AND session_id = '{scope.session_id}' FOR NO KEY UPDATE"
    )


def resume_sql(by_id: bool) -> str:
    """The resume's statement (after :func:`begin_locked`): the checkpoint ``$5`` (``by_id``) or the newest,
    restored if the session takes writes and the result fits ``$7`` keys: with ``$6`` (clear) working memory
    becomes the checkpoint's live items, else they are written over the others. Returns one row (none if the
    session is missing): status, sealed, the checkpoint (NULL if none), the items restored, the other live keys
    kept, and ``done``."""
    pick = "AND checkpoint_id = $5 " if by_id else f"AND CAST($5 AS text) IS NULL ORDER BY {_NEWEST_FIRST} "
    return (
        f"WITH s AS (SELECT id, status, sealed FROM sessions WHERE {_SCOPE}), "
        "c AS (SELECT checkpoint_id, created_at, keys_count, bytes, label, content_hash, metadata, keep, state "
        f"FROM checkpoints WHERE session_pk = (SELECT id FROM s) {pick}LIMIT 1), "
        "ok AS (SELECT s.id FROM s, c WHERE NOT s.sealed AND s.status <> 'terminated'), "
        "r AS (SELECT e.key, e.value ->> 0 AS v, CAST(e.value ->> 1 AS float8) AS x FROM c, jsonb_each(c.state) e), "
        "live AS (SELECT key, v, x FROM r WHERE x IS NULL OR x > $4), "
        "n AS (SELECT count(*) AS restored FROM live), "
        "others AS (SELECT count(*) AS kept FROM working_items w WHERE NOT $6 AND w.session_pk = (SELECT id FROM ok) "
        f"AND {_LIVE} AND NOT EXISTS (SELECT 1 FROM live WHERE live.key = w.key)), "
        "go AS (SELECT ok.id FROM ok, n, others WHERE n.restored + others.kept <= $7), "
        "d AS (DELETE FROM working_items w WHERE $6 AND w.session_pk = (SELECT id FROM go) "
        "AND NOT EXISTS (SELECT 1 FROM live WHERE live.key = w.key)), "
        "ins AS (INSERT INTO working_items (session_pk, key, value, expires_at) SELECT go.id, live.key, live.v, live.x "
        "FROM go, live ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value, "
        # A key that already holds the checkpoint's value and expiry is left as it is: no new row version.
        "expires_at = excluded.expires_at WHERE working_items.value IS DISTINCT FROM excluded.value "
        "OR working_items.expires_at IS DISTINCT FROM excluded.expires_at), "
        "upd AS (UPDATE sessions SET status = 'running', updated_at = $9 WHERE id = (SELECT id FROM go)), "
        f"ev AS (INSERT INTO events {EVENT_COLUMNS} SELECT go.id, CAST($8 AS text), CAST($9 AS timestamptz), "
        "CAST($10 AS float8), CAST($11 AS text), CAST($12 AS jsonb) || "
        "jsonb_build_object('checkpoint_id', c.checkpoint_id, 'items', n.restored) FROM go, c, n) "
        "SELECT s.status, s.sealed, c.checkpoint_id, c.created_at, c.keys_count, c.bytes, c.label, c.content_hash, "
        "CAST(c.metadata AS text) AS metadata, c.keep, n.restored, others.kept, (SELECT count(*) FROM go) AS done "
        "FROM s LEFT JOIN c ON true LEFT JOIN n ON true LEFT JOIN others ON true"
    )


def resume_args(
    scope: Scope, now: float, checkpoint_id: str | None, clear: bool, max_keys: int, event: Mapping[str, Any]
) -> tuple[Any, ...]:
    """The arguments of :func:`resume_sql`; ``event`` from ``event_params``."""
    return (
        scope.project_id,
        scope.agent_instance_id,
        scope.session_id,
        now,
        checkpoint_id,
        clear,
        max_keys,
        event["ev_t"],
        event["ev_at"],
        event["ev_d"],
        event["ev_o"],
        event["ev_detail"],
    )


__all__ = ["PAUSE", "begin_locked", "pause_args", "resume_args", "resume_sql"]
