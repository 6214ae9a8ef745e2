""":class:`SqlExportReads`: the export's pages of the transfer port (:mod:`mcp_memory.stores.transfer`), read with
the same SQL on both SQL stores; :class:`~mcp_memory.stores.sql.transfer.SqlTransfer` adds the import to them.

Each store supplies how a checkpoint's state and a vector are read back (``_read_state``, ``_vector_column``,
``_read_vector``). Every page is one statement, paged by the table's row id (``after``, ``limit``).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.models import CheckpointData, CheckpointInfo, Episode, Item, Scope, SessionInfo
from mcp_memory.stores.ports import EventRecord
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.dialect import Dialect, as_uuid
from mcp_memory.stores.sql.queries import CHECKPOINT_FIELDS, COMPLETE, EPISODE_COLUMNS, LINKED_EPISODE
from mcp_memory.stores.transfer import EpisodeEntry, Selection

_CHECKPOINT_C = ", ".join(f"c.{f}" for f in CHECKPOINT_FIELDS)


def selection_where(d: Dialect, sel: Selection, alias: str) -> tuple[str, dict[str, Any]]:
    """Conditions selecting ``sel`` on a table with project, agent and session columns (alias ``alias``)."""
    parts = [f"{alias}.project_id = :sel_p"]
    params: dict[str, Any] = {"sel_p": d.write_uuid(sel.project_id)}
    if sel.agent_instance_id is not None:
        parts.append(f"{alias}.agent_instance_id = :sel_a")
        params["sel_a"] = d.write_uuid(sel.agent_instance_id)
    if sel.session_id is not None:
        parts.append(f"{alias}.session_id = :sel_s")
        params["sel_s"] = sel.session_id
    return " AND ".join(parts), params


class SqlExportReads:
    """The export pages of both SQL stores: sessions, counts, checkpoints, events and episodes of a selection."""

    _dialect: ClassVar[Dialect]
    _vector_column: ClassVar[str] = "e.embedding"
    """The select expression of an episode's vector (Postgres casts it to text: asyncpg knows no vector type)."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _session_info(self, row: Any) -> SessionInfo: ...

        def _checkpoint_info(self, row: Any) -> CheckpointInfo: ...

        def _episode(self, row: Any) -> Episode: ...

    # -- what differs per store ---------------------------------------------------------------------------
    @staticmethod
    def _read_state(value: Any) -> dict[str, Item]:
        decoded: dict[str, list[Any]] = orjson.loads(value) if isinstance(value, str | bytes) else value
        return {key: Item(v, exp) for key, (v, exp) in decoded.items()}

    @staticmethod
    def _read_vector(value: Any) -> list[float] | None:
        raise NotImplementedError

    # -- export --------------------------------------------------------------------------------------------
    async def export_sessions(self, sel: Selection, after: int, limit: int) -> list[tuple[int, SessionInfo]]:
        where, params = selection_where(self._dialect, sel, "s")
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT s.*, {LINKED_EPISODE} FROM sessions s WHERE {where} AND s.{COMPLETE} AND s.id > :after "
                    "ORDER BY s.id LIMIT :n"
                ),
                {**params, "after": after, "n": limit},
            )
            return [(int(r.id), self._session_info(r)) for r in result]

    async def export_counts(self, sel: Selection) -> dict[str, int]:
        s_where, params = selection_where(self._dialect, sel, "s")
        e_where, _ = selection_where(self._dialect, sel, "e")  # the same parameters
        async with self._read() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT (SELECT COUNT(*) FROM checkpoints c JOIN sessions s ON s.id = c.session_pk "
                        f"WHERE {s_where} AND s.{COMPLETE}) AS checkpoints, "
                        "(SELECT COUNT(*) FROM events v JOIN sessions s ON s.id = v.session_pk "
                        f"WHERE {s_where} AND s.{COMPLETE}) AS events, "
                        f"(SELECT COUNT(*) FROM episodes e WHERE {e_where}) AS episodes"
                    ),
                    params,
                )
            ).one()
            return {"checkpoints": int(row.checkpoints), "events": int(row.events), "episodes": int(row.episodes)}

    async def export_checkpoints(
        self, sel: Selection, after: int, limit: int
    ) -> list[tuple[int, Scope, CheckpointData]]:
        where, params = selection_where(self._dialect, sel, "s")
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT c.id AS row_key, {_CHECKPOINT_C}, c.state, "
                    "s.project_id, s.agent_instance_id, s.session_id "
                    f"FROM checkpoints c JOIN sessions s ON s.id = c.session_pk WHERE {where} AND s.{COMPLETE} "
                    "AND c.id > :after ORDER BY c.id LIMIT :n"
                ),
                {**params, "after": after, "n": limit},
            )
            return [
                (
                    int(r.row_key),
                    Scope(as_uuid(r.project_id), as_uuid(r.agent_instance_id), r.session_id),
                    CheckpointData(self._checkpoint_info(r), self._read_state(r.state)),
                )
                for r in result
            ]

    async def export_events(self, sel: Selection, after: int, limit: int) -> list[tuple[int, Scope, EventRecord]]:
        d = self._dialect
        where, params = selection_where(d, sel, "s")
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    "SELECT v.id AS row_key, v.event_type, v.at, v.duration_ms, v.outcome, v.detail, "
                    "s.project_id, s.agent_instance_id, s.session_id "
                    f"FROM events v JOIN sessions s ON s.id = v.session_pk WHERE {where} AND s.{COMPLETE} "
                    "AND v.id > :after ORDER BY v.id LIMIT :n"
                ),
                {**params, "after": after, "n": limit},
            )
            return [
                (
                    int(r.row_key),
                    Scope(as_uuid(r.project_id), as_uuid(r.agent_instance_id), r.session_id),
                    EventRecord(r.event_type, d.read_epoch(r.at), r.duration_ms, r.outcome, d.read_json(r.detail)),
                )
                for r in result
            ]

    async def export_episodes(
        self, sel: Selection, after: int, limit: int, vectors: bool
    ) -> list[tuple[int, EpisodeEntry]]:
        where, params = selection_where(self._dialect, sel, "e")
        vector = f", {self._vector_column} AS vec, e.embedding_model" if vectors else ""
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT e.id AS row_key, {EPISODE_COLUMNS}{vector} FROM episodes e WHERE {where} "
                    "AND e.id > :after ORDER BY e.id LIMIT :n"
                ),
                {**params, "after": after, "n": limit},
            )
            rows: list[tuple[int, EpisodeEntry]] = []
            for r in result:
                ep = self._episode(r)
                vec = self._read_vector(r.vec) if vectors and r.vec is not None else None
                rows.append((int(r.row_key), EpisodeEntry(ep, vec, r.embedding_model if vec is not None else None)))
            return rows


__all__ = ["SqlExportReads", "selection_where"]
