"""The episodes of the SQLite store: recording one (its full-text postings in the same transaction, see
:mod:`.fulltext`), recall (BM25 and the in-memory vector scan of :mod:`.vector_index`, fused as
:mod:`mcp_memory.ranking` does), edits and forgets (the shared steps of :mod:`~mcp_memory.stores.sql.episode_edits`
with this store's full-text and vector hooks) and their vectors (float32 blobs, :mod:`.vectors`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.models import Episode, Outcome, ScoredEpisode
from mcp_memory.ranking import TEXT_WEIGHT, VECTOR_WEIGHT, blend, fuse, relative, similarities
from mcp_memory.stores.ports import EpisodeChanges, EpisodeFilter, EpisodeText, SearchMode, VectorBacklog
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.episode_edits import EpisodeEdits
from mcp_memory.stores.sql.queries import EPISODE_COLUMNS, VECTOR_BACKLOG, filter_clause
from mcp_memory.stores.sql.rules import candidate_pool
from mcp_memory.stores.sqlite.fulltext import (
    INSERT_EPISODE,
    bm25_ranking,
    drop_project_counts,
    episode_params,
    index_episode,
    reindex_episode,
    text_fields,
    tokenize,
    unindex_episodes,
)
from mcp_memory.stores.sqlite.secure_delete import OVERWRITE, set_secure_delete
from mcp_memory.stores.sqlite.statements import DIALECT
from mcp_memory.stores.sqlite.vector_index import VectorIndex, drop_project_version
from mcp_memory.stores.sqlite.vectors import blob_to_vector, vector_to_blob

_T = TypeVar("_T")


class SqliteEpisodes(EpisodeEdits):
    """The episode methods of :class:`~mcp_memory.stores.sqlite.store.SqliteStore`."""

    if TYPE_CHECKING:
        vectors: VectorIndex

        def _read(self, *, statements: int = 1) -> AbstractAsyncContextManager[AsyncConnection]: ...

        async def _on_thread(self, conn: AsyncConnection, fn: Callable[[sqlite3.Connection], _T]) -> _T: ...

    # -- episodes --------------------------------------------------------------------------------------
    async def _insert_episode(
        self, conn: AsyncConnection, ep: Episode, embedding: Sequence[float] | None, model: str | None
    ) -> None:
        """The episode row, its postings and its project's statistics, in ``conn``'s transaction (one hand-over)."""
        params = episode_params(ep, embedding, model)
        text_row = (
            0,
            *text_fields(ep.task_type, ep.task_description, ep.outcome_details, ep.lessons_learned, ep.context_summary),
        )

        def insert(db: sqlite3.Connection) -> None:
            tokenize(db, [text_row])
            episode_pk, tokens = db.execute(INSERT_EPISODE, params).fetchone()
            index_episode(db, episode_pk, tokens)

        await self._on_thread(conn, insert)

    async def add_episode(
        self, episode: Episode, embedding: Sequence[float] | None, embedding_model: str | None = None
    ) -> UUID:
        async with self._write() as conn:
            # The single writer makes the look-up and the insert one step: a repeat is never inserted twice.
            same = await self._same_episode(conn, episode)
            if same is not None:
                return same
            await self._insert_episode(conn, episode, embedding, embedding_model)
            return episode.episode_id

    # -- edits (sql/episode_edits.py): this store's full-text and vector steps --------------------------------
    async def _unindex(self, conn: AsyncConnection, episode_pks: Sequence[int]) -> None:
        pks = list(episode_pks)
        await self._on_thread(conn, lambda db: unindex_episodes(db, pks))

    @asynccontextmanager
    async def _overwriting(self, conn: AsyncConnection) -> AsyncIterator[None]:
        previous = await self._on_thread(conn, lambda db: set_secure_delete(db, OVERWRITE))
        try:
            yield
        finally:
            await self._on_thread(conn, lambda db: set_secure_delete(db, previous))

    async def _reindex(self, conn: AsyncConnection, episode_pk: int) -> None:
        await self._on_thread(conn, lambda db: reindex_episode(db, episode_pk))

    async def _drop_project_rows(self, conn: AsyncConnection, project_id: UUID) -> None:
        project = str(project_id)

        def drop(db: sqlite3.Connection) -> None:
            drop_project_counts(db, project)
            drop_project_version(db, project)

        await self._on_thread(conn, drop)

    async def _erased(self, project_id: UUID) -> None:
        self.vectors.invalidate(str(project_id))

    def _vector_set(self, changes: EpisodeChanges, params: dict[str, Any]) -> str:
        vector = changes.embedding
        params["emb"] = None if vector is None else vector_to_blob(vector)
        params["model"] = None if vector is None else changes.embedding_model
        return "embedding = :emb, embedding_model = :model"

    async def nearest_episode(
        self,
        project_id: UUID,
        embedding: Sequence[float],
        embedding_model: str | None,
        task_type: str,
        outcome: Outcome,
        agent_instance_id: UUID | None = None,
    ) -> tuple[UUID, float] | None:
        params: dict[str, Any] = {"f_task_type": task_type, "f_outcome": outcome.value}
        extra = " AND e.task_type = :f_task_type AND e.outcome = :f_outcome"
        if agent_instance_id is not None:
            params["f_agent"] = DIALECT.write_uuid(agent_instance_id)
            extra += " AND e.agent_instance_id = :f_agent"
        project, vectors = str(project_id), self.vectors
        async with self._read(statements=2) as conn:
            best = await self._on_thread(
                conn, lambda db: vectors.nearest(db, project, embedding_model, embedding, 1, extra, params)
            )
        return next(((UUID(eid), cos) for eid, cos in best.items()), None)

    # -- transfer (sql/export_reads.py, sql/transfer.py) -------------------------------------------------
    async def _import_episode(
        self, conn: AsyncConnection, ep: Episode, embedding: Sequence[float] | None, model: str | None
    ) -> None:
        await self._insert_episode(conn, ep, embedding, model)

    @staticmethod
    def _read_vector(value: Any) -> list[float] | None:
        return list(blob_to_vector(value))

    async def search_episodes(
        self,
        project_id: UUID,
        query: str,
        query_embedding: Sequence[float] | None,
        flt: EpisodeFilter,
        limit: int,
        now: float,
        mode: SearchMode = "hybrid",
        embedding_model: str | None = None,
    ) -> list[ScoredEpisode]:
        pool = candidate_pool(limit)
        extra, fparams = filter_clause(DIALECT, flt, prefix="e.")
        text_scores: dict[str, float] = {}
        vector_scores: dict[str, float] = {}
        async with self._read(statements=2) as conn:
            if mode != "vector":
                project = str(project_id)
                bm25, ceiling = await self._on_thread(
                    conn, lambda db: bm25_ranking(db, project, query, extra, fparams, pool)
                )
                text_scores = relative(bm25, ceiling)
            if query_embedding is not None and mode != "text":
                project, vectors = str(project_id), self.vectors
                cosines = await self._on_thread(
                    conn,
                    lambda db: vectors.nearest(db, project, embedding_model, query_embedding, pool, extra, fparams),
                )
                vector_scores = similarities(cosines)
            fused = fuse([text_scores, vector_scores], [TEXT_WEIGHT, VECTOR_WEIGHT])
            if not fused:
                return []
            # Blended from two columns of each candidate (up to the pool's 100), then only the ``limit`` best are
            # read whole and built as models: building all the candidates was most of a vector search's CPU.
            read_time = DIALECT.read_time
            rows_read = await self._on_thread(
                conn,
                lambda db: db.execute(
                    "SELECT episode_id, importance_score, created_at, id FROM episodes "
                    "WHERE episode_id IN (SELECT value FROM json_each(?))",
                    (json.dumps(list(fused)),),
                ).fetchall(),
            )
            blended = {
                eid: round(blend(fused[eid], importance, read_time(created_at).timestamp(), now), 6)
                for eid, importance, created_at, _ in rows_read
            }
            # Equal scores: the newest row first, as on Postgres (score DESC, id DESC), not the order rows came in.
            row_ids = {eid: pk for eid, _, _, pk in rows_read}
            best = sorted(blended, key=lambda eid: (blended[eid], row_ids[eid]), reverse=True)[:limit]
            if not best:
                return []
            names = ", ".join(f":id{i}" for i in range(len(best)))
            result = await conn.execute(
                text(f"SELECT {EPISODE_COLUMNS} FROM episodes e WHERE e.episode_id IN ({names})"),
                {f"id{i}": eid for i, eid in enumerate(best)},
            )
            rows = {r.episode_id: r for r in result}
        # Each row validated once, as a ScoredEpisode (not an Episode dumped and validated again).
        return [ScoredEpisode(**self._episode_fields(rows[eid]), score=blended[eid]) for eid in best if eid in rows]

    async def episodes_missing_embedding(self, limit: int, model: str | None = None) -> list[Episode]:
        stale = "" if model is None else " OR e.embedding_model IS NULL OR e.embedding_model != :model"
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT {EPISODE_COLUMNS} FROM episodes e WHERE e.embedding IS NULL{stale} "
                    "ORDER BY e.created_at, e.id LIMIT :limit"
                ),
                {"limit": limit, "model": model},
            )
            return [self._episode(r) for r in result]

    async def vector_backlog(self, model: str) -> VectorBacklog:
        async with self._read() as conn:
            row = (await conn.execute(text(VECTOR_BACKLOG), {"model": model})).one()
        return VectorBacklog(missing=int(row.missing or 0), other_model=int(row.other_model or 0))

    async def set_episode_embedding(
        self,
        project_id: UUID,
        episode_id: UUID,
        embedding: Sequence[float],
        model: str,
        made_from: EpisodeText | None = None,
    ) -> bool:
        async with self._write() as conn:
            if made_from is not None and not await self._text_is(conn, project_id, episode_id, made_from):
                return False
            result = await conn.execute(
                text(
                    "UPDATE episodes SET embedding = :emb, embedding_model = :model WHERE project_id = :p AND "
                    "episode_id = :e AND (embedding IS NULL OR embedding_model IS NULL OR embedding_model != :model)"
                ),
                {"emb": vector_to_blob(embedding), "model": model, "p": str(project_id), "e": str(episode_id)},
            )
            return bool(result.rowcount)
