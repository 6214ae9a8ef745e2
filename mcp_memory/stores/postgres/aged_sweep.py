"""The periodic age sweep (:mod:`mcp_memory.stores.sql.aged_sweep`) on Postgres, keeping the counts retention reads
(``sessions.unkept_checkpoints`` and ``sessions.event_count``, migration 0011) exact.

Each batch first locks the rows of the sessions it will touch, in id order and as every other writer of a
session's checkpoints and events locks them (``FOR NO KEY UPDATE``): a pause counting its session's rows waits for
the batch, or the batch for it. The delete then runs in a fresh snapshot (READ COMMITTED), so that a row a pause
pruned or a checkpoint it made the newest meanwhile is seen, and takes each session's count down by what it
deleted, in the same statement.
"""

from __future__ import annotations

from typing import Any

from mcp_memory.stores.sql.aged_sweep import AgedSweep
from mcp_memory.stores.sql.clauses import text

COUNTS = {"checkpoints": "unkept_checkpoints", "events": "event_count"}
"""Each table's count on the session's row (every checkpoint the sweep deletes is one not kept)."""


class CountedAgedSweep(AgedSweep):
    """The age sweep with the sessions' counts kept exact."""

    async def _prune_aged(self, table: str, candidates: str, alias: str, before: float, limit: int) -> int:
        params: dict[str, Any] = {"cutoff": self._dialect.write_time(before), "limit": limit}
        # The candidates' sessions straight from the candidates (joining their rows back by id could read the
        # whole table, when the planner expects many).
        lock = (
            f"SELECT id FROM sessions WHERE id IN ({candidates.format(column='session_pk', within='')}) "
            "ORDER BY id FOR NO KEY UPDATE"
        )
        within = f"AND {alias}.session_pk = ANY (CAST(:pks AS bigint[]))"
        count = COUNTS[table]
        delete = (
            f"WITH d AS (DELETE FROM {table} WHERE id IN ({candidates.format(column='id', within=within)}) "
            "RETURNING session_pk), "
            "g AS (SELECT session_pk, count(*) AS n FROM d GROUP BY session_pk), "
            f"u AS (UPDATE sessions SET {count} = {count} - g.n FROM g WHERE sessions.id = g.session_pk) "
            "SELECT coalesce(sum(n), 0) FROM g"
        )
        async with self._write() as conn:
            pks = [int(row[0]) for row in await conn.execute(text(lock), params)]
            if not pks:
                return 0
            return int((await conn.execute(text(delete), {**params, "pks": pks})).scalar_one())


__all__ = ["CountedAgedSweep"]
