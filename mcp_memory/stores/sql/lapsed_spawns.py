"""The incomplete rows of two-step spawns whose lease has run out (:data:`~mcp_memory.stores.sql.queries.COMPLETE`):
taken over by a later spawn of the session (in ``begin_spawn``'s transaction, once that spawn has dropped the lapsed
one's staged state: ``replacing``), or found and removed by the periodic sweep
(:class:`~mcp_memory.stores.lapsed_spawn_port.LapsedSpawns`). Both delete such a row with the same statements, and
only while the spawn they name still holds it.

The row's own predicates sit on the ``DELETE FROM sessions`` itself, not behind a sub-select of its ids: on Postgres
a delete that waits on the row's lock (the spawn completing it, or another server taking it over) checks them again
on the row as that commit left it, so a row completed meanwhile is kept, and one taken over is a new row (new id,
new token, new lease) that no sub-select of the old snapshot names.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.models import Scope
from mcp_memory.stores.lapsed_spawn_port import LapsedSpawn
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.dialect import Dialect, as_uuid
from mcp_memory.stores.sql.queries import COMPLETE, SCOPE

_LAPSED = (
    "SELECT id, project_id, agent_instance_id, session_id, spawn_token, spawn_until FROM sessions "
    f"WHERE NOT {COMPLETE} AND spawn_until <= :before AND spawn_token IS NOT NULL{{0}} "
    "ORDER BY spawn_until, id LIMIT :limit"
)
LAPSED_SPAWNS = _LAPSED.format("")
"""The incomplete sessions whose lease ran out at ``:before``, longest lapsed first, read through
``sessions_spawning`` (SQLite's ``SCHEMA``, Postgres migration 0022), which holds the incomplete sessions only and whose
predicate ``spawn_until <= :before`` implies: a pass that finds nothing reads an empty range of it, not the table."""
LAPSED_SPAWNS_AFTER = _LAPSED.format(
    " AND spawn_until >= :after_until AND (spawn_until > :after_until OR id > :after_id)"
)
"""The same, after the row ``:after_id`` whose lease ended at ``:after_until`` in that order (the first bound makes
the index's range start there on both databases)."""
TAKEN_OVER = f"{SCOPE} AND spawn_token = :replacing AND spawn_until <= :now"
"""The session's row while the spawn ``:replacing`` holds it, lapsed at ``:now``: the row a takeover replaces."""
HELD_BY_LAPSED = f"{SCOPE} AND spawn_token = :tok AND spawn_until <= :before"
"""The session's row while the spawn ``:tok`` holds it, lapsed at ``:before`` (incomplete: ``spawn_until`` is set)."""


class LapsedSpawnRows:
    """The takeover's and the sweep's deletion of lapsed incomplete rows; a mixin of
    :class:`~mcp_memory.stores.sql.store.SqlStore`."""

    _dialect: ClassVar[Dialect]

    if TYPE_CHECKING:

        def _read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    @staticmethod
    async def _drop_incomplete(conn: AsyncConnection, where: str, params: Mapping[str, Any]) -> int:
        """Delete the incomplete session ``where`` selects, with its working-memory rows (Postgres ties them to no
        foreign key) and its events (by cascade); the number of sessions deleted."""
        rows = f"NOT {COMPLETE} AND {where}"
        await conn.execute(
            text(f"DELETE FROM working_items WHERE session_pk IN (SELECT id FROM sessions WHERE {rows})"), params
        )
        return int((await conn.execute(text(f"DELETE FROM sessions WHERE {rows}"), params)).rowcount)

    async def _take_over_lapsed_spawn(self, conn: AsyncConnection, params: Mapping[str, Any]) -> None:
        """In ``begin_spawn``'s transaction: drop the row of the earlier spawn ``:replacing`` of the session if it
        never completed and its lease has run out at ``:now`` (its events go with it), so that the insert that
        follows makes it afresh. Nothing without ``replacing`` (most spawns): a lapsed row stays, and the insert's
        refusal names its spawn (``SpawnLapsed``), whose staged state the caller drops before it asks again."""
        if params.get("replacing") is not None:
            await self._drop_incomplete(conn, TAKEN_OVER, params)

    async def lapsed_spawns(self, before: float, limit: int, after: LapsedSpawn | None = None) -> list[LapsedSpawn]:
        d = self._dialect
        params: dict[str, Any] = {"before": d.write_time(before), "limit": limit}
        if after is not None:
            params |= {"after_until": d.write_time(after.until), "after_id": after.row}
        async with self._read() as conn:
            rows = await conn.execute(text(LAPSED_SPAWNS if after is None else LAPSED_SPAWNS_AFTER), params)
            return [
                LapsedSpawn(
                    Scope(as_uuid(r.project_id), as_uuid(r.agent_instance_id), r.session_id),
                    r.spawn_token,
                    d.read_epoch(r.spawn_until),
                    int(r.id),
                )
                for r in rows
            ]

    async def drop_lapsed_spawn(self, spawn: LapsedSpawn, before: float) -> bool:
        d = self._dialect
        params = {**d.scope_params(spawn.scope), "tok": spawn.token, "before": d.write_time(before)}
        # A transaction of its own: it locks one row (Postgres), so it never waits on another in a lock order that
        # could cross a forget's (which locks its sessions in id order).
        async with self._write() as conn:
            return await self._drop_incomplete(conn, HELD_BY_LAPSED, params) > 0


__all__ = ["HELD_BY_LAPSED", "LAPSED_SPAWNS", "LAPSED_SPAWNS_AFTER", "TAKEN_OVER", "LapsedSpawnRows"]
