"""The Postgres store's working memory: a session's items as rows of ``working_items``. Every write locks the
session's row first (``FOR NO KEY UPDATE``) and then checks what it must (the session takes writes, the key limit)
in a second statement, which reads a snapshot taken after the lock was granted: two writers of one session queue on
the row and never both see room for "one more key". ``delete`` and a clear are one statement each."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.models import Item, Scope
from mcp_memory.stores.ports import Limits
from mcp_memory.stores.postgres.connection import PostgresConnection
from mcp_memory.stores.postgres.statements import (
    DELETE_ITEM,
    LIST_KEYS,
    LIVE_COUNT,
    LOCK_WRITABLE,
    PURGE_EXPIRED,
    SET_ITEM,
    SNAPSHOT,
    UPSERT_ITEMS,
    clear_items,
    item_arrays,
    scope_params,
)
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.rules import check_fits, check_writable, keys_full, restore_overflows


class PostgresWorking(PostgresConnection):
    """The working-store half of :class:`~mcp_memory.stores.postgres.store.PostgresStore`."""

    _purge_expired: ClassVar[str] = PURGE_EXPIRED
    """The purge of expired items (``SqlStore._maybe_purge``), in Postgres' words."""

    if TYPE_CHECKING:

        async def _maybe_purge(self, conn: AsyncConnection, now: float) -> None: ...  # SqlStore's

    async def _lock_writable(self, conn: AsyncConnection, scope: Scope) -> int:
        """Lock the session's row for this transaction and check it accepts writes; its pk."""
        row = (await conn.execute(text(LOCK_WRITABLE), scope_params(scope))).first()
        self._check_writable(scope, row)
        assert row is not None
        return int(row.id)

    @staticmethod
    def _check_writable(scope: Scope, row: Any) -> None:
        check_writable(scope, None if row is None else (row.status, row.sealed))

    # -- working store ---------------------------------------------------------------------------------
    async def open(self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits) -> int:
        check_fits(items, now, limits)
        async with self._write() as conn:
            pk = await self._lock_writable(conn, scope)
            arrays = item_arrays(items, now)
            if arrays["keys"]:
                await conn.execute(text(UPSERT_ITEMS), {"pk": pk, **arrays})
            return len(arrays["keys"])

    async def set(self, scope: Scope, key: str, item: Item, now: float, limits: Limits) -> None:
        async with self._write() as conn:
            pk = await self._lock_writable(conn, scope)
            params = {"pk": pk, "k": key, "v": item.value, "e": item.expires_at, "now": now, "max": limits.max_keys}
            if (await conn.execute(text(SET_ITEM), params)).first() is None:
                raise keys_full(scope, limits)
            await self._maybe_purge(conn, now)

    async def delete(self, scope: Scope, key: str, now: float) -> bool:
        async with self._one() as conn:
            row = (await conn.execute(text(DELETE_ITEM), {**scope_params(scope), "k": key, "now": now})).first()
        self._check_writable(scope, row)
        assert row is not None
        return bool(row.live)

    async def list_keys(self, scope: Scope, prefix: str, now: float) -> list[str]:
        async with self._read() as conn:
            result = await conn.execute(text(LIST_KEYS), {**scope_params(scope), "now": now, "prefix": prefix})
            return [row.key for row in result]

    async def snapshot(self, scope: Scope, now: float) -> dict[str, Item]:
        async with self._read() as conn:
            result = await conn.execute(text(SNAPSHOT), {**scope_params(scope), "now": now})
            return {row.key: Item(row.value, row.expires_at) for row in result}

    async def restore(self, scope: Scope, items: Mapping[str, Item], clear: bool, now: float, limits: Limits) -> int:
        if clear:
            check_fits(items, now, limits)
        arrays = item_arrays(items, now)
        async with self._write() as conn:
            pk = await self._lock_writable(conn, scope)
            if clear:
                await conn.execute(text("DELETE FROM working_items WHERE session_pk = :pk"), {"pk": pk})
            if arrays["keys"]:
                await conn.execute(text(UPSERT_ITEMS), {"pk": pk, **arrays})
            if not clear:
                live = (await conn.execute(text(LIVE_COUNT), {"pk": pk, "now": now})).scalar_one()
                if live > limits.max_keys:
                    raise restore_overflows(limits)
            return len(arrays["keys"])

    async def _clear_rows(self, session_pk: str, params: Mapping[str, Any], now: float) -> int:
        """Delete the working memory of the session row ``session_pk`` selects with ``params``: one statement."""
        async with self._one() as conn:
            live = (await conn.execute(text(clear_items(session_pk)), {**params, "now": now})).scalar_one()
        return int(live)


__all__ = ["PostgresWorking"]
