"""What the two SQL stores (:mod:`~mcp_memory.stores.sqlite` and :mod:`~mcp_memory.stores.postgres`) share.

Both keep the same tables with the same column names and select a session by the same scope, so the SQL text
that reads them the same way lives here once, with the rows-to-models mapping, the key-limit check, the
writability check, the contract's error messages, the checkpoint paging, and (in :class:`SqlStore`, the base of
both stores) the port methods whose SQL and steps are the same. What differs between the two is not the logic
but how values cross the driver: SQLite stores UUIDs and JSON as TEXT and times as epoch seconds (REAL), while
asyncpg hands back UUIDs, decoded JSONB and ``timestamptz`` datetimes. A :class:`Dialect` names those
conversions (and the one piece of SQL that differs, the row-value comparison of the paging bound).

Left in each adapter on purpose: the transaction models (SQLite's single writer with ``BEGIN IMMEDIATE`` and the
direct one-hand-over transactions, Postgres's row locks and one-statement writes), and the SQL that only looks
alike but is dialect-specific (upserts, CTE writes, full text, vectors, key ordering and prefix matching).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.errors import Conflict, NotFound, TooLarge
from mcp_memory.models import CheckpointInfo, Episode, Item, Outcome, Scope, SessionInfo, SessionStatus
from mcp_memory.stores.ports import EpisodeFilter, EventRecord, Limits

SCOPE = "project_id = :p AND agent_instance_id = :a AND session_id = :s"
"""Selects one session's row of ``sessions`` (parameters ``:p``, ``:a``, ``:s`` from the adapter's scope)."""
SESSION_PK = f"(SELECT id FROM sessions WHERE {SCOPE})"
COMPLETE = "spawn_until IS NULL"
"""A session whose spawn is complete. A two-step spawn (working memory in Redis) creates the row with a lease
(``spawn_until``) and clears it once Redis holds the initial state; until then the session does not exist for any
call (``get_session`` is None, pauses, seals and events find nothing), and once the lease has run out (the spawn's
server crashed or gave up) a spawn of the same session takes the row over."""
LIVE = "(expires_at IS NULL OR expires_at > :now)"
# "Newest" is the latest snapshot, not the latest commit: two writers may commit their pauses in the other
# order than they took their snapshots.
NEWEST_FIRST = "created_at DESC, id DESC"
CHECKPOINT_FIELDS = ("checkpoint_id", "created_at", "keys_count", "bytes", "label", "content_hash", "metadata")
"""A checkpoint's description: every column but its key, its session and its state (listings never read states)."""
COMMON_TERM_SHARE = 0.05
"""Full text, both stores: a word found in at least this share of the project's episodes does not make an episode
a candidate (it still counts in the score of the candidates that the query's other words find)..."""
COMMON_TERM_MIN_EPISODES = 5000
"""...once the project holds this many episodes (below it, ranking every match costs little)."""
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
SEAL_REFUSED = f"SELECT status FROM sessions WHERE {SCOPE} AND {COMPLETE}"
UNSEAL = (
    "UPDATE sessions SET sealed = false, seal_token = NULL, seal_until = NULL "
    f"WHERE {SCOPE} AND status <> 'terminated' AND sealed AND (seal_token IS NULL OR seal_token = :t)"
)
"""Clear the seal only if this token holds it (or no token does): never a newer owner's."""
GET_ITEM = f"SELECT value, expires_at FROM working_items WHERE session_pk = {SESSION_PK} AND key = :k AND {LIVE}"


def as_is(value: Any) -> Any:
    """The value the driver gave (for a conversion the driver already made)."""
    return value


def as_uuid(value: Any) -> UUID:
    """A UUID from a TEXT column (SQLite) or from the driver's own UUID type (asyncpg)."""
    return value if type(value) is UUID else UUID(str(value))


def check_fits(items: Mapping[str, Item], now: float, limits: Limits) -> None:
    """A whole new state must fit the key limit; items already expired do not count (they are skipped)."""
    live = sum(1 for it in items.values() if it.expires_at is None or it.expires_at > now)
    if live > limits.max_keys:
        raise TooLarge(f"{live} keys exceed the limit of {limits.max_keys} keys per session")


def check_writable(scope: Scope, found: tuple[Any, Any] | None) -> None:
    """The error that says why a session takes no writes, from its ``(status, sealed)`` (None: no session)."""
    if found is None:
        raise NotFound(f"session '{scope.session_id}' does not exist for this agent; call spawn first")
    status, sealed = found
    if status == SessionStatus.TERMINATED:
        raise Conflict(f"session '{scope.session_id}' is terminated and accepts no writes")
    if sealed:
        raise Conflict(
            f"session '{scope.session_id}' is being terminated and accepts no writes "
            "(if a terminate was interrupted, call terminate again to finish it once its seal lapses)"
        )


def terminate_in_progress(scope: Scope, lease_seconds: float) -> Conflict:
    """``seal`` of a session another terminate holds sealed, its lease not yet run out."""
    return Conflict(
        f"a terminate of session '{scope.session_id}' is already in progress; retry "
        f"(if it was interrupted, its seal lapses within {lease_seconds:g} seconds)"
    )


def keys_full(scope: Scope, limits: Limits) -> TooLarge:
    """``set`` of a new key into a session at its key limit."""
    return TooLarge(
        f"session '{scope.session_id}' holds {limits.max_keys} keys, the limit; delete some before adding new ones"
    )


def restore_overflows(limits: Limits) -> TooLarge:
    """``restore`` without clearing would leave more keys than the limit (and so restores nothing)."""
    return TooLarge(f"restoring without clearing would exceed {limits.max_keys} keys per session; nothing was restored")


def session_exists(scope: Scope, status: Any) -> Conflict:
    """``create_session`` of a session that exists already (in ``status``): what the caller can do next."""
    if status == SessionStatus.TERMINATED:
        # resume would fail too: a terminated session is closed for good (its checkpoints stay readable).
        return Conflict(
            f"session '{scope.session_id}' exists already and is terminated for good; spawn a new session_id "
            "(its checkpoints and episode stay readable)"
        )
    return Conflict(
        f"session '{scope.session_id}' exists already (status {status}); "
        "use resume to continue it, or spawn a new session_id"
    )


def spawn_in_progress(scope: Scope) -> Conflict:
    """A spawn of a session whose earlier spawn has not completed and still holds its lease."""
    return Conflict(
        f"a spawn of session '{scope.session_id}' is already in progress; retry (if it was interrupted, its "
        "lease lapses within spawn_lease_seconds and a retried spawn then takes it over)"
    )


def checkpoint_exists(checkpoint_id: str) -> Conflict:
    """``record_pause`` with a checkpoint id the session has already."""
    return Conflict(
        f"checkpoint '{checkpoint_id}' exists already in this session; nothing was "
        "overwritten (omit checkpoint_id to get a fresh one)"
    )


def candidate_pool(limit: int) -> int:
    """How many full-text candidates ``search_episodes`` ranks for ``limit`` results (and SQLite's vector pool)."""
    return max(limit * 10, 50)


def checkpoint_selector(params: dict[str, Any], checkpoint_id: str | None) -> str:
    """The tail of a query on one session's checkpoints that picks ``checkpoint_id``, or the newest if None
    (adds its parameter to ``params``)."""
    if checkpoint_id is None:
        return f"ORDER BY {NEWEST_FIRST} LIMIT 1"
    params["cid"] = checkpoint_id
    return "AND checkpoint_id = :cid"


@dataclass(frozen=True)
class Dialect:
    """How values cross one SQL driver, and the SQL that differs where the logic does not."""

    read_json: Callable[[Any], Any]
    """A JSON column's value as Python (SQLite: TEXT to decode; Postgres: JSONB, decoded by the driver)."""
    read_time: Callable[[Any], Any]
    """A time column's value as a datetime, None as None (SQLite: epoch seconds; Postgres: a ``timestamptz``
    already)."""
    read_epoch: Callable[[Any], float]
    """A time column's value as epoch seconds (SQLite: stored so; Postgres: from a ``timestamptz``)."""
    write_uuid: Callable[[UUID], Any]
    """A UUID as a query parameter."""
    write_time: Callable[[float], Any]
    """Epoch seconds as a query parameter."""
    before_bound: str
    """The paging bound of :func:`list_checkpoints`: rows strictly older than ``(:b_at, :b_id)``."""

    def scope_params(self, scope: Scope) -> dict[str, Any]:
        """The parameters of :data:`SCOPE`."""
        return {
            "p": self.write_uuid(scope.project_id),
            "a": self.write_uuid(scope.agent_instance_id),
            "s": scope.session_id,
        }

    def terminated_result(self, scope: Scope, row: Any, seal_token: str | None = None) -> dict[str, Any] | None:
        """``record_terminate``'s look at the session's ``(status, terminate_result, sealed, seal_token)`` row:
        ``NotFound`` if there is none, the stored result if it is terminated already (the call is a replay), else
        None (go on) if ``seal_token`` is None or still holds the seal; ``Conflict`` if another terminate has taken
        the seal over (this call's snapshot may miss writes acknowledged since: it must record nothing)."""
        if row is None:
            raise NotFound(f"session '{scope.session_id}' does not exist for this agent")
        if row.status == SessionStatus.TERMINATED:
            stored: dict[str, Any] = self.read_json(row.terminate_result) if row.terminate_result else {}
            return stored
        if seal_token is not None and not (row.sealed and row.seal_token == seal_token):
            raise Conflict(
                f"terminating session '{scope.session_id}': another terminate took over its seal meanwhile (this "
                "one outlasted its lease); nothing was recorded, retry"
            )
        return None

    def session(self, row: Any) -> SessionInfo:
        return SessionInfo(
            project_id=as_uuid(row.project_id),
            agent_instance_id=as_uuid(row.agent_instance_id),
            session_id=row.session_id,
            agent_type_id=as_uuid(row.agent_type_id) if row.agent_type_id else None,
            status=SessionStatus(row.status),
            created_at=self.read_time(row.created_at),
            updated_at=self.read_time(row.updated_at),
            metadata=self.read_json(row.metadata),
            episode_id=as_uuid(row.episode_id) if row.episode_id else None,
            terminated_at=self.read_time(row.terminated_at),
            terminate_result=None if row.terminate_result is None else self.read_json(row.terminate_result),
            sealed=bool(row.sealed),
            spawn_token=getattr(row, "spawn_token", None),
        )

    def checkpoint_info(self, row: Any) -> CheckpointInfo:
        return CheckpointInfo(
            checkpoint_id=row.checkpoint_id,
            created_at=self.read_time(row.created_at),
            keys_count=row.keys_count,
            bytes=row.bytes,
            label=row.label,
            content_hash=row.content_hash,
            metadata=self.read_json(row.metadata),
        )

    def scoped_checkpoint(self, row: Any) -> tuple[Scope, CheckpointInfo]:
        """A row of a checkpoint joined with its session's scope."""
        return Scope(as_uuid(row.project_id), as_uuid(row.agent_instance_id), row.session_id), self.checkpoint_info(row)

    def episode(self, row: Any, *, embedded: bool) -> Episode:
        return Episode(
            episode_id=as_uuid(row.episode_id),
            project_id=as_uuid(row.project_id),
            agent_instance_id=as_uuid(row.agent_instance_id),
            session_id=row.session_id,
            task_type=row.task_type,
            task_description=row.task_description,
            outcome=Outcome(row.outcome),
            outcome_details=row.outcome_details,
            lessons_learned=self.read_json(row.lessons_learned),
            importance_score=row.importance_score,
            context_summary=row.context_summary,
            metadata=self.read_json(row.metadata),
            created_at=self.read_time(row.created_at),
            embedded=embedded,
        )

    def filter_clause(self, flt: EpisodeFilter | None, prefix: str = "") -> tuple[str, dict[str, Any]]:
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
            params["f_agent"] = self.write_uuid(flt.agent_instance_id)
        if flt.since is not None:
            parts.append(f"{prefix}created_at >= :f_since")
            params["f_since"] = self.write_time(flt.since)
        return "".join(f" AND {p}" for p in parts), params

    async def list_checkpoints(
        self, conn: AsyncConnection, scope_params: dict[str, Any], columns: str, limit: int, before: str | None
    ) -> list[CheckpointInfo]:
        """One session's checkpoints, newest first, ``limit`` of them, strictly older than ``before`` if given
        (``NotFound`` if that one is not the session's). Two statements: ``conn`` decides whether they share a
        snapshot (checkpoints are never changed or deleted, so the bound read first stays valid either way)."""
        params: dict[str, Any] = {**scope_params, "limit": limit}
        bound = ""
        if before is not None:
            row = (
                await conn.execute(
                    text(
                        f"SELECT id, created_at FROM checkpoints WHERE session_pk = {SESSION_PK} AND checkpoint_id = :b"
                    ),
                    {**params, "b": before},
                )
            ).first()
            if row is None:
                raise NotFound(f"checkpoint '{before}' (given as before) does not exist for this session")
            bound = self.before_bound
            params.update(b_at=row.created_at, b_id=row.id)
        result = await conn.execute(
            text(
                f"SELECT {columns} FROM checkpoints WHERE session_pk = {SESSION_PK} {bound} "
                f"ORDER BY {NEWEST_FIRST} LIMIT :limit"
            ),
            params,
        )
        return [self.checkpoint_info(r) for r in result]


class SqlStore:
    """The port methods both SQL stores answer with the same SQL and the same steps; each store sets
    ``_dialect`` and has its own ``_read`` (a connection for one read statement) and ``_write`` (a transaction)."""

    _dialect: ClassVar[Dialect]
    purge_every = 1000
    """Every this many writes, the working-memory rows whose TTL has passed are deleted (see ``_maybe_purge``)."""
    _writes_since_purge = 0

    if TYPE_CHECKING:

        def _read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        async def clear(self, scope: Scope, now: float) -> int: ...

    async def complete_spawn(self, scope: Scope, token: str) -> None:
        async with self._write() as conn:
            params = {**self._dialect.scope_params(scope), "tok": token}
            done = await conn.execute(
                text(f"UPDATE sessions SET spawn_until = NULL WHERE {SCOPE} AND spawn_token = :tok AND NOT {COMPLETE}"),
                params,
            )
            if done.rowcount:
                return
            found = text(f"SELECT spawn_token, spawn_until FROM sessions WHERE {SCOPE}")
            row = (await conn.execute(found, params)).first()
        if row is not None and row.spawn_token == token:
            return  # completed already (a replay)
        raise Conflict(
            f"spawning session '{scope.session_id}' took longer than its lease and another spawn took it over; "
            "retry (this one left nothing behind)"
        )

    async def abandon_spawn(self, scope: Scope, token: str) -> None:
        params = {**self._dialect.scope_params(scope), "tok": token}
        mine = f"(SELECT id FROM sessions WHERE {SCOPE} AND spawn_token = :tok AND NOT {COMPLETE})"
        async with self._write() as conn:
            await conn.execute(text(f"DELETE FROM working_items WHERE session_pk IN {mine}"), params)
            await conn.execute(text(f"DELETE FROM sessions WHERE id IN {mine}"), params)

    async def _take_over_lapsed_spawn(self, conn: AsyncConnection, params: Mapping[str, Any]) -> None:
        """In ``begin_spawn``'s transaction: drop the row of an earlier spawn of the session that never completed
        and whose lease has run out at ``:now`` (its events go with it), so that the insert that follows makes it
        afresh."""
        lapsed = f"(SELECT id FROM sessions WHERE {SCOPE} AND NOT {COMPLETE} AND spawn_until <= :now)"
        await conn.execute(text(f"DELETE FROM working_items WHERE session_pk IN {lapsed}"), params)
        await conn.execute(text(f"DELETE FROM sessions WHERE id IN {lapsed}"), params)

    async def _refuse_spawn(self, conn: AsyncConnection, scope: Scope, params: Mapping[str, Any]) -> Conflict:
        """Why ``begin_spawn``'s insert wrote nothing: an earlier spawn still holds the session, or it exists."""
        row = (await conn.execute(text(f"SELECT status, spawn_until FROM sessions WHERE {SCOPE}"), params)).first()
        if row is not None and row.spawn_until is not None:
            return spawn_in_progress(scope)
        return session_exists(scope, None if row is None else row.status)

    async def seal(self, scope: Scope, token: str, now: float, lease_seconds: float) -> None:
        d = self._dialect
        params = {
            **d.scope_params(scope),
            "t": token,
            "now": d.write_time(now),
            "until": d.write_time(now + lease_seconds),
        }
        async with self._write() as conn:
            if (await conn.execute(text(SEAL), params)).rowcount:
                return
            status = (await conn.execute(text(SEAL_REFUSED), params)).scalar()
        if status is not None and status != SessionStatus.TERMINATED:  # (no-op for a missing or terminated one)
            raise terminate_in_progress(scope, lease_seconds)

    async def unseal(self, scope: Scope, token: str) -> None:
        async with self._write() as conn:
            await conn.execute(text(UNSEAL), {**self._dialect.scope_params(scope), "t": token})

    async def forget(self, scope: Scope, session: SessionInfo) -> None:
        # Never needed: spawn is one transaction here, and discarding the record discards its working memory.
        return None

    async def mark_terminated(self, scope: Scope, now: float, clear: bool) -> int:
        # One table holds the record and working memory: the terminated record refuses writes already.
        return await self.clear(scope, now) if clear else 0

    async def get(self, scope: Scope, key: str, now: float) -> Item | None:
        async with self._read() as conn:
            row = (
                await conn.execute(text(GET_ITEM), {**self._dialect.scope_params(scope), "k": key, "now": now})
            ).first()
        return None if row is None else Item(row.value, row.expires_at)

    async def list_events(self, scope: Scope, limit: int) -> list[EventRecord]:
        d = self._dialect
        async with self._read() as conn:
            result = await conn.execute(text(LIST_EVENTS), {**d.scope_params(scope), "limit": limit})
            return [
                EventRecord(r.event_type, d.read_epoch(r.at), r.duration_ms, r.outcome, d.read_json(r.detail))
                for r in result
            ]

    async def _maybe_purge(self, conn: AsyncConnection, now: float) -> None:
        """Delete the rows whose TTL has passed every ``purge_every`` writes (they are invisible already; this
        keeps the table and the per-session key counts from growing with dead rows)."""
        self._writes_since_purge += 1
        if self._writes_since_purge >= self.purge_every:
            self._writes_since_purge = 0
            await conn.execute(text(PURGE_EXPIRED), {"now": now})
