"""The SQLite store's lifecycle transitions: each pause, resume and spawn is one transaction handed to the
connection's thread whole, once (:meth:`~mcp_memory.stores.sqlite.connection.SqliteConnection._write_direct`), plain
``sqlite3``, with the retention prune it runs.

- The records of the two-step path (working memory in Redis): ``record_pause`` and ``record_resume``.
- The one-transaction calls (this store holds working memory too): ``spawn_session``, ``pause_session`` and
  ``resume_session``, working memory and records together.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from mcp_memory.models import (
    CheckpointInfo,
    Item,
    PackedState,
    Scope,
    SessionInfo,
    SessionStatus,
    content_hash,
    snapshot_made_from,
    snapshot_order,
    to_datetime,
)
from mcp_memory.stores.ports import EventRecord, Limits, PauseStamp, Retention, nothing_to_resume
from mcp_memory.stores.records import OVERTAKEN_WITHIN_SECONDS, RESTAMP_AFTER_SECONDS
from mcp_memory.stores.sql.queries import COMPLETE, LIVE, SCOPE, SESSION_PK, checkpoint_selector
from mcp_memory.stores.sql.retention import prune_events_statement, prune_statement
from mcp_memory.stores.sql.rules import check_fits, checkpoint_exists, session_exists
from mcp_memory.stores.sqlite import statements
from mcp_memory.stores.sqlite.schema import decode_state
from mcp_memory.stores.sqlite.statements import (
    CHECKPOINT_ROW_COLUMNS,
    DIALECT,
    INSERT_CHECKPOINT,
    INSERT_SESSION,
    NEWER_CHECKPOINT,
    UPSERT_ITEM,
    CheckpointRow,
    checkpoint_params,
    event_params,
    found_session_sync,
    item_rows,
    noting_refusals,
    restore_sync,
    scope_params,
    set_status_sync,
    writable_pk,
    writable_pk_sync,
)

_T = TypeVar("_T")


class SqliteTransitions:
    """The lifecycle transitions of :class:`~mcp_memory.stores.sqlite.store.SqliteStore` (see the module docstring)."""

    if TYPE_CHECKING:

        async def _write_direct(self, fn: Callable[[sqlite3.Connection], _T]) -> _T: ...  # SqliteConnection's

        def _session_info(self, row: Any) -> SessionInfo: ...  # SqlStore's

        def _checkpoint_info(self, row: Any) -> CheckpointInfo: ...  # SqlStore's

    # -- retention, in the transition's transaction ------------------------------------------------------
    @staticmethod
    def _prune_sync(db: sqlite3.Connection, session_pk: int, info: CheckpointInfo, retention: Retention | None) -> None:
        """Apply ``retention`` (checkpoints, then events) in the pause's transaction, after its checkpoint and event
        went in (the single writer holds the session: no other pause can insert between the two).

        Under the connection's ``secure_delete``, FAST from its opening (:mod:`.secure_delete`), with no PRAGMA here:
        with it ON (Debian's build's default) deleting a pruned checkpoint would zero its state's overflow pages,
        writing and syncing them all again (0.25-0.3 ms of a 1,000-key pause at the bound). FAST zeroes what costs
        no extra I/O and leaves the freed pages to the next pause's checkpoint, which reuses them."""
        at = info.created_at.timestamp()
        for prune in (
            prune_statement(DIALECT, retention, session_pk, at, "LIMIT -1 OFFSET :n", info.checkpoint_id),
            prune_events_statement(DIALECT, retention, session_pk, at, "LIMIT -1 OFFSET :n"),
        ):
            if prune is not None:
                db.execute(*prune)

    @staticmethod
    def _prune_events_sync(db: sqlite3.Connection, session_pk: int, at: float, retention: Retention | None) -> None:
        """Apply ``retention``'s event bounds at ``at`` in a resume's transaction, after its event went in, as a
        pause applies them: resumes in a row never add events beyond the bound."""
        prune = prune_events_statement(DIALECT, retention, session_pk, at, "LIMIT -1 OFFSET :n")
        if prune is not None:
            db.execute(*prune)

    # -- the two-step path's records (working memory in another store) ------------------------------------
    async def record_pause(
        self,
        scope: Scope,
        info: CheckpointInfo,
        items: Mapping[str, Item] | PackedState,
        event: EventRecord,
        retention: Retention | None = None,
    ) -> None:
        params = checkpoint_params(scope, info, items)
        order, made_from = snapshot_order(items), snapshot_made_from(items)

        def pause(db: sqlite3.Connection) -> None:
            if made_from is not None:
                # Only on the session the snapshot was read from (one point read in this transaction: no round trip
                # on this store), never on one spawned again under its id since.
                writable_pk_sync(db, scope, made_from, "pause")
            # One statement checks the session is writable and inserts the checkpoint, state included.
            row = db.execute(INSERT_CHECKPOINT, params).fetchone()
            if row is None:
                writable_pk_sync(db, scope)  # raises NotFound / Conflict if that is why
                raise checkpoint_exists(info.checkpoint_id)
            set_status_sync(db, row[0], SessionStatus.PAUSED, event, order)
            self._prune_sync(db, row[0], info, retention)

        await self._write_direct(pause)

    async def record_resume(
        self,
        scope: Scope,
        event: EventRecord,
        retention: Retention | None = None,
        order: int | None = None,
        made_from: datetime | None = None,
    ) -> None:
        def resume(db: sqlite3.Connection) -> None:
            pk = writable_pk_sync(db, scope, made_from, "resume")
            set_status_sync(db, pk, SessionStatus.RUNNING, event, order)
            self._prune_events_sync(db, pk, event.at, retention)

        await self._write_direct(resume)

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
        params = {
            **scope_params(scope),
            "t": str(agent_type_id) if agent_type_id else None,
            "now": now,
            "m": json.dumps(dict(metadata)),
        }

        def spawn(db: sqlite3.Connection) -> tuple[SessionInfo, int]:
            cur = db.execute(INSERT_SESSION, params)
            row = cur.fetchone()
            if row is None:
                # The session that exists, as this transaction sees it: a failure event is recorded on it only.
                status, created = db.execute(
                    f"SELECT status, created_at FROM sessions WHERE {SCOPE}", scope_params(scope)
                ).fetchone()
                raise session_exists(scope, status).of_session(to_datetime(created))
            session = self._session_info(
                SimpleNamespace(**dict(zip([d[0] for d in cur.description], row, strict=True)))
            )
            db.execute(statements.INSERT_EVENT, event_params(row[0], event))
            rows = item_rows(row[0], items, now)
            if rows:
                db.executemany(UPSERT_ITEM, rows)
            return session, len(rows)

        return await self._write_direct(spawn)

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
        snapshot = (
            f"SELECT key, value, expires_at FROM working_items WHERE session_pk = {SESSION_PK} AND {LIVE} ORDER BY key"
        )

        def pause(db: sqlite3.Connection) -> CheckpointInfo:
            # Under the write lock (BEGIN IMMEDIATE), the service's clock read on this thread: stamped again if the
            # pause waited for the writer or the lock (the state now read may hold writes committed after the first
            # stamp, and keys expired since), or if another process's pause, stamped later, wrote its checkpoint
            # while this one waited. Uncontended, one clock reading more, no second stamp.
            stamp = PauseStamp(info, now, event)
            if restamp is not None:
                if clock is not None and clock() - now > RESTAMP_AFTER_SECONDS:
                    stamp = restamp()
                else:
                    at = info.created_at.timestamp()
                    window = {"at": at, "until": at + OVERTAKEN_WITHIN_SECONDS}
                    newer = db.execute(NEWER_CHECKPOINT, {**scope_params(scope), **window})
                    if newer.fetchone() is not None:
                        stamp = restamp()
            read_params = {**scope_params(scope), "now": stamp.now}
            items = {key: Item(value, expires_at) for key, value, expires_at in db.execute(snapshot, read_params)}
            digest, size = content_hash(items)
            saved = stamp.info.model_copy(update={"keys_count": len(items), "bytes": size, "content_hash": digest})
            row = db.execute(INSERT_CHECKPOINT, checkpoint_params(scope, saved, items)).fetchone()
            if row is None:
                writable_pk_sync(db, scope)  # raises NotFound / Conflict if that is why
                raise checkpoint_exists(saved.checkpoint_id)
            set_status_sync(db, row[0], SessionStatus.PAUSED, stamp.event.with_detail({"items": len(items)}))
            self._prune_sync(db, row[0], saved, retention)
            return saved

        # Its refusals note the session refused, for the call's failure event.
        return await self._write_direct(noting_refusals(scope, pause))

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
        params = scope_params(scope)
        where = checkpoint_selector(params, checkpoint_id)
        # The checkpoint and whether its session takes writes, in one statement (the session's row by primary key).
        session = f"(SELECT {{}} FROM sessions WHERE id = checkpoints.session_pk AND {COMPLETE})"
        sql = (
            f"SELECT {CHECKPOINT_ROW_COLUMNS}, state, {session.format('id')}, {session.format('status')}, "
            f"{session.format('sealed')} FROM checkpoints WHERE session_pk = {SESSION_PK} {where}"
        )

        def resume(db: sqlite3.Connection) -> tuple[CheckpointInfo, int]:
            # The restore's time read under the write lock: what it restores and counts is what is live once it
            # holds the lock, however long it waited (a float, nothing built from it: no threshold as for a pause).
            at = now if clock is None else clock()
            found = db.execute(sql, params).fetchone()
            if found is None:
                # Why, from the session as this transaction sees it (read only now: a resume that finds its
                # checkpoint reads nothing more).
                session = found_session_sync(db, scope)
                refusal = nothing_to_resume(scope, checkpoint_id, None if session is None else session[0])
                raise refusal.of_session(None if session is None else session[1])
            info = self._checkpoint_info(CheckpointRow(*found[:-4]))
            items = decode_state(found[-4])
            pk = writable_pk(scope, None if found[-3] is None else found[-3:])
            restored = restore_sync(db, pk, items, clear, at, limits)
            set_status_sync(
                db,
                pk,
                SessionStatus.RUNNING,
                event.with_detail({"checkpoint_id": info.checkpoint_id, "items": restored}),
            )
            self._prune_events_sync(db, pk, at, retention)
            return info, restored

        return await self._write_direct(noting_refusals(scope, resume))


__all__ = ["SqliteTransitions"]
