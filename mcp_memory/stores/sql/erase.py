"""Deleting whole sessions, agents and projects from a SQL store: ``delete_session`` (the tool) and ``erase`` (the
operator's ``mcp-memory forget``), with the same steps on both SQL stores.

What goes: the sessions' working memory rows, checkpoints, events and records, and (unless kept) the episodes, with
their vectors, full-text postings and their share of the project's full-text statistics (SQLite keeps those itself:
the store's ``_unindex`` hook of :class:`~mcp_memory.stores.sql.episode_edits.EpisodeEdits`, the one
``forget_episodes`` uses, takes the episodes out first; Postgres's triggers on ``episodes`` do it), so that the other
episodes score as in a store that never held them; and, once the project holds no episode, what the store keeps per
project (its ``_emptied`` hook), so that no row names it. One transaction: all of it goes, or none. The deletions
overwrite what they free where the store can (SQLite, its ``_overwriting`` hook); what is left below the rows
after the commit (SQLite's WAL, Postgres's dead rows) the operator's ``forget`` reclaims
(:mod:`~mcp_memory.stores.reclaim_port`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory import faults
from mcp_memory.errors import NotFound
from mcp_memory.models import Scope, SessionStatus
from mcp_memory.stores.ports import Removed, sealed_by_another_call
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.dialect import Dialect, as_uuid
from mcp_memory.stores.sql.queries import COMPLETE, LIVE, SCOPE, in_values

BATCH = 500
"""Rows deleted per statement by key (SQLite binds at most 32,766 parameters)."""


def _where(d: Dialect, project_id: UUID, agent_instance_id: UUID | None, session_id: str | None) -> tuple[str, str]:
    """The conditions on ``sessions`` and on ``episodes e`` that pick a project, or one of its agents, or one
    session (with its parameters ``:p``, ``:a``, ``:s``)."""
    sessions = ["project_id = :p"]
    episodes = ["e.project_id = :p"]
    if agent_instance_id is not None:
        sessions.append("agent_instance_id = :a")
        episodes.append("e.agent_instance_id = :a")
    if session_id is not None:
        sessions.append("session_id = :s")
        episodes.append("e.session_id = :s")
    return " AND ".join(sessions), " AND ".join(episodes)


class ScopeErase:
    """``delete_session`` and ``erase`` for a SQL store (see the module docstring)."""

    _dialect: ClassVar[Dialect]

    if TYPE_CHECKING:

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    if TYPE_CHECKING:

        async def _unindex(self, conn: AsyncConnection, episode_pks: Sequence[int]) -> None: ...

        async def _emptied(self, conn: AsyncConnection, project_id: UUID) -> bool: ...

        async def _erased(self, project_id: UUID) -> None: ...

        def _overwriting(self, conn: AsyncConnection) -> AbstractAsyncContextManager[None]: ...

    async def _sessions(self, conn: AsyncConnection, sessions: str, params: dict[str, Any]) -> list[int]:
        """The ids of the sessions to remove, ascending, each row locked until the transaction ends (Postgres). A
        writer of one of them (``memory_set``, ``pause``, ``resume``, on any server) locks the row first, so it waits
        and then finds no session, where it used to write rows after their table had been emptied: nothing ties
        ``working_items`` to ``sessions``, so they stayed for good. Only these ids are removed: a session spawned
        meanwhile is left whole, not half-erased."""
        found = await conn.execute(
            text(f"SELECT id FROM sessions WHERE {sessions} ORDER BY id{self._dialect.lock_rows}"), params
        )
        return [int(pk) for (pk,) in found]

    async def _count(
        self, conn: AsyncConnection, pks: Sequence[int], episodes: str | None, params: dict[str, Any]
    ) -> Removed:
        removed = Removed(sessions=len(pks))
        for i in range(0, len(pks), BATCH):
            among, names = in_values("session_pk", pks[i : i + BATCH], "pk")
            row = (
                await conn.execute(
                    text(
                        f"SELECT (SELECT COUNT(*) FROM working_items WHERE {among} AND {LIVE}) AS w, "
                        f"(SELECT COUNT(*) FROM checkpoints WHERE {among}) AS c, "
                        f"(SELECT COUNT(*) FROM events WHERE {among}) AS ev"
                    ),
                    {**names, "now": params["now"]},
                )
            ).one()
            removed += Removed(int(row.w), int(row.c), int(row.ev))
        if episodes:
            found = await conn.execute(text(f"SELECT COUNT(*) FROM episodes e WHERE {episodes}"), params)
            removed += Removed(episodes=int(found.scalar_one()))
        return removed

    async def _erase(
        self, conn: AsyncConnection, pks: Sequence[int], episodes: str | None, params: dict[str, Any]
    ) -> list[UUID]:
        """Delete the sessions ``pks`` and the episodes ``episodes`` picks (of the project ``:p``); the ids of those
        episodes."""
        for i in range(0, len(pks), BATCH):
            batch = pks[i : i + BATCH]
            rows_of, names = in_values("session_pk", batch, "pk")
            for table in ("working_items", "checkpoints", "events"):
                await conn.execute(text(f"DELETE FROM {table} WHERE {rows_of}"), names)
            await faults.reached("erase.rows_deleted")
            await conn.execute(text(f"DELETE FROM sessions WHERE {in_values('id', batch, 'pk')[0]}"), names)
        if episodes is None:
            return []
        found = (await conn.execute(text(f"SELECT e.id, e.episode_id FROM episodes e WHERE {episodes}"), params)).all()
        # Ascending, as every batched writer of episodes locks them (the 0014 fill too): no lock-order deadlock.
        episode_pks = sorted(int(row.id) for row in found)
        for i in range(0, len(episode_pks), BATCH):
            batch = episode_pks[i : i + BATCH]
            await self._unindex(conn, batch)
            among, names = in_values("id", batch, "pk")
            await conn.execute(text(f"DELETE FROM episodes WHERE {among}"), names)
        await faults.reached("erase.episodes_deleted")
        return [as_uuid(row.episode_id) for row in found]

    def _held(self, row: Row[Any], now: float, seal_token: str | None) -> int | None:
        """Whole seconds until the seal on the session ``row`` lapses if another call holds it live, else None. The
        deletion goes through where ``seal`` would take the seal (the test ``SEAL`` makes): an open or terminated
        session, the deletion's own seal (``seal_token``, taken to keep terminates out), a seal with no owner or
        lease (a previous release's, an import's), or one whose lease ran out at ``now`` (a terminate that crashed
        after sealing). A terminate within its lease keeps the session; the row lock (Postgres) or the one writer
        (SQLite) orders this check and the delete with its recording, which finds no session once this went through.
        The seconds are by this clock (not capped at a lease): when a retry would go through."""
        if not row.sealed or row.status == SessionStatus.TERMINATED or row.seal_token is None:
            return None
        if row.seal_token == seal_token or row.seal_until is None:
            return None
        left = self._dialect.read_epoch(row.seal_until) - now
        return math.ceil(left) if left > 0 else None

    async def delete_session(
        self, scope: Scope, keep_episodes: bool, now: float, seal_token: str | None = None
    ) -> Removed:
        """Delete one session: its working memory rows, checkpoints, events and record, and its episodes unless
        ``keep_episodes``. ``NotFound`` if the session does not exist; ``Conflict`` while another call holds it
        sealed (not yet terminated) with a live lease, saying when that lapses; see :meth:`_held`. What was removed
        (live keys at ``now``), the removed episodes' ids included."""
        d = self._dialect
        params: dict[str, Any] = {**d.scope_params(scope), "now": now}
        _, episodes = _where(d, scope.project_id, scope.agent_instance_id, scope.session_id)
        async with self._write() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, status, sealed, seal_token, seal_until FROM sessions "
                        f"WHERE {SCOPE} AND {COMPLETE}{d.lock_rows}"
                    ),
                    params,
                )
            ).first()
            if row is None:
                raise NotFound(f"session '{scope.session_id}' does not exist for this agent")
            lapses_in = self._held(row, now, seal_token)
            if lapses_in is not None:
                raise sealed_by_another_call(scope.session_id, lapses_in)
            kept = None if keep_episodes else episodes
            # The episodes are counted as the erase removes them (an episode recorded in between goes too), not read.
            removed = await self._count(conn, [int(row.id)], None, params)
            # The project's full-text counts (its words) go with its last episode: overwritten too.
            async with self._overwriting(conn):
                gone = await self._erase(conn, [int(row.id)], kept, params)
                emptied = bool(gone) and await self._emptied(conn, scope.project_id)
            removed = replace(removed, episodes=len(gone), episode_ids=tuple(gone))
        if emptied:
            await self._erased(scope.project_id)
        return removed

    async def erase(
        self, project_id: UUID, agent_instance_id: UUID | None, session_id: str | None, now: float, dry_run: bool
    ) -> Removed:
        """The operator's erase: every session of the project (of one agent, or one session, if given) whatever
        its state, and every episode of that scope (those recorded without a session included). With ``dry_run``
        only counts. What was (or would be) removed."""
        d = self._dialect
        params: dict[str, Any] = {"p": d.write_uuid(project_id), "now": now}
        if agent_instance_id is not None:
            params["a"] = d.write_uuid(agent_instance_id)
        if session_id is not None:
            params["s"] = session_id
        sessions, episodes = _where(d, project_id, agent_instance_id, session_id)
        emptied = False
        async with self._write() as conn:
            pks = await self._sessions(conn, sessions, params)
            removed = await self._count(conn, pks, episodes, params)
            if not dry_run:
                async with self._overwriting(conn):
                    gone = await self._erase(conn, pks, episodes, params)
                emptied = bool(gone) and await self._emptied(conn, project_id)
        if emptied:
            await self._erased(project_id)
        return removed


__all__ = ["BATCH", "ScopeErase"]
