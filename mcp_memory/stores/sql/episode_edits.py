"""What both SQL stores do alike to change stored episodes: find a repeated one, forget some, edit one.

Each store supplies the dialect-specific steps as hooks: how a JSON parameter is cast, how its full-text index
forgets and re-learns an episode's text (SQLite keeps its own postings and per-project counts; Postgres's are kept
by triggers on ``episodes``), how it serialises writers of one episode's duplicates, and how it writes an event.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.models import Episode
from mcp_memory.stores.ports import (
    EpisodeChanged,
    EpisodeChanges,
    EpisodeSelector,
    EpisodeText,
    EventRecord,
    ForgottenEpisode,
    Retention,
)
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.dialect import Dialect, as_uuid
from mcp_memory.stores.sql.queries import COMPLETE, EPISODE_COLUMNS, UNLINK_LOST_EPISODE, in_values

BATCH = 500
"""Episodes deleted per statement (SQLite binds at most 32,766 parameters; a forget of 100,000 episodes is many
statements in one transaction)."""
EVENT_IDS = 100
"""At most this many forgotten episode ids are listed in one session's event (the count is always there)."""


def selector_clause(d: Dialect, project_id: UUID, sel: EpisodeSelector) -> tuple[str, dict[str, Any]]:
    """The condition on ``e`` that picks the selector's episodes of the project, and its parameters."""
    parts = ["e.project_id = :p"]
    params: dict[str, Any] = {"p": d.write_uuid(project_id)}
    if sel.episode_ids is not None:
        names = {f"id{i}": d.write_uuid(eid) for i, eid in enumerate(sel.episode_ids)}
        parts.append(f"e.episode_id IN ({', '.join(':' + n for n in names)})" if names else "FALSE")
        params.update(names)
    if sel.agent_instance_id is not None:
        parts.append("e.agent_instance_id = :f_agent")
        params["f_agent"] = d.write_uuid(sel.agent_instance_id)
    if sel.session_id is not None:
        parts.append("e.session_id = :f_session")
        params["f_session"] = sel.session_id
    if sel.task_type is not None:
        parts.append("e.task_type = :f_task_type")
        params["f_task_type"] = sel.task_type
    if sel.outcome is not None:
        parts.append("e.outcome = :f_outcome")
        params["f_outcome"] = sel.outcome.value
    if sel.before is not None:
        parts.append("e.created_at < :f_before")
        params["f_before"] = d.write_time(sel.before)
    return " AND ".join(parts), params


class EpisodeEdits:
    """``same_episode``, ``count_episodes``, ``forget_episodes`` and ``update_episode`` for a SQL store."""

    _dialect: ClassVar[Dialect]
    _JSON = "{}"
    """How a JSON text parameter is written into a JSON column (Postgres casts it to jsonb)."""
    _LOCK_ROW = ""
    """Appended to a SELECT of an episode that the transaction goes on to change: holds its row until the commit
    (Postgres: FOR UPDATE; SQLite's single writer holds the whole store already)."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _episode(self, row: Any) -> Episode: ...

        def _episode_fields(self, row: Any) -> dict[str, Any]: ...

    # -- hooks -----------------------------------------------------------------------------------------------
    async def _insert_event(
        self, conn: AsyncConnection, session_pk: int, ev: EventRecord, retention: Retention | None = None
    ) -> None:
        """Write ``ev`` on the session ``session_pk``, then apply ``retention``'s event bounds to the session in the
        same transaction (as ``record_event`` does): edits and forgets on a session no longer paused or resumed
        keep its events within them too."""
        raise NotImplementedError

    async def _unindex(self, conn: AsyncConnection, episode_pks: Sequence[int]) -> None:
        """Before the rows go or their text changes: take their text out of the full-text index (postings and the
        project's statistics). Postgres: nothing (its triggers do it)."""

    def _overwriting(self, conn: AsyncConnection) -> AbstractAsyncContextManager[None]:
        """Around the deletions and overwrites a caller asked for (a forget, a deleted session, an edited episode), in
        their transaction: SQLite makes them overwrite the bytes they free
        (:mod:`~mcp_memory.stores.sqlite.secure_delete`). Postgres: nothing; the dead rows stay in their pages until
        VACUUM (autovacuum, or the operator's ``forget``)."""
        return nullcontext()

    async def _reindex(self, conn: AsyncConnection, episode_pk: int) -> None:
        """After a row's text changed (and :meth:`_unindex`): index its new text. Postgres: nothing."""

    async def _emptied(self, conn: AsyncConnection, project_id: UUID) -> bool:
        """In the write transaction that deleted episodes of the project, after the deletes: whether it holds none
        any more. If so, what the store keeps per project goes in this transaction (SQLite: its full-text counts and
        vector version row; Postgres: its triggers on ``episodes`` drop a count that reaches 0), so nothing in the
        store names it. Writers of the project wait for this transaction (SQLite's one writer; Postgres: the
        project's count row, locked by the deletes), so an episode recorded meanwhile finds its bookkeeping gone
        and writes it anew, or is counted here and keeps it."""
        found = await conn.execute(
            text("SELECT 1 FROM episodes WHERE project_id = :p LIMIT 1"), {"p": self._dialect.write_uuid(project_id)}
        )
        if found.first() is not None:
            return False
        await self._drop_project_rows(conn, project_id)
        return True

    async def _drop_project_rows(self, conn: AsyncConnection, project_id: UUID) -> None:
        """:meth:`_emptied`'s store-specific part: delete the rows the store keeps per project (SQLite: its
        full-text counts and vector version row). Postgres: nothing (its triggers did)."""

    async def _erased(self, project_id: UUID) -> None:
        """Called once a deletion that left the project without episodes (:meth:`_emptied`) has committed: what the
        store keeps per project outside the transaction goes (Postgres: the project's vector index; SQLite: its
        matrices in this process's memory)."""

    async def _lock_same(self, conn: AsyncConnection, episode: Episode) -> None:
        """In a write transaction, before looking for a repeat of ``episode``: make concurrent writers of the same
        episode wait for this transaction (SQLite: its single writer does already)."""

    def _vector_set(self, changes: EpisodeChanges, params: dict[str, Any]) -> str:
        """The SET fragment that replaces the vector (its parameters added to ``params``)."""
        raise NotImplementedError

    # -- duplicates ------------------------------------------------------------------------------------------
    async def _same_episode(self, conn: AsyncConnection, ep: Episode) -> UUID | None:
        d = self._dialect
        row = (
            await conn.execute(
                text(
                    "SELECT e.episode_id FROM episodes e WHERE e.project_id = :p AND e.agent_instance_id = :a "
                    "AND (e.session_id = :s OR (e.session_id IS NULL AND CAST(:s AS text) IS NULL)) "
                    "AND e.task_type = :tt AND e.task_description = :td AND e.outcome = :o AND e.outcome_details = :od "
                    f"AND e.lessons_learned = {self._JSON.format(':ll')} AND e.context_summary = :cs "
                    "ORDER BY e.created_at, e.id LIMIT 1"
                ),
                {
                    "p": d.write_uuid(ep.project_id),
                    "a": d.write_uuid(ep.agent_instance_id),
                    "s": ep.session_id,
                    "tt": ep.task_type,
                    "td": ep.task_description,
                    "o": ep.outcome.value,
                    "od": ep.outcome_details,
                    "ll": json.dumps(ep.lessons_learned),
                    "cs": ep.context_summary,
                },
            )
        ).first()
        return None if row is None else as_uuid(row.episode_id)

    async def same_episode(self, episode: Episode) -> UUID | None:
        async with self._read() as conn:
            return await self._same_episode(conn, episode)

    # -- forget ----------------------------------------------------------------------------------------------
    async def count_episodes(self, project_id: UUID, selector: EpisodeSelector) -> int:
        where, params = selector_clause(self._dialect, project_id, selector)
        async with self._read() as conn:
            return int(
                (await conn.execute(text(f"SELECT COUNT(*) FROM episodes e WHERE {where}"), params)).scalar_one()
            )

    async def forget_episodes(
        self, project_id: UUID, selector: EpisodeSelector, event: EventRecord, retention: Retention | None = None
    ) -> list[ForgottenEpisode]:
        where, params = selector_clause(self._dialect, project_id, selector)
        async with self._write() as conn:
            rows = (
                await conn.execute(
                    text(f"SELECT e.id, e.episode_id, e.agent_instance_id, e.session_id FROM episodes e WHERE {where}"),
                    params,
                )
            ).all()
            # Ascending, as every batched writer of episodes locks them (the 0014 fill too): no lock-order deadlock.
            pks = sorted(int(r.id) for r in rows)
            async with self._overwriting(conn):
                for i in range(0, len(pks), BATCH):
                    batch = pks[i : i + BATCH]
                    await self._unindex(conn, batch)
                    among, names = in_values("id", batch, "pk")
                    await conn.execute(text(f"DELETE FROM episodes WHERE {among}"), names)
                emptied = bool(pks) and await self._emptied(conn, project_id)
            gone = [ForgottenEpisode(as_uuid(r.episode_id), as_uuid(r.agent_instance_id), r.session_id) for r in rows]
            await self._record_forgets(conn, project_id, gone, event, retention)
        if emptied:
            await self._erased(project_id)
        return gone

    async def _record_forgets(
        self,
        conn: AsyncConnection,
        project_id: UUID,
        gone: Sequence[ForgottenEpisode],
        event: EventRecord,
        retention: Retention | None,
    ) -> None:
        """One event per session that the forgotten episodes came from and that still exists; such a session whose
        terminate made one of them refers to no episode from now on (a terminate's episode is of its session)."""
        by_session: dict[tuple[UUID, str], list[str]] = defaultdict(list)
        for ep in gone:
            if ep.session_id is not None:
                by_session[(ep.agent_instance_id, ep.session_id)].append(str(ep.episode_id))
        d = self._dialect
        for (agent, session_id), ids in by_session.items():
            pk = (
                await conn.execute(
                    text(
                        "SELECT id FROM sessions WHERE project_id = :p AND agent_instance_id = :a "
                        f"AND session_id = :s AND {COMPLETE}"
                    ),
                    {"p": d.write_uuid(project_id), "a": d.write_uuid(agent), "s": session_id},
                )
            ).scalar()
            if pk is not None:
                detail = {"forgotten": len(ids), "episode_ids": ids[:EVENT_IDS]}
                await self._insert_event(conn, int(pk), event.with_detail(detail), retention)
                await conn.execute(text(UNLINK_LOST_EPISODE.format("id = :pk")), {"pk": int(pk)})

    async def _held_row(self, conn: AsyncConnection, project_id: UUID, episode_id: UUID) -> Any:
        """In a write transaction: the episode's row (its ``id`` and :data:`EPISODE_COLUMNS`), held until the
        commit on Postgres; None for an episode the project does not hold."""
        d = self._dialect
        return (
            await conn.execute(
                text(
                    f"SELECT e.id, {EPISODE_COLUMNS} FROM episodes e WHERE e.project_id = :p AND e.episode_id = :e"
                    f"{self._LOCK_ROW}"
                ),
                {"p": d.write_uuid(project_id), "e": d.write_uuid(episode_id)},
            )
        ).first()

    async def _text_is(self, conn: AsyncConnection, project_id: UUID, episode_id: UUID, made_from: EpisodeText) -> bool:
        """In a write transaction: whether the episode still has the text ``made_from`` (its row then held, as
        :meth:`_held_row`); False for an episode that is gone."""
        row = await self._held_row(conn, project_id, episode_id)
        return row is not None and EpisodeText.of(self._episode(row)) == made_from

    # -- edit ------------------------------------------------------------------------------------------------
    async def update_episode(
        self,
        project_id: UUID,
        episode_id: UUID,
        changes: EpisodeChanges,
        event: EventRecord,
        retention: Retention | None = None,
    ) -> Episode | None:
        d = self._dialect
        key = {"p": d.write_uuid(project_id), "e": d.write_uuid(episode_id)}
        sets: list[str] = []
        params: dict[str, Any] = dict(key)
        if changes.lessons_learned is not None:
            sets.append(f"lessons_learned = {self._JSON.format(':ll')}")
            params["ll"] = json.dumps(changes.lessons_learned)
        if changes.outcome_details is not None:
            sets.append("outcome_details = :od")
            params["od"] = changes.outcome_details
        if changes.importance_score is not None:
            sets.append("importance_score = :imp")
            params["imp"] = changes.importance_score
        if changes.metadata is not None:
            sets.append(f"metadata = {self._JSON.format(':m')}")
            params["m"] = json.dumps(changes.metadata)
        if changes.reembed:
            sets.append(self._vector_set(changes, params))
        async with self._write() as conn:
            found = await self._held_row(conn, project_id, episode_id)
            if found is None:
                return None
            stored = self._episode(found)
            if (changes.made_from is not None and EpisodeText.of(stored) != changes.made_from) or (
                changes.importance_from is not None and stored.importance_score != changes.importance_from
            ):
                raise EpisodeChanged(f"episode '{episode_id}' changed while it was being edited; nothing was written")
            pk = int(found.id)
            if sets:
                # The fields replaced (and the old text's postings) are overwritten where they lay, as a deletion.
                async with self._overwriting(conn):
                    if changes.reembed:
                        await self._unindex(conn, [pk])
                    await conn.execute(
                        text(f"UPDATE episodes SET {', '.join(sets)} WHERE id = :pk"), {**params, "pk": pk}
                    )
                    if changes.reembed:
                        await self._reindex(conn, pk)
            row = (
                await conn.execute(text(f"SELECT {EPISODE_COLUMNS} FROM episodes e WHERE e.id = :pk"), {"pk": pk})
            ).one()
            if found.session_id is not None:
                session_pk = (
                    await conn.execute(
                        text(
                            "SELECT id FROM sessions WHERE project_id = :p AND agent_instance_id = :a "
                            f"AND session_id = :s AND {COMPLETE}"
                        ),
                        {"p": key["p"], "a": found.agent_instance_id, "s": found.session_id},
                    )
                ).scalar()
                if session_pk is not None:
                    await self._insert_event(conn, int(session_pk), event, retention)
            return self._episode(row)


__all__ = ["BATCH", "EVENT_IDS", "EpisodeEdits", "selector_clause"]
