"""The SQLite store's working memory: a session's items as rows of ``working_items``, written and read on the
connection's thread (:class:`~mcp_memory.stores.sqlite.connection.SqliteConnection`); ``open`` and ``restore`` in one
hand-over each, ``set`` as one statement that checks the session and the key limit and upserts. A deletion the caller
asks for (``delete``, ``clear`` and a terminate's clear) overwrites what it frees (:mod:`.secure_delete`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.models import Item, Scope
from mcp_memory.stores.ports import Limits
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.queries import COMPLETE, LIVE, SCOPE, SESSION_PK
from mcp_memory.stores.sql.rules import check_fits, keys_full
from mcp_memory.stores.sqlite.connection import SqliteConnection
from mcp_memory.stores.sqlite.secure_delete import secure_delete
from mcp_memory.stores.sqlite.statements import (
    LIVE_COUNT,
    SET_SQL,
    UPSERT_ITEM,
    item_rows,
    restore_sync,
    scope_params,
    writable_pk,
    writable_pk_sync,
)

_DELETE_KEY = "DELETE FROM working_items WHERE session_pk = :pk AND key = :k RETURNING expires_at"


class SqliteWorking(SqliteConnection):
    """The working-store half of :class:`~mcp_memory.stores.sqlite.store.SqliteStore`."""

    if TYPE_CHECKING:

        async def _maybe_purge(self, conn: AsyncConnection, now: float) -> None: ...  # SqlStore's

    async def _writable_session(self, conn: AsyncConnection, scope: Scope) -> int:
        row = (
            await conn.execute(
                text(f"SELECT id, status, sealed FROM sessions WHERE {SCOPE} AND {COMPLETE}"),
                scope_params(scope),
            )
        ).first()
        return writable_pk(scope, None if row is None else tuple(row))

    # -- working store ---------------------------------------------------------------------------------
    async def open(self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits) -> int:
        check_fits(items, now, limits)

        def open_(db: sqlite3.Connection) -> int:
            rows = item_rows(writable_pk_sync(db, scope), items, now)
            db.executemany(UPSERT_ITEM, rows)
            return len(rows)

        return await self._write_direct(open_)

    async def set(self, scope: Scope, key: str, item: Item, now: float, limits: Limits) -> None:
        # The hot path: one statement checks the session is writable and the key fits, and upserts.
        params = {
            **scope_params(scope),
            "k": key,
            "v": item.value,
            "e": item.expires_at,
            "now": now,
            "max": limits.max_keys,
        }
        async with self._write() as conn:
            if (await conn.execute(text(SET_SQL), params)).first() is not None:
                await self._maybe_purge(conn, now)
                return
            await self._writable_session(conn, scope)  # raises NotFound / Conflict if that is why
            raise keys_full(scope, limits)

    async def delete(self, scope: Scope, key: str, now: float) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            pk = writable_pk_sync(db, scope)
            # Asked for by the caller: the value is overwritten where it lay, whatever the connection's setting.
            with secure_delete(db):
                row = db.execute(_DELETE_KEY, {"pk": pk, "k": key}).fetchone()
            return row is not None and (row[0] is None or row[0] > now)

        return await self._write_direct(delete)

    async def list_keys(self, scope: Scope, prefix: str, now: float) -> list[str]:
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT key FROM working_items WHERE session_pk = {SESSION_PK} AND {LIVE} "
                    "AND substr(key, 1, :n) = :prefix ORDER BY key"
                ),
                {**scope_params(scope), "now": now, "n": len(prefix), "prefix": prefix},
            )
            return [row.key for row in result]

    async def snapshot(self, scope: Scope, now: float) -> dict[str, Item]:
        sql = (
            f"SELECT key, value, expires_at FROM working_items WHERE session_pk = {SESSION_PK} AND {LIVE} ORDER BY key"
        )
        params = {**scope_params(scope), "now": now}

        def read(db: sqlite3.Connection) -> dict[str, Item]:
            # One statement, so one consistent snapshot; the items are built on the reader's thread.
            return {key: Item(value, expires_at) for key, value, expires_at in db.execute(sql, params)}

        return await self._read_direct(read)

    async def restore(self, scope: Scope, items: Mapping[str, Item], clear: bool, now: float, limits: Limits) -> int:
        if clear:
            check_fits(items, now, limits)

        def restore(db: sqlite3.Connection) -> int:
            return restore_sync(db, writable_pk_sync(db, scope), items, clear, now, limits)

        return await self._write_direct(restore)

    async def _clear_rows(self, session_pk: str, params: Mapping[str, Any], now: float) -> int:
        """Delete the working memory of the session row ``session_pk`` selects with ``params``; the count of its live
        keys."""
        find = f"SELECT {session_pk}"

        def clear(db: sqlite3.Connection) -> int:
            (pk,) = db.execute(find, dict(params)).fetchone()
            if pk is None:
                return 0
            (live,) = db.execute(LIVE_COUNT, {"pk": pk, "now": now}).fetchone()
            with secure_delete(db):
                db.execute("DELETE FROM working_items WHERE session_pk = :pk", {"pk": pk})
            return int(live)

        return await self._write_direct(clear)


__all__ = ["SqliteWorking"]
