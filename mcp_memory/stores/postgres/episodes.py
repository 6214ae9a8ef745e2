"""The episodes of the Postgres store: recording one (a repeat of a stored one is found, not stored twice),
recall (:mod:`.search`), edits and forgets (the shared steps of :mod:`~mcp_memory.stores.sql.episode_edits`, with
Postgres' hooks: its full-text counts follow by triggers), and their vectors (``vector(n)`` of the schema's width).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from functools import cached_property
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.errors import InvalidArgument
from mcp_memory.models import Episode, Outcome, ScoredEpisode
from mcp_memory.stores.ports import (
    EpisodeChanges,
    EpisodeFilter,
    EpisodeText,
    EventRecord,
    Reclaimed,
    Retention,
    SearchMode,
    Vacuum,
    VectorBacklog,
)
from mcp_memory.stores.postgres import two_step, vector_indexes
from mcp_memory.stores.postgres.reclaim import reclaim
from mcp_memory.stores.postgres.search import (
    DEFAULT_EF_SEARCH,
    EXACT_SCAN_BUDGET,
    search_statement,
    ts_query,
    vector_text,
)
from mcp_memory.stores.postgres.statements import (
    COUNTED_EVENT,
    INSERT_EPISODE,
    LOCK_SAME_EPISODE,
    PRUNE_EVENTS,
    SET_EMBEDDING,
    episode_params,
    event_params,
    nearest_episode,
)
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.episode_edits import EpisodeEdits
from mcp_memory.stores.sql.queries import EPISODE_COLUMNS, VECTOR_BACKLOG

logger = logging.getLogger(__name__)
VECTOR_INDEX_CHECK_SECONDS = 300.0
"""How often vector searches look for projects grown past the exact-scan size without an index of their own."""
ERASE_INDEX_LOCK_TIMEOUT_MS = 5_000
"""How long an erase waits to drop the erased project's vector index behind a concurrent index build (which holds
the table's lock for as long as it runs); past it the index is left to the next index check."""


class PostgresEpisodes(EpisodeEdits):
    """The episode methods of :class:`~mcp_memory.stores.postgres.store.PostgresStore`."""

    if TYPE_CHECKING:
        embedding_dimension: int
        _url: URL

        @property
        def where(self) -> str: ...

        def _one(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    @cached_property
    def exact_scan_max(self) -> int:
        """Projects of at most this many episodes are searched by an exact scan of their vectors (see
        :data:`~.search.EXACT_SCAN_BUDGET`)."""
        return EXACT_SCAN_BUDGET // self.embedding_dimension

    _index_checked_at = -VECTOR_INDEX_CHECK_SECONDS
    _index_task: asyncio.Task[None] | None = None

    def _check_vector_indexes(self) -> None:
        """Build missing per-project indexes in the background, at most every
        :data:`VECTOR_INDEX_CHECK_SECONDS` and one build run at a time; until one is built, its project is
        searched through the shared index."""
        now = time.monotonic()
        if (self._index_task is not None and not self._index_task.done()) or (
            now - self._index_checked_at < VECTOR_INDEX_CHECK_SECONDS
        ):
            return
        self._index_checked_at = now
        self._index_task = asyncio.create_task(self._build_vector_indexes_logged())

    async def _build_vector_indexes_logged(self) -> None:
        try:
            built = await self.build_vector_indexes()
        except Exception as exc:  # a failed build leaves an invalid index, dropped and built again next time
            logger.warning("building per-project vector indexes failed: %r", exc)
        else:
            if built:
                logger.info("built the vector indexes of %d project(s)", len(built))

    async def _stop_vector_indexing(self) -> None:
        task, self._index_task = self._index_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def build_vector_indexes(self) -> list[UUID]:
        """Give every project above the exact-scan size its own HNSW index (:mod:`.vector_indexes`), so that its
        vector recall does not depend on other projects' vectors; the projects indexed now."""
        return await vector_indexes.build_missing(self._url, self.exact_scan_max)

    async def _erased(self, project_id: UUID) -> None:
        """After a deletion that left the project without episodes (an erase, ``delete_session``,
        ``forget_episodes``): drop the vector index of every project without episodes (this one's, which names it),
        so indexes of dead projects do not pile up. The deletion has committed already; a failed drop is logged and
        left to :func:`~.vector_indexes.build_missing`, which sweeps them too."""
        try:
            dropped = await vector_indexes.drop_orphans(self._url, ERASE_INDEX_LOCK_TIMEOUT_MS)
        except Exception as exc:
            logger.warning("dropping the vector index of erased project %s failed: %r", project_id, exc)
        else:
            if dropped:
                logger.info("dropped the vector indexes of %d project(s) without episodes", len(dropped))

    async def reclaim_erased(self, project_id: UUID, vacuum: Vacuum) -> Reclaimed:
        """The operator's forget, after its erase: the project's vector index and the VACUUM
        (:mod:`.reclaim`)."""
        return await reclaim(self._url, project_id, vacuum)

    # -- episodes --------------------------------------------------------------------------------------
    def _vector_fits(self, embedding: Sequence[float]) -> bool:
        """An import keeps a vector of the schema's width only (and counts the others it drops)."""
        return len(embedding) == self.embedding_dimension

    def _embedding_text(self, embedding: Sequence[float] | None, what: str) -> str | None:
        """The vector as pgvector text, or None (logged) if it has the wrong number of dimensions."""
        if embedding is None:
            return None
        if len(embedding) != self.embedding_dimension:
            logger.warning(
                "%s has %d dimensions but the database stores %d; left without a vector",
                what,
                len(embedding),
                self.embedding_dimension,
            )
            return None
        return vector_text(embedding)

    def _episode_insert(
        self, ep: Episode, embedding: Sequence[float] | None, model: str | None
    ) -> tuple[str, dict[str, Any]]:
        """A CTE inserting the episode, and its parameters. The model's name is kept only with a vector (one of
        the wrong width is not stored, see :meth:`_embedding_text`, and then neither is its model)."""
        emb = self._embedding_text(embedding, f"the embedding of episode {ep.episode_id}")
        return INSERT_EPISODE, episode_params(ep, emb, model)

    async def add_episode(
        self, episode: Episode, embedding: Sequence[float] | None, embedding_model: str | None = None
    ) -> UUID:
        sql, params = self._episode_insert(episode, embedding, embedding_model)
        async with self._write() as conn:
            # Writers of the same episode queue on one advisory lock (held to commit), so of two concurrent
            # repeats the second finds the first.
            await self._lock_same(conn, episode)
            same = await self._same_episode(conn, episode)
            if same is not None:
                return same
            await conn.execute(text(f"WITH {sql} SELECT 1"), params)
        return episode.episode_id

    # -- edits (sql/episode_edits.py): the full-text counts follow by triggers; vectors and locks ------------
    _JSON = "CAST({} AS jsonb)"
    _LOCK_ROW = " FOR UPDATE"

    async def _insert_event(
        self, conn: AsyncConnection, session_pk: int, ev: EventRecord, retention: Retention | None = None
    ) -> None:
        count = (await conn.execute(text(COUNTED_EVENT), {"pk": session_pk, **event_params(ev)})).scalar()
        if count is not None:
            await self._bound_events(conn, session_pk, int(count), retention, ev.at)

    async def _bound_events(
        self, conn: AsyncConnection, session_pk: int, count: int, retention: Retention | None, at: float
    ) -> None:
        """Apply ``retention``'s event bounds (the age counted from ``at``) to the session ``session_pk``, which
        holds ``count`` events and whose row this transaction has locked by counting its new one."""
        if retention is None:
            return
        keep_last, cutoff = two_step.event_retention_args(retention, at)
        if (retention.events_keep_last is not None and count > retention.events_keep_last) or cutoff is not None:
            bounds = {"pk": session_pk, "n": count, "keep_last": keep_last, "cutoff": cutoff}
            await conn.execute(text(PRUNE_EVENTS), bounds)

    async def _lock_same(self, conn: AsyncConnection, episode: Episode) -> None:
        key = f"{episode.project_id}|{episode.agent_instance_id}|{episode.session_id}|{episode.task_description}"
        await conn.execute(text(LOCK_SAME_EPISODE), {"k": key})

    def _vector_set(self, changes: EpisodeChanges, params: dict[str, Any]) -> str:
        emb = None
        if changes.embedding is not None:
            emb = self._embedding_text(changes.embedding, "the new embedding of an edited episode")
        params["emb"] = emb
        params["model"] = None if emb is None else changes.embedding_model
        return "embedding = CAST(:emb AS vector), embedding_model = CAST(:model AS text)"

    async def nearest_episode(
        self,
        project_id: UUID,
        embedding: Sequence[float],
        embedding_model: str | None,
        task_type: str,
        outcome: Outcome,
        agent_instance_id: UUID | None = None,
    ) -> tuple[UUID, float] | None:
        qv = self._embedding_text(embedding, "the embedding of a new episode")
        if qv is None:
            return None
        sql = nearest_episode(of_model=embedding_model is not None, of_agent=agent_instance_id is not None)
        params = {"qv": qv, "p": project_id, "tt": task_type, "o": outcome.value, "model": embedding_model}
        params["a"] = agent_instance_id
        async with self._read() as conn:
            row = (await conn.execute(text(sql), params)).first()
        return None if row is None else (row.episode_id, float(row.cos))

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
        tsq = ts_query(query) if mode != "vector" else None
        qv = (
            self._embedding_text(query_embedding, "the query embedding")
            if query_embedding is not None and mode != "text"
            else None
        )
        if tsq is None and qv is None:
            return []
        sql, params, ef_search = search_statement(
            project_id, tsq, qv, flt, limit, now, embedding_model, exact_scan_max=self.exact_scan_max
        )
        if qv is not None:
            self._check_vector_indexes()
        if qv is None or ef_search == DEFAULT_EF_SEARCH:
            # The connection's own ef_search (schema.connect_args) is the one needed: one statement, no transaction.
            async with self._read() as conn:
                rows = (await conn.execute(text(sql), params)).all()
        else:
            async with self._write() as conn:
                await conn.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef_search)})
                rows = (await conn.execute(text(sql), params)).all()
        return [ScoredEpisode(**self._episode_fields(r), score=round(r.score, 6)) for r in rows]

    async def episodes_missing_embedding(self, limit: int, model: str | None = None) -> list[Episode]:
        # Without a model: the partial index episodes_missing_embedding serves it (few rows, asked often by the
        # background retry). With one (reembed --all, run by hand): a scan, as most rows may be stale then.
        stale = "" if model is None else " OR e.embedding_model IS DISTINCT FROM :model"
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT {EPISODE_COLUMNS} FROM episodes e WHERE e.embedding IS NULL{stale} "
                    "ORDER BY e.created_at, e.id LIMIT :limit"
                ),
                {"limit": limit, **({"model": model} if model is not None else {})},
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
        if len(embedding) != self.embedding_dimension:
            # Never written: a vector(n) column holds n dimensions only (and Postgres would refuse it anyway).
            raise InvalidArgument(
                f"the embedding of {model} has {len(embedding)} dimensions but the Postgres schema of {self.where} "
                f"stores {self.embedding_dimension}-dimensional vectors; vectors of another dimension need a new "
                f"schema (a database migrated with MCP_MEMORY_EMBEDDING_DIMENSION={len(embedding)}), or a model "
                f"of {self.embedding_dimension} dimensions"
            )
        params = {"emb": vector_text(embedding), "model": model, "p": project_id, "e": episode_id}
        if made_from is None:
            async with self._one() as conn:
                return bool((await conn.execute(text(SET_EMBEDDING), params)).rowcount)
        async with self._write() as conn:  # the text read under the row's lock, then the vector
            if not await self._text_is(conn, project_id, episode_id, made_from):
                return False
            return bool((await conn.execute(text(SET_EMBEDDING), params)).rowcount)


__all__ = ["PostgresEpisodes"]
