"""The embedded store: SQLite through SQLAlchemy async (aiosqlite), one file, both ports.

One :class:`SqliteStore` is the working store and the durable store at once, on one
:class:`~mcp_memory.stores.sqlite.connection.SqliteConnection` (transactions, the single writer, WAL
checkpoints). The calls on pause's and resume's path (the transitions, :mod:`.transitions`; and ``snapshot``,
``get_checkpoint``, ``restore``, ``open``) send their whole transaction to the connection's thread once
(``_write_direct`` / ``_read_direct``), same SQL, plain ``sqlite3``. A checkpoint is one row: its state is one JSON
text in ``checkpoints.state`` (:mod:`.schema`). Working memory: :mod:`.working`; episodes (recording, recall,
edits): :mod:`.episodes`; this module: sessions, events, terminate and checkpoint reads.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.models import (
    CheckpointData,
    Episode,
    PackedCheckpoint,
    Scope,
    SessionInfo,
    to_datetime,
)
from mcp_memory.stores.ports import EventRecord, Reclaimed, Retention, Vacuum
from mcp_memory.stores.sql.aged_sweep import AgedSweep
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.erase import ScopeErase
from mcp_memory.stores.sql.queries import (
    COMPLETE,
    SCOPE,
    SESSION_PK,
    checkpoint_selector,
)
from mcp_memory.stores.sql.retention import DELETE_CHECKPOINT, prune_events_statement
from mcp_memory.stores.sql.sessions import FIRST_KEYS, SessionQueries
from mcp_memory.stores.sql.store import SqlStore
from mcp_memory.stores.sql.transfer import SqlTransfer
from mcp_memory.stores.sqlite import statements
from mcp_memory.stores.sqlite.episodes import SqliteEpisodes
from mcp_memory.stores.sqlite.schema import decode_state
from mcp_memory.stores.sqlite.secure_delete import secure_delete
from mcp_memory.stores.sqlite.statements import (
    CHECKPOINT_ROW_COLUMNS,
    DIALECT,
    INSERT_SESSION,
    INSERT_SPAWNING,
    CheckpointRow,
    event_params,
    scope_params,
)
from mcp_memory.stores.sqlite.transitions import SqliteTransitions
from mcp_memory.stores.sqlite.vector_index import VECTOR_CACHE_BYTES, VectorIndex
from mcp_memory.stores.sqlite.working import SqliteWorking

_T = TypeVar("_T")


class SqliteStore(
    SqliteWorking, SqliteTransitions, SessionQueries, SqliteEpisodes, ScopeErase, SqlTransfer, AgedSweep, SqlStore
):
    """Working store and durable store on one SQLite file (see the module docstring)."""

    _dialect = DIALECT
    # Session discovery (sql/sessions.py): a listed session's first live keys, as a JSON array.
    _FIRST_KEYS = (
        "(SELECT json_group_array(key) FROM (SELECT w.key FROM working_items w WHERE w.session_pk = s.id "
        f"AND (w.expires_at IS NULL OR w.expires_at > :now) ORDER BY w.key LIMIT {FIRST_KEYS}))"
    )

    def __init__(self, url: str, *, synchronous: str = "FULL", vector_cache_bytes: int = VECTOR_CACHE_BYTES) -> None:
        super().__init__(url, synchronous=synchronous)
        self.vectors = VectorIndex(vector_cache_bytes)
        """Every project's vectors as an in-memory matrix (exact search; kept current by the file's triggers)."""

    @staticmethod
    def _read_keys(value: Any) -> tuple[str, ...]:
        return tuple(json.loads(value)) if value else ()

    def _read_together(self) -> AbstractAsyncContextManager[AsyncConnection]:
        # One transaction: the statements read one snapshot.
        return self._read(statements=2)

    async def ping(self) -> dict[str, Any]:
        """Check the store answers; returns facts for ``mcp-memory doctor``."""
        async with self._read(statements=2) as conn:
            version = (await conn.execute(text("SELECT sqlite_version()"))).scalar_one()
            schema = (await conn.execute(text("SELECT version FROM schema_version"))).scalar_one()
            sessions = (await conn.execute(text("SELECT COUNT(*) FROM sessions"))).scalar_one()
            episodes = (await conn.execute(text("SELECT COUNT(*) FROM episodes"))).scalar_one()
        return {
            "sqlite_version": version,
            "schema_version": schema,
            "sessions": sessions,
            "episodes": episodes,
            "path": self.path,
        }

    async def reclaim_erased(self, project_id: UUID, vacuum: Vacuum) -> Reclaimed:
        """The erase overwrote what it freed (``secure_delete``, :mod:`.secure_delete`); the WAL's frames from
        before it still hold the rows until it is truncated. No VACUUM: the freed pages are zeros already."""
        done: dict[str, str | list[str]] = {"secure_delete": "on: the deletions overwrote what they freed"}
        if await self.truncate_wal():
            done["wal"] = "checkpointed and truncated"
            return Reclaimed(done)
        return Reclaimed(
            done,
            (
                f"the WAL of {self.path} could not be truncated (another connection kept reading or writing past "
                "the busy timeout), so it may still hold the erased rows as they were",
            ),
        )

    async def probe(self) -> dict[str, Any]:
        """One read of the one-row schema table on a read connection: the file answers, whatever its size."""
        async with self._read() as conn:
            await conn.execute(text("SELECT 1 FROM schema_version"))
        return {}

    # -- sessions and events ---------------------------------------------------------------------------
    @staticmethod
    async def _insert_event(
        conn: AsyncConnection, session_pk: int, ev: EventRecord, retention: Retention | None = None
    ) -> None:
        await conn.execute(text(statements.INSERT_EVENT), event_params(session_pk, ev))
        prune = prune_events_statement(DIALECT, retention, session_pk, ev.at, "LIMIT -1 OFFSET :n")
        if prune is not None:
            await conn.execute(text(prune[0]), prune[1])

    async def create_session(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
    ) -> SessionInfo:
        async with self._write() as conn:
            pk = (
                await conn.execute(
                    text(INSERT_SESSION),
                    {
                        **scope_params(scope),
                        "t": str(agent_type_id) if agent_type_id else None,
                        "now": now,
                        "m": json.dumps(dict(metadata)),
                    },
                )
            ).scalar()
            if pk is None:
                raise await self._refuse_create(conn, scope)
            await self._insert_event(conn, pk, event)
        session = await self.get_session(scope)
        assert session is not None
        return session

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
            **scope_params(scope),
            "t": str(agent_type_id) if agent_type_id else None,
            "now": now,
            "m": json.dumps(dict(metadata)),
            "tok": token,
            "until": now + lease_seconds,
            "replacing": replacing,
        }
        async with self._write() as conn:
            await self._take_over_lapsed_spawn(conn, params)
            row = (await conn.execute(text(INSERT_SPAWNING), params)).first()
            if row is None:
                raise await self._refuse_spawn(conn, scope, params)
            await self._insert_event(conn, row.id, event)
        return self._session_info(row)

    async def discard_session(self, scope: Scope) -> None:
        async with self._write() as conn:
            await conn.execute(
                text(
                    f"DELETE FROM sessions WHERE {SCOPE} AND status = 'running' AND sealed = 0 "
                    "AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE session_pk = sessions.id)"
                ),
                scope_params(scope),
            )

    async def record_event(
        self, scope: Scope, event: EventRecord, retention: Retention | None = None, made_from: datetime | None = None
    ) -> None:
        params = scope_params(scope)

        def record(db: sqlite3.Connection) -> None:
            row = db.execute(f"SELECT id, created_at FROM sessions WHERE {SCOPE} AND {COMPLETE}", params).fetchone()
            if row is not None and statements.is_incarnation(row[1], made_from):
                db.execute(statements.INSERT_EVENT, event_params(row[0], event))
                self._prune_events_sync(db, row[0], event.at, retention)

        await self._write_direct(record)

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
            row = (
                await conn.execute(
                    text(f"SELECT id, status, terminate_result, sealed, seal_token FROM sessions WHERE {SCOPE}"),
                    scope_params(scope),
                )
            ).first()
            stored = self._terminated_result(scope, row, seal_token)
            if stored is not None:
                return stored
            assert row is not None
            if episode is not None:
                await self._insert_episode(conn, episode, embedding, embedding_model)
            await conn.execute(
                text(
                    "UPDATE sessions SET status = 'terminated', sealed = 1, updated_at = :now, "
                    "terminated_at = :now, episode_id = :e, terminate_result = :r, terminate_unfinished = :u "
                    "WHERE id = :pk"
                ),
                {
                    "now": event.at,
                    "e": str(episode.episode_id) if episode else None,
                    "r": json.dumps(dict(result)),
                    "u": seal_token is not None,  # its terminate marks it finished after its last step
                    "pk": row.id,
                },
            )
            await self._insert_event(conn, row.id, event)
            return dict(result)

    # -- checkpoints -----------------------------------------------------------------------------------
    async def delete_checkpoint(self, scope: Scope, checkpoint_id: str, event: EventRecord) -> bool:
        params = {**scope_params(scope), "cid": checkpoint_id}

        def delete(db: sqlite3.Connection) -> bool:
            # The checkpoint's state is overwritten where it lay, not left in the file's free space.
            with secure_delete(db):
                row = db.execute(DELETE_CHECKPOINT, params).fetchone()
            if row is None:
                return False
            db.execute(statements.INSERT_EVENT, event_params(row[0], event))
            return True

        return await self._write_direct(delete)

    async def _read_checkpoint(
        self, scope: Scope, checkpoint_id: str | None, build: Callable[[tuple[Any, ...]], _T], state: str = "state"
    ) -> _T | None:
        """One statement: the checkpoint's description, its state text and the session's seal, from one snapshot
        (the newest checkpoint if ``checkpoint_id`` is None); ``build`` makes the result on the reader's thread,
        off the loop."""
        params = scope_params(scope)
        where = checkpoint_selector(params, checkpoint_id)
        sealed = f"(SELECT sealed != 0 OR status = 'terminated' FROM sessions WHERE {SCOPE})"
        sql = f"SELECT {CHECKPOINT_ROW_COLUMNS}, {state}, {sealed} FROM checkpoints "
        sql += f"WHERE session_pk = {SESSION_PK} {where}"

        def read(db: sqlite3.Connection) -> _T | None:
            row = db.execute(sql, params).fetchone()
            return None if row is None else build(row)

        return await self._read_direct(read)

    async def get_checkpoint(self, scope: Scope, checkpoint_id: str | None) -> CheckpointData | None:
        return await self._read_checkpoint(
            scope,
            checkpoint_id,
            lambda row: CheckpointData(
                self._checkpoint_info(CheckpointRow(*row[:-2])), decode_state(row[-2]), bool(row[-1])
            ),
        )

    async def get_packed_checkpoint(
        self, scope: Scope, checkpoint_id: str | None, state_below: int | None = None
    ) -> PackedCheckpoint | None:
        # The state left as the stored text (the working store restores from it), or not read at all.
        state = (
            "state"
            if state_below is None
            else f"CASE WHEN keys_count < {int(state_below)} OR snapshot IS NULL THEN state ELSE '' END"
        )
        # With the creation time of the session's record (the incarnation the resume restores into and records on).
        made = f"(SELECT created_at FROM sessions WHERE {SCOPE})"
        return await self._read_checkpoint(
            scope,
            checkpoint_id,
            lambda row: PackedCheckpoint(
                self._checkpoint_info(CheckpointRow(*row[:-4])),
                row[-2],
                bool(row[-1]),
                snapshot=row[-4],
                made_from=to_datetime(row[-3]),
            ),
            f"snapshot, {made}, {state}",
        )
