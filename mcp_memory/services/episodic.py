"""EpisodicMemory: what agents learned, recorded as episodes and recalled by search.

Search ranks full-text matches (FTS5 / tsvector in the store) fused with vector similarity when an
embedding provider is configured (score fusion), blended with importance and recency; see
:mod:`mcp_memory.ranking`. An embedding failure never loses an episode: it is stored without a vector (found by
full-text search at once) and embedded later by :mod:`mcp_memory.services.backfill` (``mcp-memory reembed`` and a
background retry).

Each vector is stored with the name of the model that made it, and a query is compared only with vectors of
the configured provider's model: vectors of another model (after a change of provider) are not comparable,
so they are ignored until ``mcp-memory reembed --all`` re-embeds them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import anyio

from mcp_memory import deadlines
from mcp_memory.config import Settings
from mcp_memory.embeddings import EmbeddingError, EmbeddingProvider
from mcp_memory.errors import InvalidArgument, NotFound
from mcp_memory.models import (
    Episode,
    EpisodeCreate,
    Outcome,
    ScoredEpisode,
    parse_outcome,
    parse_uuid,
    to_datetime,
    validate_identifier,
)
from mcp_memory.services.dated_search import search_reading_time
from mcp_memory.services.validation import (
    MAX_QUERY,
    MAX_SEARCH_LIMIT,
    MAX_TASK_TYPE,
    MAX_TEXT,
    check_context_summary,
    check_importance,
    check_lessons,
    check_metadata,
    check_page_limit,
    check_text,
    parse_since,
)
from mcp_memory.stores.ports import EpisodeFilter, EpisodeStore, SearchMode

logger = logging.getLogger(__name__)

EMBED_PAUSE_SECONDS = 30.0
"""After an embedding failure, how long tool calls go without vectors before asking the provider again."""
MAX_EMBED_CHARS = 8_000
"""Longest text embedded per episode (about 2,000 tokens: within every common embedding model's input)."""


def episode_text(ep: Episode) -> str:
    """The text an episode is embedded from."""
    parts = [ep.task_type.replace("_", " "), ep.task_description, ep.outcome_details, *ep.lessons_learned]
    if ep.context_summary:
        parts.append(ep.context_summary[:1000])
    return "\n".join(p for p in parts if p)[:MAX_EMBED_CHARS]


_EPISODE_FIELDS = frozenset(EpisodeCreate.model_fields)


class EpisodicMemory:
    """Records and recalls episodes of one durable store."""

    def __init__(
        self,
        store: EpisodeStore,
        settings: Settings,
        embedder: EmbeddingProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._settings = settings
        self._embedder = embedder
        self._clock = clock
        self._paused_until = 0.0
        """``time.monotonic()`` until which callers do not wait for the provider (it failed just before)."""
        self._recorder: Callable[[dict[str, Any]], Awaitable[Episode]] | None = None
        """Where ``record_episode`` sends its fields when set: the duplicate-aware recording of
        :mod:`~mcp_memory.services.episode_control`, which builds on this class and so cannot be imported here."""

    def record_through(self, recorder: Callable[[dict[str, Any]], Awaitable[Episode]]) -> None:
        """Make ``record_episode`` record through ``recorder`` (validated fields in, the stored episode out), so the
        Python API recognises repeats and near-duplicates as the ``record_episode`` tool does."""
        self._recorder = recorder

    @property
    def embedder(self) -> EmbeddingProvider | None:
        """The configured embedding provider, if any."""
        return self._embedder

    @property
    def embedding_model(self) -> str | None:
        """The name stored with (and searched among) the vectors this service makes."""
        return None if self._embedder is None else self._embedder.name

    def build(
        self,
        project_id: str | UUID,
        agent_instance_id: str | UUID,
        task_type: str,
        task_description: str,
        outcome: Outcome | str,
        session_id: str | None = None,
        outcome_details: str | None = None,
        lessons_learned: Sequence[str] | None = None,
        importance_score: float | None = None,
        metadata: dict[str, Any] | None = None,
        context_summary: str = "",
    ) -> Episode:
        """Validate everything into an :class:`Episode` (nothing is written)."""
        importance = 0.5 if importance_score is None else check_importance(importance_score)
        created = to_datetime(self._clock())
        assert created is not None
        return Episode(
            episode_id=uuid.uuid4(),
            project_id=parse_uuid(project_id, "project_id"),
            agent_instance_id=parse_uuid(agent_instance_id, "agent_instance_id"),
            session_id=None if session_id is None else validate_identifier(session_id, "session_id"),
            task_type=check_text(task_type, "task_type", MAX_TASK_TYPE),
            task_description=check_text(task_description, "task_description", MAX_TEXT),
            outcome=parse_outcome(outcome),
            outcome_details=check_text(outcome_details, "outcome_details", MAX_TEXT, required=False),
            lessons_learned=check_lessons(lessons_learned),
            importance_score=importance,
            context_summary=check_context_summary(context_summary),
            metadata=check_metadata(metadata, self._settings.max_value_bytes),
            created_at=created,
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        """Embed texts for a caller who is waiting: None (logged) if there is no provider, or it fails or takes
        longer than ``embedding_deadline_seconds`` (retries included).

        After a failure of the provider (down, slow, or unusable as configured: an error that is ``provider_wide``, a
        timeout), callers do not wait for it again for :data:`EMBED_PAUSE_SECONDS` (episodes are stored without a
        vector, searches use full-text only), unless :meth:`provider_recovered` says it is back: during an outage
        each tool call would otherwise wait out the retries and the deadline. A refusal of these texts alone (an
        input too long for the model) pauses nobody."""
        if self._embedder is None or time.monotonic() < self._paused_until:
            return None
        deadline = self._settings.embedding_deadline_seconds
        try:
            # Not charged to the tool call's store deadline (mcp_memory.deadlines): the embedding has its own, and a
            # slow provider degrades to "no vector", whereas a store step cut short would fail a healthy call.
            with deadlines.not_counted(), anyio.fail_after(deadline):
                return await self._embedder.embed(list(texts))
        except TimeoutError:
            logger.warning(
                "embedding with %s took over %s s; continuing without vectors", self._embedder.name, deadline
            )
        except EmbeddingError as exc:
            if not exc.provider_wide:
                # These texts were refused (too long for the model, say): the provider serves the next caller.
                logger.warning(
                    "embedding with %s refused the text; stored without a vector: %s", self._embedder.name, exc
                )
                return None
            logger.warning("embedding with %s failed; continuing without vectors: %s", self._embedder.name, exc)
        except Exception as exc:
            logger.warning("embedding with %s failed; continuing without vectors: %s", self._embedder.name, exc)
        self._paused_until = time.monotonic() + EMBED_PAUSE_SECONDS
        return None

    def provider_recovered(self) -> None:
        """The provider answered again (the backfill embedded something): callers use it again at once."""
        self._paused_until = 0.0

    async def record(self, episode: Episode) -> Episode:
        """Store a built episode with its embedding; if none can be made now, without (embedded later)."""
        vectors = await self.embed([episode_text(episode)])
        vector = vectors[0] if vectors else None
        stored = await self._store.add_episode(episode, vector, self.embedding_model if vector is not None else None)
        if stored != episode.episode_id:  # a repeat of a stored episode: nothing was written
            return await self.get(episode.project_id, stored)
        return episode.model_copy(update={"embedded": vector is not None})

    async def record_episode(self, episode: EpisodeCreate | None = None, /, **fields: Any) -> Episode:
        """Validate and store an episode; returns it with its new ``episode_id``.

        Takes an :class:`EpisodeCreate` (the seed's way), keyword fields (project_id, agent_instance_id,
        task_type, task_description, outcome, session_id, outcome_details, lessons_learned, importance_score,
        metadata), or both (keywords override)."""
        data: dict[str, Any] = episode.model_dump() if episode is not None else {}
        data.update(fields)
        unknown = set(data) - _EPISODE_FIELDS
        if unknown:
            raise InvalidArgument(f"unknown episode fields: {', '.join(sorted(unknown))}")
        missing = {"project_id", "agent_instance_id", "task_type", "task_description", "outcome"} - set(data)
        if missing:
            raise InvalidArgument(f"missing episode fields: {', '.join(sorted(missing))}")
        if self._recorder is not None:
            return await self._recorder(data)
        return await self.record(self.build(**data))

    async def search(
        self,
        project_id: str | UUID,
        query: str,
        limit: int = 5,
        outcome: Outcome | str | None = None,
        task_type: str | None = None,
        agent_instance_id: str | UUID | None = None,
        since: str | datetime | None = None,
        *,
        mode: SearchMode = "hybrid",
    ) -> list[ScoredEpisode]:
        """Episodes of the project ranked best first for ``query``, each with its score. A period the query names
        ("in March", "last week") puts the episodes recorded in it first; "now", "current" and the like favour
        the newer of comparably relevant episodes (:mod:`mcp_memory.services.dated_search`).

        ``mode``: "hybrid" (full-text fused with vectors; the tool's behaviour), or one retriever alone
        ("text", "vector"), to measure what fusion adds."""
        project = parse_uuid(project_id, "project_id")
        text = check_text(query, "query", MAX_QUERY)
        limit = check_page_limit(limit, MAX_SEARCH_LIMIT)
        flt = EpisodeFilter(
            outcome=None if outcome is None else parse_outcome(outcome),
            task_type=None if task_type is None else check_text(task_type, "task_type", MAX_TASK_TYPE),
            agent_instance_id=None if agent_instance_id is None else parse_uuid(agent_instance_id, "agent_instance_id"),
            since=parse_since(since),
        )
        vectors = await self.embed([text]) if mode != "text" else None
        vector = vectors[0] if vectors else None
        now = self._clock()

        async def run(narrowed: EpisodeFilter, n: int) -> list[ScoredEpisode]:
            return await self._store.search_episodes(
                project, text, vector, narrowed, n, now, mode=mode, embedding_model=self.embedding_model
            )

        # The time the query names (read relative to now, the call's time) orders the store's answers.
        async def listing(narrowed: EpisodeFilter, n: int) -> list[Episode]:
            return await self._store.recent_episodes([project], n, narrowed)

        return await search_reading_time(run, listing, text, flt, limit, now)

    async def get(self, project_id: UUID, episode_id: str | UUID) -> Episode:
        """One episode of the project, or ``not_found``."""
        eid = parse_uuid(episode_id, "episode_id")
        episode = await self._store.get_episode(project_id, eid)
        if episode is None:
            raise NotFound(f"episode '{eid}' does not exist in project {project_id}")
        return episode

    async def recent(self, project_id: UUID, limit: int = 50) -> list[Episode]:
        """The project's newest episodes."""
        return await self._store.recent_episodes([project_id], limit)


__all__ = [
    "MAX_EMBED_CHARS",
    "EpisodicMemory",
    "Outcome",
    "episode_text",
]
