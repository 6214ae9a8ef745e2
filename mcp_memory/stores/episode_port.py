"""The episodic-memory port: episodes with their embeddings, ranked recall, and the edits an owner makes. Part of the
durable store (:class:`~mcp_memory.stores.durable_ports.DurableStore`); the contracts all ports keep: :mod:`.ports`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from uuid import UUID

from mcp_memory.models import Episode, Outcome, ScoredEpisode
from mcp_memory.stores.records import (
    EpisodeChanges,
    EpisodeFilter,
    EpisodeSelector,
    EpisodeText,
    EventRecord,
    ForgottenEpisode,
    Retention,
    SearchMode,
    VectorBacklog,
)


@runtime_checkable
class EpisodeStore(Protocol):
    """Episodic memory: episodes with their embeddings, and ranked recall."""

    async def add_episode(
        self, episode: Episode, embedding: Sequence[float] | None, embedding_model: str | None = None
    ) -> UUID:
        """Store an episode and its embedding (None if it has none yet), with the name of the model that
        made it (:attr:`~mcp_memory.embeddings.EmbeddingProvider.name`). Returns its id; if it repeats a stored
        episode (see :meth:`same_episode`) nothing is written and the stored one's id is returned."""
        ...

    async def get_episode(self, project_id: UUID, episode_id: UUID) -> Episode | None:
        """One episode of a project."""
        ...

    async def same_episode(self, episode: Episode) -> UUID | None:
        """The oldest stored episode that ``episode`` repeats (same project, agent, session, outcome and
        searchable text: task type, description, outcome details, lessons, context summary), if any."""
        ...

    async def nearest_episode(
        self,
        project_id: UUID,
        embedding: Sequence[float],
        embedding_model: str | None,
        task_type: str,
        outcome: Outcome,
        agent_instance_id: UUID | None = None,
    ) -> tuple[UUID, float] | None:
        """The project's episode of this task type and outcome (and of ``agent_instance_id`` if given) whose
        vector (of ``embedding_model``) is nearest to ``embedding``, with its cosine similarity; None if none has a
        comparable vector."""
        ...

    async def count_episodes(self, project_id: UUID, selector: EpisodeSelector) -> int:
        """How many of the project's episodes ``selector`` picks (what ``forget_episodes`` would remove)."""
        ...

    async def forget_episodes(
        self, project_id: UUID, selector: EpisodeSelector, event: EventRecord, retention: Retention | None = None
    ) -> list[ForgottenEpisode]:
        """Delete the episodes ``selector`` picks in the project, in one transaction: the rows with their vectors,
        their full-text postings and their share of the project's full-text statistics (so later scores are those
        of a store that never held them). ``event`` (its detail completed with the session's forgotten ids) is
        recorded on each session the episodes came from that still exists, and ``retention``'s event bounds applied
        to that session in the same transaction, as ``record_event`` does; a session whose episode goes refers to
        none from then on (its ``terminate_result`` is kept: a repeated terminate answers the same)."""
        ...

    async def update_episode(
        self,
        project_id: UUID,
        episode_id: UUID,
        changes: EpisodeChanges,
        event: EventRecord,
        retention: Retention | None = None,
    ) -> Episode | None:
        """Apply ``changes`` to one episode of the project (re-indexing its text if ``changes.reembed``) and
        record ``event`` on its session if that still exists, applying ``retention``'s event bounds to the session
        in the same transaction (as ``record_event`` does: a session edited many times after its last pause or
        resume keeps its events within them); the updated episode, or None if it does not exist."""
        ...

    async def recent_episodes(
        self, projects: Sequence[UUID] | None, limit: int, flt: EpisodeFilter | None = None
    ) -> list[Episode]:
        """Newest episodes first (None: every project)."""
        ...

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
        """Rank the project's episodes for ``query``: full-text, fused with vector similarity when a query
        embedding is given, blended with importance and recency. Best first. ``mode`` restricts ranking to
        one retriever ("text": the embedding is ignored; "vector": full-text is not consulted).
        ``embedding_model``: the model that made ``query_embedding``; when given, only vectors stored with
        that model's name are compared with it (a vector of another model is on another scale, even when
        its dimension happens to match). Vectors of another dimension are never compared."""
        ...

    async def episodes_missing_embedding(self, limit: int, model: str | None = None) -> list[Episode]:
        """Episodes stored without a vector (their embedding failed or timed out), oldest first, across
        every project: the work list of ``mcp-memory reembed`` and of the background retry. With ``model``,
        also the episodes whose vector was made by another model (or by an unrecorded one), which search with
        ``model`` ignores: the work list of ``mcp-memory reembed --all``."""
        ...

    async def vector_backlog(self, model: str) -> VectorBacklog:
        """How many episodes (every project) have no vector, and how many a vector of another model than
        ``model``: counted by the store, no episode read (``mcp-memory doctor`` and ``reembed`` report them)."""
        ...

    async def set_episode_embedding(
        self,
        project_id: UUID,
        episode_id: UUID,
        embedding: Sequence[float],
        model: str,
        made_from: EpisodeText | None = None,
    ) -> bool:
        """Attach a vector made by ``model`` to an episode that has none, or whose vector was made by another
        model (or by an unrecorded one); False (nothing written) if the episode is unknown, has a vector of
        ``model`` already, or no longer has the text ``made_from`` the vector was made from (an edit came between
        the read and this write)."""
        ...


__all__ = ["EpisodeStore"]
