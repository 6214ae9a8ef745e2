"""Age-based retention across every session, in bounded batches, for the periodic sweep
(:mod:`mcp_memory.services.retention_sweep`).

A pause or resume prunes by age only the session it writes; a session no call writes any more (terminated or
abandoned) would otherwise keep its old checkpoints and events for ever. Each call here deletes at most ``limit``
rows in one short transaction, so that a sweep never holds SQLite's single writer or Postgres' row locks for long,
and spares what the per-session prune spares (:data:`~mcp_memory.stores.sql.retention.AGED_CHECKPOINTS`,
:data:`~mcp_memory.stores.sql.retention.AGED_EVENTS`). A batch finds its rows through an index on their date
(``events_aged``; ``checkpoints_aged`` on SQLite, ``checkpoints_newest`` on Postgres), so a pass that finds nothing
reads next to nothing rather than both tables.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.dialect import Dialect
from mcp_memory.stores.sql.retention import AGED_CHECKPOINTS, AGED_EVENTS


class AgedSweep:
    """``prune_aged_checkpoints`` and ``prune_aged_events`` for a SQL store that keeps no per-session counts
    (SQLite; Postgres overrides :meth:`_prune_aged` to keep its counts exact)."""

    _dialect: ClassVar[Dialect]

    if TYPE_CHECKING:

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    async def prune_aged_checkpoints(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` checkpoints created before ``before`` (epoch seconds), of any session, that the
        age bound prunes (never kept ones, never a session's newest); the number deleted."""
        return await self._prune_aged("checkpoints", AGED_CHECKPOINTS, "c", before, limit)

    async def prune_aged_events(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` events dated before ``before``, of any session, that the age bound prunes (never
        a successful spawn or terminate, never a session's newest event); the number deleted."""
        return await self._prune_aged("events", AGED_EVENTS, "e", before, limit)

    async def _prune_aged(self, table: str, candidates: str, alias: str, before: float, limit: int) -> int:
        """One batch in one transaction (the single writer excludes every other write meanwhile)."""
        params: dict[str, Any] = {"cutoff": self._dialect.write_time(before), "limit": limit}
        async with self._write() as conn:
            result = await conn.execute(
                text(f"DELETE FROM {table} WHERE id IN ({candidates.format(column='id', within='')})"), params
            )
            return int(result.rowcount)


__all__ = ["AgedSweep"]
