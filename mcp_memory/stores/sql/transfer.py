""":class:`SqlTransfer`: the transfer port (:mod:`mcp_memory.stores.transfer`) with the same SQL on both SQL stores:
the export's pages from :class:`~mcp_memory.stores.sql.export_reads.SqlExportReads`, and here the one-transaction
import with the checks before it (``selection_occupied``, ``held_sessions``).

Each store supplies the few pieces of the import that differ: how a JSON parameter is written (``_JSON``), the
checkpoint columns it keeps besides the shared ones (``_checkpoint_extra``), and its own episode insert
(``_import_episode``: the lifecycle's path, which makes the full-text postings and per-project statistics).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.errors import Conflict, TooLarge
from mcp_memory.models import CheckpointData, Episode, Item, SessionInfo
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.dialect import as_uuid
from mcp_memory.stores.sql.episode_edits import BATCH
from mcp_memory.stores.sql.export_reads import SqlExportReads, selection_where
from mcp_memory.stores.sql.queries import in_values
from mcp_memory.stores.transfer import (
    CheckpointEntry,
    Entry,
    EpisodeEntry,
    EventEntry,
    ImportPlan,
    Selection,
    SessionEntry,
    WorkingEntry,
    named_episodes,
    rename_chain,
    renamed_detail,
    scope_occupied,
    session_held,
)
from mcp_memory.summary import counted

logger = logging.getLogger(__name__)

_HELD_BATCH = 200
"""Sessions per query of :meth:`SqlTransfer.held_sessions` (two parameters each)."""


def state_json(items: dict[str, Item]) -> str:
    """A checkpoint's state as both SQL stores keep it: key -> [the value's JSON text, expires_at], keys sorted."""
    return orjson.dumps({k: [it.value, it.expires_at] for k, it in items.items()}, option=orjson.OPT_SORT_KEYS).decode()


class SqlTransfer(SqlExportReads):
    """Export pages (:class:`~.export_reads.SqlExportReads`) and the one-transaction import of both SQL stores."""

    _JSON = "{}"
    """A JSON parameter in SQL (Postgres: ``CAST({} AS jsonb)``), shared with the episode edits."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        async def _import_episode(
            self, conn: AsyncConnection, ep: Episode, embedding: Sequence[float] | None, model: str | None
        ) -> None: ...

    # -- what differs per store ---------------------------------------------------------------------------
    def _vector_fits(self, embedding: Sequence[float]) -> bool:
        """Whether the store can keep this vector (Postgres: a ``vector(n)`` column holds n dimensions only)."""
        return True

    def _json(self, name: str) -> str:
        """The JSON parameter ``:name`` in SQL, as the store's ``_JSON`` writes one (SQLite: the text as is)."""
        return self._JSON.format(f":{name}")

    @staticmethod
    def _checkpoint_extra(state: str) -> dict[str, Any]:
        """Columns a store keeps for a checkpoint besides the shared ones (Postgres: ``state_bytes``)."""
        return {}

    async def _imported(self, conn: AsyncConnection, session_pks: Sequence[int]) -> None:
        """In the import's transaction, once its rows are in: what the store keeps per session besides them
        (Postgres: the counts retention reads, migration 0011). Nothing here."""

    # -- before an import ----------------------------------------------------------------------------------
    async def selection_occupied(self, sel: Selection) -> bool:
        async with self._read() as conn:
            return await self._occupied(conn, sel)

    async def _occupied(self, conn: AsyncConnection, sel: Selection) -> bool:
        s_where, s_params = selection_where(self._dialect, sel, "s")
        e_where, e_params = selection_where(self._dialect, sel, "e")
        found = await conn.execute(
            text(
                f"SELECT EXISTS (SELECT 1 FROM sessions s WHERE {s_where}) "
                f"OR EXISTS (SELECT 1 FROM episodes e WHERE {e_where})"
            ),
            {**s_params, **e_params},
        )
        return bool(found.scalar())

    async def held_sessions(self, project_id: UUID, sessions: Sequence[tuple[UUID, str]]) -> set[tuple[UUID, str]]:
        d = self._dialect
        held: set[tuple[UUID, str]] = set()
        async with self._read() as conn:
            for i in range(0, len(sessions), _HELD_BATCH):
                batch = sessions[i : i + _HELD_BATCH]
                params: dict[str, Any] = {"p": d.write_uuid(project_id)}
                either = []
                for n, (agent, session_id) in enumerate(batch):
                    either.append(f"(agent_instance_id = :a{n} AND session_id = :s{n})")
                    params[f"a{n}"], params[f"s{n}"] = d.write_uuid(agent), session_id
                found = await conn.execute(
                    text(
                        "SELECT agent_instance_id, session_id FROM sessions "
                        f"WHERE project_id = :p AND ({' OR '.join(either)})"
                    ),
                    params,
                )
                held.update((as_uuid(r.agent_instance_id), r.session_id) for r in found)
        return held

    # -- import --------------------------------------------------------------------------------------------
    def _time(self, dt: datetime | None) -> Any:
        return None if dt is None else self._dialect.write_time(dt.timestamp())

    async def import_records(self, records: AsyncIterator[Entry], plan: ImportPlan) -> None:
        counts = plan.counts
        for kind in ("sessions", "working", "checkpoints", "events", "episodes", "vectors_dropped"):
            counts.setdefault(kind, 0)
        sessions: dict[tuple[UUID, str], int] = {}
        # The episode ids the file's sessions name, and those sessions' rows: each link follows its episode (renamed
        # or not) when the file holds the episode, and those left once every episode is in are dropped.
        naming: dict[UUID, list[int]] = {}
        # The events that name an episode (a terminate's, an edit's, a forget's: named_episodes) by the id the file
        # gives it, before that episode came: each follows its episode's rename too, so an operator reading the
        # event finds the episode. (An event naming several is listed under each.)
        telling: dict[UUID, list[int]] = {}
        live: Counter[tuple[UUID, str]] = Counter()
        async with self._write() as conn:
            if plan.require_empty is not None and await self._occupied(conn, plan.require_empty):
                raise scope_occupied()
            async for entry in records:
                if isinstance(entry, SessionEntry):
                    info = entry.info
                    pk = await self._import_session(conn, info, plan)
                    sessions[(info.agent_instance_id, info.session_id)] = pk
                    if info.episode_id is not None:
                        naming.setdefault(info.episode_id, []).append(pk)
                    counts["sessions"] += 1
                elif isinstance(entry, WorkingEntry):
                    if plan.working:
                        owner = (entry.scope.agent_instance_id, entry.scope.session_id)
                        pk = sessions[owner]
                        expires = entry.item.expires_at
                        if plan.max_keys is not None and (expires is None or expires > plan.now):
                            live[owner] += 1
                            if live[owner] > plan.max_keys:
                                raise TooLarge(
                                    f"session '{owner[1]}' of the export file holds more than "
                                    f"{counted(plan.max_keys, 'live key')}, the limit per session; "
                                    "nothing was imported"
                                )
                        await conn.execute(
                            text(
                                "INSERT INTO working_items (session_pk, key, value, expires_at) "
                                "VALUES (:pk, :k, :v, :e)"
                            ),
                            {"pk": pk, "k": entry.key, "v": entry.item.value, "e": entry.item.expires_at},
                        )
                        counts["working"] += 1
                elif isinstance(entry, CheckpointEntry):
                    pk = sessions[(entry.scope.agent_instance_id, entry.scope.session_id)]
                    await self._import_checkpoint(conn, pk, entry.checkpoint)
                    counts["checkpoints"] += 1
                elif isinstance(entry, EventEntry):
                    pk = sessions[(entry.scope.agent_instance_id, entry.scope.session_id)]
                    ev = entry.event
                    named = set() if plan.keep_ids else named_episodes(ev.detail)
                    # Renamed now if its episode came before it, else once it comes (a kept id stays listed: no harm).
                    detail = renamed_detail(ev.detail, plan.renamed_episodes)
                    later = named - plan.renamed_episodes.keys()
                    row = await conn.execute(
                        text(
                            "INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail) "
                            f"VALUES (:pk, :t, :at, :d, :o, {self._json('detail')})"
                            + (" RETURNING id" if later else "")
                        ),
                        {
                            "pk": pk,
                            "t": ev.event_type,
                            "at": self._dialect.write_time(ev.at),
                            "d": ev.duration_ms,
                            "o": ev.outcome,
                            "detail": orjson.dumps(detail).decode(),
                        },
                    )
                    if later:
                        event_pk = int(row.scalar_one())
                        for episode_id in later:
                            telling.setdefault(episode_id, []).append(event_pk)
                    counts["events"] += 1
                else:
                    ep_id = entry.episode.episode_id
                    linked, told = naming.pop(ep_id, []), telling.pop(ep_id, [])
                    await self._import_episode_entry(conn, entry, plan, linked, told)
                    counts["episodes"] += 1
            await self._unlink_lost_episodes(conn, [pk for pks in naming.values() for pk in pks])
            await self._imported(conn, list(sessions.values()))

    async def _import_session(self, conn: AsyncConnection, info: SessionInfo, plan: ImportPlan) -> int:
        d = self._dialect
        row = (
            await conn.execute(
                text(
                    "INSERT INTO sessions (project_id, agent_instance_id, session_id, agent_type_id, status, sealed, "
                    "created_at, updated_at, metadata, episode_id, terminated_at, terminate_result) VALUES (:p, :a, "
                    f":s, :t, :status, :sealed, :created, :updated, {self._json('m')}, :ep, :term, "
                    f"{self._json('result')}) ON CONFLICT (project_id, agent_instance_id, session_id) DO NOTHING "
                    "RETURNING id"
                ),
                {
                    "p": d.write_uuid(plan.project_id),
                    "a": d.write_uuid(info.agent_instance_id),
                    "s": info.session_id,
                    "t": None if info.agent_type_id is None else d.write_uuid(info.agent_type_id),
                    "status": info.status.value,
                    "sealed": info.sealed,
                    "created": self._time(info.created_at),
                    "updated": self._time(info.updated_at),
                    "m": orjson.dumps(info.metadata).decode(),
                    "ep": None if info.episode_id is None else d.write_uuid(info.episode_id),
                    "term": self._time(info.terminated_at),
                    "result": None if info.terminate_result is None else orjson.dumps(info.terminate_result).decode(),
                },
            )
        ).first()
        if row is None:
            raise session_held(plan.project_id, info.agent_instance_id, info.session_id)
        return int(row.id)

    async def _unlink_lost_episodes(self, conn: AsyncConnection, session_pks: Sequence[int]) -> None:
        """In the import's transaction, once its episodes are in: the imported sessions ``session_pks``, whose
        episode the file did not hold (forgotten before or while the export ran), refer to none, as a session whose
        episode was forgotten here does (its terminate result keeps the id). The link is not kept whatever episode
        the store holds under that id, in the target project or another: not the file's, so not the session's."""
        for i in range(0, len(session_pks), BATCH):
            among, names = in_values("id", session_pks[i : i + BATCH], "pk")
            await conn.execute(text(f"UPDATE sessions SET episode_id = NULL WHERE {among}"), names)
        if session_pks:
            logger.warning(
                "imported %s whose episode the export file does not hold (forgotten): as a session whose "
                "episode is forgotten, each refers to none, and its terminate result keeps the id",
                counted(len(session_pks), "session"),
            )

    async def _import_checkpoint(self, conn: AsyncConnection, pk: int, cp: CheckpointData) -> None:
        info = cp.info
        state = state_json(cp.items)
        extra = self._checkpoint_extra(state)
        columns = "".join(f", {c}" for c in extra)
        values = "".join(f", :{c}" for c in extra)
        await conn.execute(
            text(
                "INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, label, keep, "
                f"content_hash, metadata, state{columns}) VALUES (:pk, :cid, :at, :n, :b, :label, :keep, :h, "
                f"{self._json('m')}, {self._json('state')}{values})"
            ),
            {
                "pk": pk,
                "cid": info.checkpoint_id,
                "at": self._time(info.created_at),
                "n": info.keys_count,
                "b": info.bytes,
                "label": info.label,
                "keep": info.keep,
                "h": info.content_hash,
                "m": orjson.dumps(info.metadata).decode(),
                "state": state,
                **extra,
            },
        )

    async def _import_episode_entry(
        self,
        conn: AsyncConnection,
        entry: EpisodeEntry,
        plan: ImportPlan,
        linked: Sequence[int],
        told: Sequence[int] = (),
    ) -> None:
        """Insert the file's episode under the id :meth:`_episode_id` gives it; the imported sessions ``linked``
        (those that name it) and events ``told`` (those whose detail names it) follow a rename."""
        ep = entry.episode
        new_id = await self._episode_id(conn, ep.episode_id, plan)
        if new_id != ep.episode_id:
            plan.renamed_episodes[ep.episode_id] = new_id
        embedding, model = entry.embedding, entry.embedding_model
        # Dropped (and counted, for the backfill to embed again): another model's vector, or one the store cannot
        # keep.
        wrong_model = plan.vector_model is not None and model != plan.vector_model
        if embedding is not None and (wrong_model or not self._vector_fits(embedding)):
            embedding, model = None, None
            plan.counts["vectors_dropped"] += 1
        moved = ep.model_copy(update={"episode_id": new_id, "project_id": plan.project_id})
        await self._import_episode(conn, moved, embedding, model)
        if new_id != ep.episode_id:
            for pk in linked:
                await self._relink(conn, pk, ep.episode_id, new_id)
            await self._retell(conn, told, ep.episode_id, new_id)

    async def _episode_id(self, conn: AsyncConnection, episode_id: UUID, plan: ImportPlan) -> UUID:
        """The id the file's episode ``episode_id`` is imported under, or ``Conflict``. Kept ids: its own, if no
        project holds it. Mapped: the first id of its :func:`~mcp_memory.stores.transfer.rename_chain` that no
        project holds, unless the target project holds any of the chain's ids (this episode, imported before:
        the chain is the same on every import into the project)."""
        d = self._dialect
        chain = [episode_id] if plan.keep_ids else rename_chain(plan.project_id, episode_id)
        among, names = in_values("episode_id", [d.write_uuid(c) for c in chain], "ep")
        held = {
            as_uuid(r.episode_id): as_uuid(r.project_id)
            for r in await conn.execute(text(f"SELECT episode_id, project_id FROM episodes WHERE {among}"), names)
        }
        if plan.keep_ids:
            if held:
                raise Conflict(
                    f"episode {episode_id} exists already in this store; import with --as-project to give "
                    "clashing episodes new ids (nothing was imported)"
                )
            return episode_id
        ours = next((c for c in chain if held.get(c) == plan.project_id), None)
        if ours is not None:
            under = "" if ours == episode_id else f" as {ours}"
            raise Conflict(
                f"episode {episode_id} of the export file exists already in project {plan.project_id}{under}: an "
                "import never adds an episode twice (nothing was imported)"
            )
        free = next((c for c in chain if c not in held), None)
        if free is None:
            raise Conflict(
                f"episode {episode_id} of the export file and the {len(chain) - 1} ids it would be renamed to are "
                "all held by other projects (nothing was imported)"
            )
        return free

    async def _retell(self, conn: AsyncConnection, event_pks: Sequence[int], old: UUID, new: UUID) -> None:
        """The imported events ``event_pks``, whose detail names the renamed episode ``old``, name ``new`` instead."""
        d = self._dialect
        for i in range(0, len(event_pks), BATCH):
            among, names = in_values("id", event_pks[i : i + BATCH], "ev")
            rows = (await conn.execute(text(f"SELECT id, detail FROM events WHERE {among}"), names)).all()
            for r in rows:
                detail = renamed_detail(d.read_json(r.detail), {old: new})
                await conn.execute(
                    text(f"UPDATE events SET detail = {self._json('detail')} WHERE id = :id"),
                    {"detail": orjson.dumps(detail).decode(), "id": r.id},
                )

    async def _relink(self, conn: AsyncConnection, pk: int, old: UUID, new: UUID) -> None:
        """The imported session ``pk``, which names the renamed episode ``old``, refers to ``new`` instead, and so
        does its terminate result."""
        d = self._dialect
        stored = (await conn.execute(text("SELECT terminate_result FROM sessions WHERE id = :pk"), {"pk": pk})).scalar()
        result = None if stored is None else d.read_json(stored)
        if isinstance(result, dict) and result.get("episode_id") == str(old):
            result["episode_id"] = str(new)
        await conn.execute(
            text(f"UPDATE sessions SET episode_id = :new, terminate_result = {self._json('r')} WHERE id = :pk"),
            {"new": d.write_uuid(new), "r": None if result is None else orjson.dumps(result).decode(), "pk": pk},
        )


__all__ = ["SqlTransfer", "state_json"]
