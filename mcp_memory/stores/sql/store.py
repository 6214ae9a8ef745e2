""":class:`SqlStore`: the base of both SQL stores, with the port methods they answer with the same SQL and steps."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory import faults
from mcp_memory.errors import Conflict, NotFound
from mcp_memory.models import CheckpointInfo, Episode, Item, Outcome, Scope, SessionInfo, SessionStatus
from mcp_memory.stores.ports import EpisodeFilter, EventRecord, Incarnation, SpawnLapsed, seal_lapses_in
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.dialect import Dialect, as_uuid
from mcp_memory.stores.sql.lapsed_spawns import HELD_BY_LAPSED, LapsedSpawnRows
from mcp_memory.stores.sql.queries import (
    CHECKPOINT_BOUND,
    CHECKPOINT_COLUMNS,
    CHECKPOINT_FIELDS,
    COMPLETE,
    COMPLETE_SPAWN,
    END_SPAWN,
    END_TERMINATE_LEASE,
    EPISODE_COLUMNS,
    GET_ITEM,
    GET_SESSION,
    LIST_EVENTS,
    NEWEST_FIRST,
    PURGE_EXPIRED,
    SCOPE,
    SEAL,
    SEAL_REFUSED,
    SESSION_PK,
    SPAWN_ENDED,
    UNSEAL,
    filter_clause,
    in_projects,
    terminated_pk,
)
from mcp_memory.stores.sql.rules import check_terminate, session_exists, spawn_in_progress, terminate_in_progress
from mcp_memory.stores.sql.unfinished_terminates import UnfinishedTerminateRows

_CHECKPOINT_COLUMNS_C = ", ".join(f"c.{f}" for f in CHECKPOINT_FIELDS)
_PAST_EVERY_ROW_ID = 2**63 - 1
"""A row id above every checkpoint's (both stores' ids are signed 64-bit): as a bound's tie-break, all rows of the
bound's time are older."""


class SqlStore(LapsedSpawnRows, UnfinishedTerminateRows):
    """The port methods both SQL stores answer with the same SQL and the same steps; each store sets
    ``_dialect`` and has its own ``_read`` (a connection for one read statement) and ``_write`` (a transaction).
    Lapsed spawns (taken over by ``begin_spawn``, or swept): :class:`~.lapsed_spawns.LapsedSpawnRows`; terminates
    cut off after their record: :class:`~.unfinished_terminates.UnfinishedTerminateRows`."""

    _dialect: ClassVar[Dialect]
    purge_every = 1000
    """Every this many writes, the working-memory rows whose TTL has passed are deleted (see ``_maybe_purge``)."""
    _purge_expired: ClassVar[str] = PURGE_EXPIRED
    """The statement of ``_maybe_purge`` (the Postgres store's skips rows other transactions hold)."""
    _writes_since_purge = 0

    if TYPE_CHECKING:

        def _read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        async def _clear_rows(self, session_pk: str, params: Mapping[str, Any], now: float) -> int: ...

    def _read_together(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for a read of several statements; the store decides whether they share a snapshot."""
        return self._read()

    # -- rows as models ----------------------------------------------------------------------------------
    def _session_info(self, row: Any) -> SessionInfo:
        d = self._dialect
        # A read selects the episode through its project (LINKED_EPISODE); a row a write returns has none yet.
        episode = getattr(row, "linked_episode_id", row.episode_id)
        return SessionInfo(
            project_id=as_uuid(row.project_id),
            agent_instance_id=as_uuid(row.agent_instance_id),
            session_id=row.session_id,
            agent_type_id=as_uuid(row.agent_type_id) if row.agent_type_id else None,
            status=SessionStatus(row.status),
            created_at=d.read_time(row.created_at),
            updated_at=d.read_time(row.updated_at),
            metadata=d.read_json(row.metadata),
            episode_id=as_uuid(episode) if episode else None,
            terminated_at=d.read_time(row.terminated_at),
            terminate_result=None if row.terminate_result is None else d.read_json(row.terminate_result),
            sealed=bool(row.sealed),
            seal_token=getattr(row, "seal_token", None) if row.sealed else None,
            seal_until=d.read_time(getattr(row, "seal_until", None)) if row.sealed else None,
            spawn_token=getattr(row, "spawn_token", None),
            status_order=getattr(row, "status_order", None),
            terminate_unfinished=bool(getattr(row, "terminate_unfinished", False)),
        )

    def _checkpoint_info(self, row: Any) -> CheckpointInfo:
        d = self._dialect
        return CheckpointInfo(
            checkpoint_id=row.checkpoint_id,
            created_at=d.read_time(row.created_at),
            keys_count=row.keys_count,
            bytes=row.bytes,
            label=row.label,
            content_hash=row.content_hash,
            metadata=d.read_json(row.metadata),
            keep=bool(row.keep),
        )

    def _episode(self, row: Any) -> Episode:
        """An episode from a row of :data:`~mcp_memory.stores.sql.queries.EPISODE_COLUMNS`."""
        return Episode(**self._episode_fields(row))

    def _episode_fields(self, row: Any) -> dict[str, Any]:
        """The fields of :meth:`_episode`, for a model that adds its own (a search's score: validated once, not
        made an ``Episode``, dumped and validated again)."""
        d = self._dialect
        return dict(
            episode_id=as_uuid(row.episode_id),
            project_id=as_uuid(row.project_id),
            agent_instance_id=as_uuid(row.agent_instance_id),
            session_id=row.session_id,
            task_type=row.task_type,
            task_description=row.task_description,
            outcome=Outcome(row.outcome),
            outcome_details=row.outcome_details,
            lessons_learned=d.read_json(row.lessons_learned),
            importance_score=row.importance_score,
            context_summary=row.context_summary,
            metadata=d.read_json(row.metadata),
            created_at=d.read_time(row.created_at),
            embedded=bool(row.embedded),
        )

    def _terminated_result(self, scope: Scope, row: Any, seal_token: str | None) -> dict[str, Any] | None:
        """The stored result of a session terminated already (the call is a replay), else None (go on); see
        :func:`~mcp_memory.stores.sql.rules.check_terminate` for the errors."""
        if not check_terminate(scope, row, seal_token):
            return None
        stored: dict[str, Any] = self._dialect.read_json(row.terminate_result) if row.terminate_result else {}
        return stored

    # -- sessions, spawns, seals and events --------------------------------------------------------------
    async def get_session(self, scope: Scope) -> SessionInfo | None:
        async with self._read() as conn:
            row = (await conn.execute(text(GET_SESSION), self._dialect.scope_params(scope))).first()
        return None if row is None else self._session_info(row)

    async def complete_spawn(
        self, scope: Scope, token: str, now: float, clock: Callable[[], float] | None = None
    ) -> None:
        await faults.reached("spawn.completing")
        d = self._dialect
        async with self._write() as conn:
            # The lease as it stands once the store is ours: a wait for the write lock or a connection may have
            # outlasted it, and a takeover or the sweep may have dropped this spawn's staged state meanwhile.
            at = now if clock is None else clock()
            params = {**d.scope_params(scope), "tok": token, "now": d.write_time(at)}
            if (await conn.execute(text(COMPLETE_SPAWN), params)).rowcount:
                return
            found = text(f"SELECT spawn_token, spawn_until FROM sessions WHERE {SCOPE}")
            row = (await conn.execute(found, params)).first()
        if row is not None and row.spawn_token == token:
            if row.spawn_until is None:
                return  # completed already (a replay)
            raise Conflict(
                f"spawning session '{scope.session_id}' took longer than its lease (spawn_lease_seconds); nothing "
                "was kept, retry"
            )
        raise Conflict(
            f"spawning session '{scope.session_id}' took longer than its lease and another spawn took it over or "
            "it was removed meanwhile; retry (this one left nothing behind)"
        )

    async def end_spawn(self, scope: Scope, token: str) -> bool:
        d = self._dialect
        params = {**d.scope_params(scope), "tok": token, "ended": d.write_time(SPAWN_ENDED)}
        completed = f"SELECT 1 FROM sessions WHERE {SCOPE} AND spawn_token = :tok AND {COMPLETE}"
        async with self._write() as conn:
            # On Postgres an update that waits on a completion in flight checks its predicates again on the row
            # that commit left: a row completed meanwhile is left as it is, and found completed below.
            if (await conn.execute(text(END_SPAWN), params)).rowcount:
                return True
            return (await conn.execute(text(completed), params)).first() is None

    async def abandon_spawn(self, scope: Scope, token: str) -> None:
        d = self._dialect
        params = {**d.scope_params(scope), "tok": token, "before": d.write_time(SPAWN_ENDED)}
        async with self._write() as conn:
            await self._drop_incomplete(conn, HELD_BY_LAPSED, params)

    async def _refuse_create(self, conn: AsyncConnection, scope: Scope) -> Conflict:
        """Why a session's insert wrote nothing: the session exists (the error says in which status, and notes its
        record's creation time, for the spawn's failure event)."""
        found = (
            await conn.execute(
                text(f"SELECT status, created_at FROM sessions WHERE {SCOPE}"), self._dialect.scope_params(scope)
            )
        ).first()
        if found is None:
            return session_exists(scope, None)
        return session_exists(scope, found.status).of_session(self._dialect.read_time(found.created_at))

    async def _refuse_spawn(self, conn: AsyncConnection, scope: Scope, params: Mapping[str, Any]) -> Conflict:
        """Why ``begin_spawn``'s insert wrote nothing: an earlier spawn still holds the session, or held it and its
        lease has run out at ``:now`` (one the caller did not name as ``replacing``: :class:`SpawnLapsed`), or the
        session exists."""
        held = (
            f"SELECT status, created_at, spawn_until, spawn_token, spawn_until <= :now AS lapsed FROM sessions "
            f"WHERE {SCOPE}"
        )
        row = (await conn.execute(text(held), params)).first()
        if row is None:
            return session_exists(scope, None)
        # The session that holds the id, noted for the spawn's failure event (recorded on it only).
        created = self._dialect.read_time(row.created_at)
        if row.spawn_until is not None:
            if row.lapsed and row.spawn_token is not None:
                return SpawnLapsed(spawn_in_progress(scope).message, row.spawn_token)
            return spawn_in_progress(scope).of_session(created)
        return session_exists(scope, row.status).of_session(created)

    async def seal(
        self, scope: Scope, token: str, now: float, lease_seconds: float, made_from: Incarnation | None = None
    ) -> bool:
        # (``made_from`` is for a working store apart from the records: this row is the durable session itself.)
        d = self._dialect
        params = d.lease_params(scope, token, now, lease_seconds)
        async with self._write() as conn:
            if (await conn.execute(text(SEAL), params)).rowcount:
                return True
            held = (await conn.execute(text(SEAL_REFUSED), params)).first()
        if held is None or held.status == SessionStatus.TERMINATED:
            return False  # (no-op for a missing or terminated one)
        # When the holder's seal lapses, as it stands (a stopped holder's lapses sooner than a whole lease).
        until = None if held.seal_until is None else d.read_epoch(held.seal_until)
        raise terminate_in_progress(scope, seal_lapses_in(until, now, lease_seconds))

    async def unseal(self, scope: Scope, token: str) -> None:
        async with self._write() as conn:
            await conn.execute(text(UNSEAL), {**self._dialect.scope_params(scope), "t": token})

    async def end_terminate_lease(self, scope: Scope, token: str) -> None:
        async with self._write() as conn:
            await conn.execute(text(END_TERMINATE_LEASE), {**self._dialect.scope_params(scope), "t": token})

    async def forget(self, scope: Scope, session: SessionInfo) -> None:
        # Never needed: spawn is one transaction here, and discarding the record discards its working memory.
        return None

    async def clear(self, scope: Scope, now: float) -> int:
        return await self._clear_rows(SESSION_PK, self._dialect.scope_params(scope), now)

    async def mark_terminated(self, scope: Scope, now: float, clear: bool, recorded: Incarnation | None) -> int:
        # One table holds the record and working memory: the terminated record refuses writes already. The clear is
        # the recorded row's only (found by the seal token it was recorded under, which it keeps): the session may
        # have been deleted and spawned again under its id since, and that one's items are not this terminate's.
        if not clear:
            return 0
        if recorded is None:
            return await self.clear(scope, now)
        params = self._dialect.scope_params(scope)
        if recorded.seal_token is not None:
            params["t"] = recorded.seal_token
        return await self._clear_rows(terminated_pk(recorded.seal_token), params, now)

    async def list_events(self, scope: Scope, limit: int) -> list[EventRecord]:
        d = self._dialect
        async with self._read() as conn:
            result = await conn.execute(text(LIST_EVENTS), {**d.scope_params(scope), "limit": limit})
            return [
                EventRecord(r.event_type, d.read_epoch(r.at), r.duration_ms, r.outcome, d.read_json(r.detail))
                for r in result
            ]

    # -- working memory ----------------------------------------------------------------------------------
    async def get(self, scope: Scope, key: str, now: float) -> Item | None:
        async with self._read() as conn:
            row = (
                await conn.execute(text(GET_ITEM), {**self._dialect.scope_params(scope), "k": key, "now": now})
            ).first()
        return None if row is None else Item(row.value, row.expires_at)

    async def _maybe_purge(self, conn: AsyncConnection, now: float) -> None:
        """Delete the rows whose TTL has passed every ``purge_every`` writes (they are invisible already; this
        keeps the table and the per-session key counts from growing with dead rows)."""
        self._writes_since_purge += 1
        if self._writes_since_purge >= self.purge_every:
            self._writes_since_purge = 0
            await conn.execute(text(self._purge_expired), {"now": now})

    # -- checkpoints -------------------------------------------------------------------------------------
    async def list_checkpoints(
        self, scope: Scope, limit: int, before: str | None, before_at: datetime | None = None
    ) -> list[CheckpointInfo]:
        """One session's checkpoints, newest first, ``limit`` of them, after ``before`` in that order if given (see
        the port for ``before_at``). Two statements: :meth:`_read_together` decides whether they share a snapshot
        (the bound read first is a position: it stays valid even if its checkpoint is pruned or deleted in
        between)."""
        d = self._dialect
        params: dict[str, Any] = {**d.scope_params(scope), "limit": limit}
        bound = ""
        async with self._read_together() as conn:
            if before is not None:
                # Looked up in this session only: another session's checkpoint of that id is as good as none.
                row = (await conn.execute(text(CHECKPOINT_BOUND), {**params, "b": before})).first()
                bound = d.before_bound
                if row is not None and (before_at is None or d.read_time(row.created_at) == before_at):
                    params.update(b_at=row.created_at, b_id=row.id)
                elif before_at is not None:
                    # Gone since it was listed: go on from its time. Ties at that instant were ordered by its row
                    # id, gone with it, so they all follow (one listed already may show again; none is skipped).
                    params.update(b_at=d.write_time(before_at.timestamp()), b_id=_PAST_EVERY_ROW_ID)
                else:
                    raise NotFound(f"checkpoint '{before}' (given as before) does not exist for this session")
            result = await conn.execute(
                text(
                    f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE session_pk = {SESSION_PK} {bound} "
                    f"ORDER BY {NEWEST_FIRST} LIMIT :limit"
                ),
                params,
            )
            return [self._checkpoint_info(r) for r in result]

    async def recent_checkpoints(
        self, projects: Sequence[UUID] | None, limit: int, until: float | None = None
    ) -> list[tuple[Scope, CheckpointInfo]]:
        if projects is not None and not projects:
            return []
        where, params = in_projects(self._dialect, "s.project_id", projects)
        if until is not None:
            where, params = f"{where} AND c.created_at < :until", {**params, "until": self._dialect.write_time(until)}
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT {_CHECKPOINT_COLUMNS_C}, s.project_id, s.agent_instance_id, s.session_id "
                    f"FROM checkpoints c JOIN sessions s ON s.id = c.session_pk WHERE {where} "
                    "ORDER BY c.created_at DESC, c.id DESC LIMIT :limit"
                ),
                {**params, "limit": limit},
            )
            return [
                (Scope(as_uuid(r.project_id), as_uuid(r.agent_instance_id), r.session_id), self._checkpoint_info(r))
                for r in result
            ]

    # -- episodes ----------------------------------------------------------------------------------------
    async def get_episode(self, project_id: UUID, episode_id: UUID) -> Episode | None:
        d = self._dialect
        async with self._read() as conn:
            row = (
                await conn.execute(
                    text(f"SELECT {EPISODE_COLUMNS} FROM episodes e WHERE e.project_id = :p AND e.episode_id = :e"),
                    {"p": d.write_uuid(project_id), "e": d.write_uuid(episode_id)},
                )
            ).first()
        return None if row is None else self._episode(row)

    async def recent_episodes(
        self, projects: Sequence[UUID] | None, limit: int, flt: EpisodeFilter | None = None
    ) -> list[Episode]:
        if projects is not None and not projects:
            return []
        where, params = in_projects(self._dialect, "e.project_id", projects)
        extra, fparams = filter_clause(self._dialect, flt, prefix="e.")
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT {EPISODE_COLUMNS} FROM episodes e WHERE {where}{extra} "
                    "ORDER BY e.created_at DESC, e.id DESC LIMIT :limit"
                ),
                {**params, **fparams, "limit": limit},
            )
            return [self._episode(r) for r in result]
