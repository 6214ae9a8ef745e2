"""The SQL text both SQL stores send alike, and the builders of its variable parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.sql.dialect import Dialect

SCOPE = "project_id = :p AND agent_instance_id = :a AND session_id = :s"
"""Selects one session's row of ``sessions`` (parameters ``:p``, ``:a``, ``:s`` from the adapter's scope)."""
SESSION_PK = f"(SELECT id FROM sessions WHERE {SCOPE})"


def terminated_pk(seal_token: str | None) -> str:
    """The id of the session's row, as :data:`SESSION_PK`, but only while it is terminated under the seal
    ``seal_token`` (parameter ``:t``; None: a row terminated without one): the row one terminate recorded, never a
    session spawned again under the id since (its id alone would not tell: SQLite reuses a deleted row's)."""
    held = "seal_token IS NULL" if seal_token is None else "seal_token = :t"
    return f"(SELECT id FROM sessions WHERE {SCOPE} AND status = 'terminated' AND {held})"


COMPLETE = "spawn_until IS NULL"
"""A session whose spawn is complete. A two-step spawn (working memory in Redis) creates the row with a lease
(``spawn_until``) and clears it once Redis holds the initial state; until then the session does not exist for any
call (``get_session`` is None, pauses, seals and events find nothing), and once the lease has run out (the spawn's
server crashed or gave up) a spawn of the same session takes the row over."""
COMPLETE_SPAWN = (
    f"UPDATE sessions SET spawn_until = NULL WHERE {SCOPE} AND spawn_token = :tok AND NOT {COMPLETE} "
    "AND spawn_until > :now"
)
"""Complete the session the spawn ``:tok`` holds, only while its lease still runs at ``:now``: once it has run out, a
takeover or the spawn sweep may be removing the spawn (its staged state first, then its row)."""
SPAWN_ENDED = 0.0
"""The lease's end (epoch seconds) an undone spawn's row is given: lapsed for any takeover and any sweep at once."""
END_SPAWN = f"UPDATE sessions SET spawn_until = :ended WHERE {SCOPE} AND spawn_token = :tok AND NOT {COMPLETE}"
"""End the lease of the incomplete session the failed spawn ``:tok`` holds, at :data:`SPAWN_ENDED` (``:ended``): the
spawn is known dead, so its row is lapsed at once (nothing completes it any more), and names its staged state to a
takeover or the sweep should the undo stop before it drops both."""
LIVE = "(expires_at IS NULL OR expires_at > :now)"
# "Newest" is the latest snapshot, not the latest commit: two writers may commit their pauses in the other
# order than they took their snapshots.
NEWEST_FIRST = "created_at DESC, id DESC"
CHECKPOINT_FIELDS = (
    "checkpoint_id",
    "created_at",
    "keys_count",
    "bytes",
    "label",
    "content_hash",
    "metadata",
    "keep",
)
"""A checkpoint's description: every column but its key, its session and its state (listings never read states)."""
CHECKPOINT_COLUMNS = ", ".join(CHECKPOINT_FIELDS)
EPISODE_COLUMNS = (
    "e.episode_id, e.project_id, e.agent_instance_id, e.session_id, e.task_type, e.task_description, e.outcome, "
    "e.outcome_details, e.lessons_learned, e.importance_score, e.context_summary, e.metadata, e.created_at, "
    "e.embedding IS NOT NULL AS embedded"
)
"""An episode's columns (on alias ``e``) as the models need them: whether it has a vector, not the vector."""
PURGE_EXPIRED = "DELETE FROM working_items WHERE expires_at IS NOT NULL AND expires_at <= :now"
LIST_EVENTS = (
    "SELECT event_type, at, duration_ms, outcome, detail FROM events "
    f"WHERE session_pk = {SESSION_PK} ORDER BY id LIMIT :limit"
)
SEAL = (
    "UPDATE sessions SET sealed = true, seal_token = :t, seal_until = :until "
    f"WHERE {SCOPE} AND status <> 'terminated' AND {COMPLETE} "
    "AND (NOT sealed OR seal_token IS NULL OR seal_token = :t OR seal_until IS NULL OR seal_until <= :now)"
)
"""Seal a session that is open, sealed by this token, or sealed by another whose lease has run out (taken over);
a seal with no token (made before seals had owners) is anyone's to take."""
SEAL_REFUSED = f"SELECT status, seal_until FROM sessions WHERE {SCOPE} AND {COMPLETE}"
UNSEAL = (
    "UPDATE sessions SET sealed = false, seal_token = NULL, seal_until = NULL "
    f"WHERE {SCOPE} AND status <> 'terminated' AND sealed AND (seal_token IS NULL OR seal_token = :t)"
)
"""Clear the seal only if this token holds it (or no token does): never a newer owner's."""
END_TERMINATE_LEASE = (
    f"UPDATE sessions SET seal_until = NULL WHERE {SCOPE} AND status = 'terminated' AND seal_token = :t"
)
"""A terminated session's lease ends, if the terminate of this token recorded it (the row keeps its seal's token)."""
GET_ITEM = f"SELECT value, expires_at FROM working_items WHERE session_pk = {SESSION_PK} AND key = :k AND {LIVE}"
_OWN_EPISODE = "e.episode_id = {0}.episode_id AND e.project_id = {0}.project_id"
OWN_EPISODE = _OWN_EPISODE.format("s")
"""Episode ``e`` is the one session ``s`` refers to: the episode of that id, if it is of the session's project. A
session's ``episode_id`` is only an id, and one that no longer names its episode (forgotten by a release that kept
the id, or imported from a file that did not hold the episode) may name another project's episode since: episode ids
are unique in a store, not reserved, so an import may give a freed id to another project."""
LINKED_EPISODE = f"(SELECT e.episode_id FROM episodes e WHERE {OWN_EPISODE}) AS linked_episode_id"
"""A select column on ``sessions s``: the session's episode id if its project holds that episode
(:data:`OWN_EPISODE`), else NULL; what :class:`~mcp_memory.models.SessionInfo` shows as ``episode_id``."""
VECTOR_BACKLOG = (
    "SELECT COUNT(*) - COUNT(e.embedding) AS missing, COUNT(CASE WHEN e.embedding IS NOT NULL AND "
    "(e.embedding_model IS NULL OR e.embedding_model <> :model) THEN 1 END) AS other_model FROM episodes e"
)
"""Counts :class:`~mcp_memory.stores.records.VectorBacklog` of the model ``:model`` in one scan (the same SQL in
both dialects)."""
UNLINK_LOST_EPISODE = (
    "UPDATE sessions SET episode_id = NULL WHERE {} AND episode_id IS NOT NULL AND NOT EXISTS "
    f"(SELECT 1 FROM episodes e WHERE {_OWN_EPISODE.format('sessions')})"
)
"""Format with a condition on ``sessions``: those of its sessions whose episode their project no longer holds
(forgotten) refer to none. Their ``terminate_result`` keeps the id: a repeated terminate answers as the first did.
(An import drops the link of every session whose episode its file lacks, whatever the store holds under the id.)"""
GET_SESSION = f"SELECT s.*, {LINKED_EPISODE} FROM sessions s WHERE {SCOPE} AND {COMPLETE}"
CHECKPOINT_BOUND = f"SELECT id, created_at FROM checkpoints WHERE session_pk = {SESSION_PK} AND checkpoint_id = :b"
"""The key of the checkpoint ``:b`` of one session: the bound of a page of its checkpoints."""


def checkpoint_selector(params: dict[str, Any], checkpoint_id: str | None) -> str:
    """The tail of a query on one session's checkpoints that picks ``checkpoint_id``, or the newest if None
    (adds its parameter to ``params``)."""
    if checkpoint_id is None:
        return f"ORDER BY {NEWEST_FIRST} LIMIT 1"
    params["cid"] = checkpoint_id
    return "AND checkpoint_id = :cid"


def filter_clause(d: Dialect, flt: EpisodeFilter | None, prefix: str = "") -> tuple[str, dict[str, Any]]:
    """SQL conditions for the filters (columns prefixed with ``prefix``), each starting with AND, and their
    parameters."""
    if flt is None:
        return "", {}
    parts: list[str] = []
    params: dict[str, Any] = {}
    if flt.outcome is not None:
        parts.append(f"{prefix}outcome = :f_outcome")
        params["f_outcome"] = flt.outcome.value
    if flt.task_type is not None:
        parts.append(f"{prefix}task_type = :f_task_type")
        params["f_task_type"] = flt.task_type
    if flt.agent_instance_id is not None:
        parts.append(f"{prefix}agent_instance_id = :f_agent")
        params["f_agent"] = d.write_uuid(flt.agent_instance_id)
    if flt.since is not None:
        parts.append(f"{prefix}created_at >= :f_since")
        params["f_since"] = d.write_time(flt.since)
    if flt.until is not None:
        parts.append(f"{prefix}created_at < :f_until")
        params["f_until"] = d.write_time(flt.until)
    return "".join(f" AND {p}" for p in parts), params


def in_values(column: str, values: Sequence[Any], name: str) -> tuple[str, dict[str, Any]]:
    """A condition that ``column`` is one of ``values`` (non-empty), and its parameters, named ``name0``,
    ``name1``... (each value bound: SQLite's and asyncpg's drivers take no list for ``IN``)."""
    names = {f"{name}{i}": value for i, value in enumerate(values)}
    return f"{column} IN ({', '.join(':' + n for n in names)})", names


def in_projects(d: Dialect, column: str, projects: Sequence[UUID] | None) -> tuple[str, dict[str, Any]]:
    """A condition that ``column`` is one of ``projects`` (``TRUE`` for None: every project), and its parameters.
    Callers answer an empty list themselves (nothing matches)."""
    if projects is None:
        return "TRUE", {}
    return in_values(column, [d.write_uuid(p) for p in projects], "proj")
