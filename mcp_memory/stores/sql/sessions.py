"""Session discovery on both SQL stores: ``list_sessions`` (newest activity first, position-paged) and
``complete_identifiers`` (prefix completion of stored ids), as one mixin that both SQL stores inherit
(:class:`~mcp_memory.stores.sqlite.store.SqliteStore`, :class:`~mcp_memory.stores.postgres.store.PostgresStore`).

Each call is one statement. The SQL is the same on both but for two fragments each store names: how a session's
first working-memory keys are collected (``_FIRST_KEYS``) and read back (``_read_keys``). Row-value comparison
``(a, b) < (x, y)`` is standard SQL that both SQLite (3.15+) and Postgres answer from the index
``sessions_*_activity`` (``(project_id[, agent_instance_id], updated_at, id)``), read in time order with ties in
time sorted by the session's ids, so a page costs its own rows (and the ties of its last time) only.

Activity is the session's ``updated_at``: its last lifecycle event (spawn, pause, resume, terminate). A
``memory_set`` does not move it: on Redis, working-memory writes never reach the durable store, and on SQL stores
updating the session row on every write would serialise writes of one session on that row for a listing's sake.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.cursors import datetime_of_micros, decode_fields, encode_fields, micros_of
from mcp_memory.errors import InvalidArgument
from mcp_memory.stores.ports import LIVE_KEYS_CAP as KEY_COUNT_CAP
from mcp_memory.stores.ports import IdentifierKind, SessionRow
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.dialect import Dialect, as_is, as_uuid
from mcp_memory.stores.sql.queries import COMPLETE, LIVE, OWN_EPISODE, SCOPE

FIRST_KEYS = 5
"""How many working-memory keys a listed session shows."""
TASK_CHARS = 200
"""A terminated session's task description is cut to this many characters in a listing."""


def encode_position(updated_at: Any, agent_instance_id: UUID, session_id: str) -> str:
    """An opaque cursor for the listed session at ``updated_at``: its time, exact for both stores' time types
    (SQLite's epoch float by its repr, Postgres's ``timestamptz`` as integer microseconds), and its agent and session
    ids, which the caller knows already. Not its row id: that is numbered across every project, so a cursor carrying
    it would tell a token how many sessions other projects created between two of its own."""
    ids = {"a": str(agent_instance_id), "s": session_id}
    if isinstance(updated_at, datetime):
        return encode_fields({"u": micros_of(updated_at), **ids})
    return encode_fields({"t": float(updated_at), **ids})


def decode_position(cursor: str, want_datetime: bool) -> tuple[Any, UUID, str]:
    """The ``(updated_at, agent_instance_id, session_id)`` a cursor names, its time as the store's time type;
    ``InvalidArgument`` if malformed."""
    try:
        data = decode_fields(cursor)
        agent, session = UUID(str(data["a"])), data["s"]
        if not isinstance(session, str):
            raise TypeError(session)
        if "u" in data:
            at: datetime | float = datetime_of_micros(data["u"])
        else:
            t = data["t"]
            if not isinstance(t, int | float) or isinstance(t, bool):
                raise TypeError(t)
            at = float(t)
        if want_datetime and not isinstance(at, datetime):
            at = datetime.fromtimestamp(at, UTC)  # out of range for a forged time: malformed too
        elif not want_datetime and isinstance(at, datetime):
            at = at.timestamp()
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        raise InvalidArgument("before: malformed cursor (pass a next_before from list_sessions)") from None
    return at, agent, session


def _prefix_clause(d: Dialect, column: str, prefix: str, params: dict[str, Any]) -> str:
    """`` AND`` the column's text starts with ``prefix`` (:attr:`Dialect.prefix_match`: exact characters, no LIKE
    wildcards, no case folding)."""
    if not prefix:
        return ""
    params["prefix"] = prefix
    return " AND " + d.prefix_match.format(column=column)


class SessionQueries:
    """``list_sessions`` and ``complete_identifiers`` for a store with ``_dialect`` and ``_read``."""

    _dialect: ClassVar[Dialect]
    _FIRST_KEYS: ClassVar[str]
    """An expression: the first :data:`FIRST_KEYS` live keys of session ``s`` in key order (``:now``)."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    @staticmethod
    def _read_keys(value: Any) -> tuple[str, ...]:
        """The :attr:`_FIRST_KEYS` value as keys."""
        return tuple(value or ())

    async def list_sessions(
        self,
        project_id: UUID,
        agent_instance_id: UUID | None,
        status: str | None,
        limit: int,
        before: str | None,
        now: float,
        working: bool,
    ) -> list[SessionRow]:
        d = self._dialect
        wants_datetime = d.write_time is not as_is  # Postgres binds times as datetimes, SQLite as epoch floats
        params: dict[str, Any] = {"p": d.write_uuid(project_id), "limit": limit, "now": now}
        where = f"s.project_id = :p AND s.{COMPLETE}"  # a spawn under way (or crashed in) is no session yet
        if agent_instance_id is not None:
            where += " AND s.agent_instance_id = :a"
            params["a"] = d.write_uuid(agent_instance_id)
        if status is not None:
            where += " AND s.status = :status"
            params["status"] = status
        if before is not None:
            params["b_at"], b_agent, params["b_sid"] = decode_position(before, wants_datetime)
            params["b_agent"] = d.write_uuid(b_agent)
            # Ties in time go by the ids the cursor carries, so a page goes on where the last one ended even when
            # the cursor's session has been deleted since (its row id, looked up, would be gone with it). The
            # first bound lets the activity index serve the range.
            where += (
                " AND s.updated_at <= :b_at "
                "AND (s.updated_at, s.agent_instance_id, s.session_id) < (:b_at, :b_agent, :b_sid)"
            )
        # Newest activity first, ties by the ids a cursor carries; with one agent, its id is left out of the order
        # (SQLite would otherwise sort all of the agent's sessions instead of reading its activity index in order).
        order = "s.updated_at DESC, " + ("" if agent_instance_id is not None else "s.agent_instance_id DESC, ")
        order += "s.session_id DESC"
        live_w = LIVE.replace("expires_at", "w.expires_at")
        columns = ""
        if working:
            columns = (
                f", (SELECT COUNT(*) FROM (SELECT 1 FROM working_items w WHERE w.session_pk = s.id AND {live_w} "
                f"LIMIT {KEY_COUNT_CAP}) n) AS live_keys, {self._FIRST_KEYS} AS first_keys"
            )
        sql = (
            "SELECT s.id, s.project_id, s.agent_instance_id, s.session_id, s.status, s.created_at, s.updated_at, "
            "c.checkpoint_id AS cp_id, c.created_at AS cp_at, c.label AS cp_label, c.keys_count AS cp_keys, "
            f"e.outcome AS ep_outcome, substr(e.task_description, 1, {TASK_CHARS}) AS ep_task{columns} "
            "FROM sessions s "
            "LEFT JOIN checkpoints c ON c.id = (SELECT c2.id FROM checkpoints c2 WHERE c2.session_pk = s.id "
            "ORDER BY c2.created_at DESC, c2.id DESC LIMIT 1) "
            f"LEFT JOIN episodes e ON {OWN_EPISODE} "
            f"WHERE {where} ORDER BY {order} LIMIT :limit"
        )
        async with self._read() as conn:
            rows = (await conn.execute(text(sql), params)).all()
        return [
            SessionRow(
                project_id=as_uuid(r.project_id),
                agent_instance_id=as_uuid(r.agent_instance_id),
                session_id=r.session_id,
                status=r.status,
                created_at=d.read_epoch(r.created_at),
                updated_at=d.read_epoch(r.updated_at),
                position=encode_position(r.updated_at, as_uuid(r.agent_instance_id), r.session_id),
                checkpoint=None if r.cp_id is None else (r.cp_id, d.read_epoch(r.cp_at), r.cp_label, int(r.cp_keys)),
                episode=None if r.ep_outcome is None else (r.ep_outcome, r.ep_task or ""),
                live_keys=int(r.live_keys) if working else None,
                first_keys=self._read_keys(r.first_keys) if working else (),
            )
            for r in rows
        ]

    async def complete_identifiers(
        self,
        kind: IdentifierKind,
        prefix: str,
        limit: int,
        projects: Sequence[UUID] | None,
        agent_instance_id: UUID | None = None,
        session_id: str | None = None,
    ) -> tuple[list[str], int]:
        d = self._dialect
        params: dict[str, Any] = {"limit": limit}
        if kind == "project":
            within = ""
            if projects is not None:
                if not projects:
                    return [], 0
                names = [f":proj{i}" for i in range(len(projects))]
                params.update({f"proj{i}": d.write_uuid(p) for i, p in enumerate(projects)})
                within = f" AND project_id IN ({', '.join(names)})"
            match = _prefix_clause(d, "project_id", prefix, params)
            sql = (
                f"SELECT v, MAX(at) AS at FROM (SELECT project_id AS v, updated_at AS at FROM sessions WHERE {COMPLETE}"
                f"{within}{match} UNION ALL SELECT project_id, created_at FROM episodes WHERE 1 = 1{within}{match}) u "
                "GROUP BY v"
            )
        else:
            if projects is None or len(projects) != 1:
                return [], 0
            params["p"] = d.write_uuid(projects[0])
            agent = ""
            if agent_instance_id is not None:
                params["a"] = d.write_uuid(agent_instance_id)
                agent = " AND agent_instance_id = :a"
            if kind == "agent":
                match = _prefix_clause(d, "agent_instance_id", prefix, params)
                sql = (
                    "SELECT v, MAX(at) AS at FROM (SELECT agent_instance_id AS v, updated_at AS at FROM sessions "
                    f"WHERE project_id = :p AND {COMPLETE}{match} UNION ALL SELECT agent_instance_id, created_at "
                    f"FROM episodes WHERE project_id = :p{match}) u GROUP BY v"
                )
            elif kind == "session":
                match = _prefix_clause(d, "session_id", prefix, params)
                sql = (
                    "SELECT session_id AS v, MAX(updated_at) AS at FROM sessions "
                    f"WHERE project_id = :p AND {COMPLETE}{agent}{match} GROUP BY session_id"
                )
            elif kind == "checkpoint":
                if agent_instance_id is None or session_id is None:
                    return [], 0
                params["s"] = session_id
                match = _prefix_clause(d, "checkpoint_id", prefix, params)
                sql = (
                    "SELECT checkpoint_id AS v, created_at AS at FROM checkpoints "
                    f"WHERE session_pk = (SELECT id FROM sessions WHERE {SCOPE} AND {COMPLETE}){match}"
                )
            else:
                session = ""
                if session_id is not None:
                    params["s"] = session_id
                    session = " AND session_id = :s"
                match = _prefix_clause(d, "episode_id", prefix, params)
                sql = (
                    "SELECT episode_id AS v, created_at AS at FROM episodes "
                    f"WHERE project_id = :p{agent}{session}{match}"
                )
        query = f"SELECT v, COUNT(*) OVER () AS total FROM ({sql}) q ORDER BY at DESC, v LIMIT :limit"
        async with self._read() as conn:
            rows = (await conn.execute(text(query), params)).all()
        return [str(r.v) for r in rows], int(rows[0].total) if rows else 0


__all__ = ["FIRST_KEYS", "SessionQueries", "decode_position", "encode_position"]
