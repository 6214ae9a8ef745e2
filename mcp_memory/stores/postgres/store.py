"""Postgres with pgvector: sessions, events, checkpoints and episodes (and working memory when Redis is not
configured), through SQLAlchemy 2 async Core on asyncpg.

Transactions and concurrency. Every port method is one transaction, and where it can be, one statement (a
single statement is atomic on its own, so it runs without BEGIN/COMMIT round trips). Postgres runs at READ
COMMITTED: each statement reads one snapshot, which is what makes ``snapshot`` atomic against a concurrent
``restore``. Writes that must check something first (the key limit of ``set``, the session's status) lock the
session's row (``FOR NO KEY UPDATE``) and then check in a *second* statement, which reads a snapshot taken after
the lock was granted; so two writers of one session queue on the row and never both see room for "one more key".

Checkpoints keep their state in one JSONB column ``{"key": ["<value JSON text>", expires_at], ...}``: the value
stays the caller's exact JSON text (JSONB would normalise spacing, key order and number forms, and the contract
promises the bytes back), while the checkpoint stays one row, readable with SQL (``state -> 'k' ->> 0``).

The package: :mod:`.connection` (engine, pool, deadlines, error mapping), :mod:`.statements` (the SQL text),
:mod:`.transitions` (pause and resume as one call each of a server-side function), :mod:`.working` (working memory),
:mod:`.episodes` and :mod:`.search` (recall as one SQL statement, see :func:`~.search.search_sql`), :mod:`.schema`
(the schema's state and its Alembic migrations) and this module, the adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.config import Settings
from mcp_memory.embeddings import vector_dimension
from mcp_memory.models import (
    CheckpointData,
    CheckpointInfo,
    Episode,
    Item,
    PackedCheckpoint,
    PackedState,
    Scope,
    SessionInfo,
    snapshot_made_from,
    snapshot_order,
)
from mcp_memory.stores.ports import EventRecord, Limits, PauseStamp, Retention, nothing_to_resume, respawned
from mcp_memory.stores.postgres import two_step
from mcp_memory.stores.postgres.aged_sweep import CountedAgedSweep
from mcp_memory.stores.postgres.connection import CHECKPOINT_TOO_LARGE
from mcp_memory.stores.postgres.episodes import PostgresEpisodes
from mcp_memory.stores.postgres.statements import (
    COUNT_SESSIONS,
    DELETE_CHECKPOINT_WITH_EVENT,
    DIALECT,
    DISCARD_SESSION,
    INSERT_SESSION,
    INSERT_SPAWNING,
    LOCK_FOR_TERMINATE,
    RECORD_EVENT,
    RECORD_EVENT_OF_INCARNATION,
    event_params,
    item_arrays,
    json_text,
    scope_params,
    session_params,
    state_items,
    state_text,
    terminate,
    with_event,
)
from mcp_memory.stores.postgres.transitions import LOCK_SESSION, PAUSE, RESUME, pause_args, resume_args
from mcp_memory.stores.postgres.working import PostgresWorking
from mcp_memory.stores.records import RESTAMP_AFTER_SECONDS
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.erase import ScopeErase
from mcp_memory.stores.sql.queries import COMPLETE, SCOPE
from mcp_memory.stores.sql.rules import (
    check_fits,
    check_writable,
    checkpoint_exists,
    keys_exceed,
    restore_overflows,
    session_exists,
)
from mcp_memory.stores.sql.sessions import FIRST_KEYS, SessionQueries
from mcp_memory.stores.sql.store import SqlStore
from mcp_memory.stores.sql.transfer import SqlTransfer


class PostgresStore(
    PostgresWorking, SessionQueries, PostgresEpisodes, ScopeErase, SqlTransfer, CountedAgedSweep, SqlStore
):
    """Working store and durable store on Postgres with pgvector (see the module docstring)."""

    _dialect = DIALECT
    # Session discovery (sql/sessions.py): a listed session's first live keys, as an array (byte order, as memory_list).
    _FIRST_KEYS = (
        "ARRAY(SELECT w.key FROM working_items w WHERE w.session_pk = s.id "
        f'AND (w.expires_at IS NULL OR w.expires_at > :now) ORDER BY w.key COLLATE "C" LIMIT {FIRST_KEYS})'
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresStore:
        """The store the settings describe (not started)."""
        return cls(
            settings.resolved_database_url(),
            embedding_dimension=vector_dimension(settings),
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            timeout_seconds=settings.database_timeout_seconds,
        )

    async def close(self) -> None:
        # A background build of per-project vector indexes (episodes.py) stops with the store.
        await self._stop_vector_indexing()
        await super().close()

    # -- sessions and events ---------------------------------------------------------------------------
    async def create_session(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
    ) -> SessionInfo:
        async with self._one() as conn:
            row = (
                await conn.execute(
                    text(with_event(INSERT_SESSION)),
                    {**session_params(scope, agent_type_id, metadata, now), **event_params(event)},
                )
            ).first()
            if row is None:
                raise await self._refuse_create(conn, scope)
        return self._session_info(row)

    async def begin_spawn(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
        token: str,
        lease_seconds: float,
        replacing: str | None = None,
    ) -> SessionInfo:
        params = {
            **session_params(scope, agent_type_id, metadata, now),
            **event_params(event),
            "tok": token,
            "until": DIALECT.write_time(now + lease_seconds),
            "replacing": replacing,
        }
        # One transaction: a lapsed spawn's row goes and the new one comes in together (a concurrent takeover
        # blocks on the row's lock, then finds it gone and inserts nothing: conflict).
        async with self._write() as conn:
            await self._take_over_lapsed_spawn(conn, params)
            row = (await conn.execute(text(with_event(INSERT_SPAWNING)), params)).first()
            if row is None:
                raise await self._refuse_spawn(conn, scope, params)
        return self._session_info(row)

    async def discard_session(self, scope: Scope) -> None:
        async with self._one() as conn:
            await conn.execute(text(DISCARD_SESSION), scope_params(scope))

    async def record_event(
        self, scope: Scope, event: EventRecord, retention: Retention | None = None, made_from: datetime | None = None
    ) -> None:
        # One statement either way: the record's creation time is a condition of the insert itself.
        params = {**scope_params(scope), **event_params(event)}
        statement = RECORD_EVENT
        if made_from is not None:
            params["made_from"] = made_from
            statement = RECORD_EVENT_OF_INCARNATION
        async with self._write() as conn:
            row = (await conn.execute(text(statement), params)).first()
            if row is not None:
                await self._bound_events(conn, row.id, row.event_count, retention, event.at)

    # -- lifecycle transitions -------------------------------------------------------------------------
    async def delete_checkpoint(self, scope: Scope, checkpoint_id: str, event: EventRecord) -> bool:
        async with self._one() as conn:
            row = (
                await conn.execute(
                    text(DELETE_CHECKPOINT_WITH_EVENT),
                    {**scope_params(scope), "cid": checkpoint_id, **event_params(event)},
                )
            ).first()
        return row is not None

    async def record_pause(
        self,
        scope: Scope,
        info: CheckpointInfo,
        items: Mapping[str, Item] | PackedState,
        event: EventRecord,
        retention: Retention | None = None,
    ) -> None:
        # One message, its own transaction (stores/postgres/two_step.py): lock, insert, event, retention; only on
        # the session the snapshot was read from.
        state = state_text(items)
        meta = json_text(info.metadata)
        made_from = snapshot_made_from(items)
        async with self._driver(CHECKPOINT_TOO_LARGE) as driver:
            # The event's duration is taken here, with the connection in hand (the store's own work counted).
            args = two_step.record_pause_args(
                scope, info, meta, state, event_params(event), retention, snapshot_order(items), made_from
            )
            done = await driver.fetchval(two_step.RECORD_PAUSE, *args)
        if not done:
            async with self._read() as conn:
                await self._refuse_pause(conn, scope, info.checkpoint_id, made_from)

    async def _refuse_pause(
        self, conn: AsyncConnection, scope: Scope, checkpoint_id: str, made_from: datetime | None = None
    ) -> NoReturn:
        """Why a pause's insert wrote nothing: the session is missing, another than ``made_from`` (deleted and spawned
        again since the snapshot) or not writable, else the id is taken."""
        found = (
            await conn.execute(
                text(f"SELECT status, sealed, created_at FROM sessions WHERE {SCOPE} AND {COMPLETE}"),
                scope_params(scope),
            )
        ).first()
        if found is not None and made_from is not None and found.created_at != made_from:
            raise respawned(scope.session_id, "pause")
        self._check_writable(scope, found)
        raise checkpoint_exists(checkpoint_id)

    # -- one transaction per transition (this store is the working store too) ---------------------------
    async def spawn_session(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
        items: Mapping[str, Item],
        limits: Limits,
    ) -> tuple[SessionInfo, int]:
        check_fits(items, now, limits)
        arrays = item_arrays(items, now)
        # One statement: the session, its event and its items, or (if the session exists) that session's row, read
        # by the statement that found it (its creation time noted for the spawn's failure event).
        async with self._one() as conn:
            row = (
                await conn.execute(
                    text(with_event(INSERT_SESSION, items=True, or_found=True)),
                    {**session_params(scope, agent_type_id, metadata, now), **arrays, **event_params(event)},
                )
            ).first()
            if row is None:
                # Found by the insert but not by the statement's snapshot (committed meanwhile): read now.
                raise await self._refuse_create(conn, scope)
        if not row.spawned:
            raise session_exists(scope, row.status).of_session(row.created_at)
        return self._session_info(row), len(arrays["keys"])

    async def pause_session(
        self,
        scope: Scope,
        info: CheckpointInfo,
        now: float,
        event: EventRecord,
        retention: Retention | None = None,
        restamp: Callable[[], PauseStamp] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> CheckpointInfo:
        # One message, its own transaction (stores/postgres/transitions.py): lock, snapshot, retention, event.
        meta = json_text(info.metadata)

        def args(stamp: PauseStamp, check_newer: bool) -> tuple[object, ...]:
            # The event's duration is taken here, with the connection in hand (the store's own work counted).
            cp = stamp.info
            return pause_args(
                scope, stamp.now, cp.checkpoint_id, cp.created_at, cp.label, meta, cp.keep,
                event_params(stamp.event), retention, check_newer,
            )  # fmt: skip

        async with self._driver(CHECKPOINT_TOO_LARGE) as driver:
            stamp = PauseStamp(info, now, event)
            if restamp is not None and clock is not None and clock() - now > RESTAMP_AFTER_SECONDS:
                stamp = restamp()  # it waited for a connection: dated as it is sent
            row = await driver.fetchrow(PAUSE, *args(stamp, restamp is not None))
            if row["overtaken"] and restamp is not None:
                # Another transaction held the session's row (the function does not wait for it: a write, pause or
                # resume of the session under way), or another process's pause, dated after this one, took it first:
                # dated again with the lock held (rare: only under contention), so the snapshot is of the state at
                # its recorded time (no key expired by then, no write committed after it, no newer checkpoint).
                async with driver.transaction():
                    await driver.execute(LOCK_SESSION, *two_step.scope_args(scope))
                    stamp = restamp()
                    row = await driver.fetchrow(PAUSE, *args(stamp, False))
        info = stamp.info
        if not row["done"]:
            # Why, from the session the function read (no read of ours: the session may be another by now), which
            # the error notes for the call's failure event.
            made = row["made"]
            check_writable(scope, None if row["status"] is None else (row["status"], row["sealed"]), made)
            raise checkpoint_exists(info.checkpoint_id).of_session(made)
        return info.model_copy(
            update={
                "keys_count": int(row["keys_count"]),
                "bytes": int(row["bytes"]),
                "content_hash": row["content_hash"],
            }
        )

    async def resume_session(
        self,
        scope: Scope,
        checkpoint_id: str | None,
        clear: bool,
        now: float,
        limits: Limits,
        event: EventRecord,
        retention: Retention | None = None,
        clock: Callable[[], float] | None = None,
    ) -> tuple[CheckpointInfo, int]:
        # One message, its own transaction (stores/postgres/transitions.py): lock, restore, status, event, retention.
        def args(at: float, skip_locked: bool) -> tuple[object, ...]:
            return resume_args(
                scope, at, checkpoint_id, clear, limits.max_keys, event_params(event), retention, skip_locked
            )

        async with self._driver() as driver:
            if clock is None:
                row = await driver.fetchrow(RESUME, *args(now, False))
            else:
                # Read again once a connection is in hand; if another transaction holds the session's row (the
                # function does not wait for it), read again with the lock held (rare: only under contention), so
                # a key that expired meanwhile is neither restored nor counted.
                row = await driver.fetchrow(RESUME, *args(clock(), True))
                if row["waited"]:
                    async with driver.transaction():
                        await driver.execute(LOCK_SESSION, *two_step.scope_args(scope))
                        row = await driver.fetchrow(RESUME, *args(clock(), False))
        # A refusal is told from the session the function read, which the error notes for the call's failure event.
        made = row["made"]
        if row["checkpoint_id"] is None:
            raise nothing_to_resume(scope, checkpoint_id, row["status"]).of_session(made)
        check_writable(scope, (row["status"], row["sealed"]), made)
        if not row["done"]:
            if clear:
                raise keys_exceed(int(row["restored"]), limits).of_session(made)
            raise restore_overflows(limits).of_session(made)
        info = _record_info(row)
        return info, int(row["restored"])

    async def record_resume(
        self,
        scope: Scope,
        event: EventRecord,
        retention: Retention | None = None,
        order: int | None = None,
        made_from: datetime | None = None,
    ) -> None:
        # One statement on the driver connection (stores/postgres/two_step.py).
        async with self._driver() as driver:
            args = two_step.record_resume_args(scope, event_params(event), retention, order, made_from)
            row = await driver.fetchrow(two_step.RECORD_RESUME, *args)
        if row["other"]:
            raise respawned(scope.session_id, "resume")
        check_writable(scope, None if row["status"] is None else (row["status"], row["sealed"]))

    async def record_terminate(
        self,
        scope: Scope,
        episode: Episode | None,
        embedding: Sequence[float] | None,
        result: Mapping[str, Any],
        event: EventRecord,
        embedding_model: str | None = None,
        seal_token: str | None = None,
    ) -> dict[str, Any]:
        async with self._write() as conn:
            row = (await conn.execute(text(LOCK_FOR_TERMINATE), scope_params(scope))).first()
            stored = self._terminated_result(scope, row, seal_token)
            if stored is not None:
                return stored
            assert row is not None
            episode_sql, episode_values = (
                self._episode_insert(episode, embedding, embedding_model) if episode else ("", {})
            )
            await conn.execute(
                text(terminate(episode_sql)),
                {
                    **episode_values,
                    "pk": row.id,
                    "eid": episode.episode_id if episode else None,
                    "r": json_text(dict(result)),
                    "u": seal_token is not None,
                    **event_params(event),
                },
            )
            return dict(result)

    # -- checkpoints -----------------------------------------------------------------------------------
    async def get_checkpoint(self, scope: Scope, checkpoint_id: str | None) -> CheckpointData | None:
        # The packed read (one statement on the driver connection), its state decoded here: no SQLAlchemy
        # compilation or result wrapping, the cost of a small read (stores/postgres/two_step.py).
        row = await self._packed_row(scope, checkpoint_id)
        if row is None:
            return None
        return CheckpointData(_record_info(row), state_items(orjson.loads(row["state"])), bool(row["session_sealed"]))

    async def get_packed_checkpoint(
        self, scope: Scope, checkpoint_id: str | None, state_below: int | None = None
    ) -> PackedCheckpoint | None:
        # One statement on the driver connection (stores/postgres/two_step.py): the resume's read.
        row = await self._packed_row(scope, checkpoint_id, state_below)
        if row is None:
            return None
        info = _record_info(row)
        sealed = bool(row["session_sealed"])
        return PackedCheckpoint(info, row["state"], sealed, snapshot=row["snapshot"], made_from=row["made_from"])

    async def _packed_row(
        self, scope: Scope, checkpoint_id: str | None, state_below: int | None = None
    ) -> Mapping[str, Any] | None:
        """A checkpoint (None: the newest) with its state as JSON text (with ``state_below``, only for fewer keys:
        see ``two_step.packed_reads``) and its session's seal; None if missing."""
        newest, by_id = two_step.packed_reads(state_below)
        async with self._driver() as driver:
            if checkpoint_id is None:
                row: Mapping[str, Any] | None = await driver.fetchrow(newest, *two_step.scope_args(scope))
            else:
                row = await driver.fetchrow(by_id, *two_step.scope_args(scope), checkpoint_id)
        return row

    # -- transfer (sql/export_reads.py, sql/transfer.py) -------------------------------------------------
    _vector_column = "CAST(e.embedding AS text)"

    @staticmethod
    def _read_vector(value: Any) -> list[float] | None:
        vector: list[float] = orjson.loads(value)
        return vector

    @staticmethod
    def _checkpoint_extra(state: str) -> dict[str, Any]:
        return {"state_bytes": len(state.encode())}

    async def _imported(self, conn: AsyncConnection, session_pks: Sequence[int]) -> None:
        # The imported sessions' counts, from their rows (migration 0011): they are the transaction's own.
        if session_pks:
            await conn.execute(text(COUNT_SESSIONS), {"pks": list(session_pks)})

    async def _import_episode(
        self, conn: AsyncConnection, ep: Episode, embedding: Sequence[float] | None, model: str | None
    ) -> None:
        sql, params = self._episode_insert(ep, embedding, model)
        await conn.execute(text(f"WITH {sql} SELECT 1"), params)


def _record_info(row: Mapping[str, Any]) -> CheckpointInfo:
    """A checkpoint's description from a row the asyncpg driver path returned (the transitions' and two-step reads)."""
    return CheckpointInfo(
        checkpoint_id=row["checkpoint_id"],
        created_at=row["created_at"],
        keys_count=row["keys_count"],
        bytes=row["bytes"],
        label=row["label"],
        content_hash=row["content_hash"],
        metadata=orjson.loads(row["metadata"]),
        keep=row["keep"],
    )


__all__ = ["PostgresStore"]
