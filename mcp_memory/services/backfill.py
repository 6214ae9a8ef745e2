"""Embedding backfill: episodes stored without a vector (the provider failed or was too slow when they were
recorded) get one later, so that nothing recorded during an outage stays invisible to vector search.

Two users: ``mcp-memory reembed`` (one pass over everything, reporting counts) and the background retry the
runtime starts when a provider is configured (a bounded pass every ``embedding_retry_interval_seconds``).
Passes of one process never overlap, and a pass stops at the first sign the provider is down (a transient
:class:`~mcp_memory.embeddings.EmbeddingError`) instead of hammering it or the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import anyio
import anyio.lowlevel

from mcp_memory.embeddings import EmbeddingError, EmbeddingProvider
from mcp_memory.models import Episode
from mcp_memory.services.episodic import episode_text
from mcp_memory.stores.ports import EpisodeStore, EpisodeText

logger = logging.getLogger(__name__)

BACKGROUND_MAX_BATCHES = 10
"""Batches one background pass embeds at most; the rest waits for the next interval."""
_MAX_REJECTED = 10_000


@dataclass
class BackfillReport:
    """What one pass did. ``failed``: episodes tried and still without a vector; ``stopped``: why the pass
    ended early (the provider's error), if it did."""

    embedded: int = 0
    failed: int = 0
    stopped: str | None = None
    errors: list[str] = field(default_factory=list)


class EmbeddingBackfill:
    """Embeds the store's episodes that lack a vector of ``embedder``'s model."""

    def __init__(
        self,
        store: EpisodeStore,
        embedder: EmbeddingProvider,
        batch_size: int = 64,
        on_recovered: Callable[[], None] | None = None,
    ) -> None:
        """``on_recovered``: called when the provider embeds something (it is up), e.g. to end
        :meth:`~mcp_memory.services.episodic.EpisodicMemory.embed`'s pause after a failure."""
        self._store = store
        self._on_recovered = on_recovered
        self._embedder = embedder
        self._batch_size = batch_size
        self._lock = anyio.Lock()
        self._rejected: set[UUID] = set()
        """Episodes the provider refused on their own (while others of their batch passed): not retried by
        this process, so that one bad episode cannot block those behind it."""
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, *, all_models: bool = False, max_batches: int | None = None) -> BackfillReport:
        """One pass, oldest episodes first, ``batch_size`` per provider call; waits for a pass in progress.

        ``all_models``: also re-embed vectors made by another model than the provider's (after a change of
        provider or dimension; search ignores them until then)."""
        async with self._lock:
            return await self._pass(all_models, max_batches)

    async def _pass(self, all_models: bool, max_batches: int | None) -> BackfillReport:
        report = BackfillReport()
        model = self._embedder.name
        skip = set(self._rejected)
        batches = 0
        while max_batches is None or batches < max_batches:
            page = await self._store.episodes_missing_embedding(
                self._batch_size + len(skip), model if all_models else None
            )
            todo = [ep for ep in page if ep.episode_id not in skip][: self._batch_size]
            if not todo:
                break
            batches += 1
            try:
                vectors = await self._embedder.embed([episode_text(ep) for ep in todo])
            except Exception as exc:
                error = exc if isinstance(exc, EmbeddingError) else EmbeddingError(str(exc), transient=False)
                if error.transient or len(todo) == 1:
                    report.failed += len(todo)
                    report.stopped = str(error)
                    break
                # Refused: find out whether some episodes are the problem or the provider (then stop).
                done, down = await self._one_by_one(todo, report, skip)
                if down is not None or not done:
                    report.stopped = down or str(error)
                    break
                continue
            if self._on_recovered is not None:
                self._on_recovered()
            for ep, vector in zip(todo, vectors, strict=True):
                await self._attach(ep, vector, report, skip)
            await anyio.lowlevel.checkpoint()  # let the store serve others between batches
        return report

    async def _attach(self, ep: Episode, vector: list[float], report: BackfillReport, skip: set[UUID]) -> None:
        # Attached only to the text it was made from: an edit since (which dropped the vector) is embedded next.
        made_from = EpisodeText.of(ep)
        model = self._embedder.name
        if await self._store.set_episode_embedding(ep.project_id, ep.episode_id, vector, model, made_from):
            report.embedded += 1
        else:
            skip.add(ep.episode_id)  # deleted meanwhile or embedded by another process: nothing to do

    async def _one_by_one(self, todo: list[Episode], report: BackfillReport, skip: set[UUID]) -> tuple[int, str | None]:
        """Embed a refused batch episode by episode; remembers the refused ones. Returns how many passed (0: every
        one was refused, so it is the provider's configuration, not the episodes; none is remembered) and, if the
        provider went down meanwhile (a transient error: a rate limit, a timeout), that error: the retry stops there,
        and the episodes not tried are no episode's fault."""
        refused: list[tuple[Episode, str]] = []
        done = 0
        down: str | None = None
        for tried, ep in enumerate(todo):
            try:
                vectors = await self._embedder.embed([episode_text(ep)])
            except Exception as exc:
                if isinstance(exc, EmbeddingError) and exc.transient:
                    down = str(exc)
                    report.failed += len(todo) - tried
                    break
                refused.append((ep, str(exc)))
                continue
            await self._attach(ep, vectors[0], report, skip)
            done += 1
        report.failed += len(refused)
        if done and self._on_recovered is not None:
            self._on_recovered()
        if done:
            for ep, message in refused:
                logger.warning("embedding of episode %s refused; not retried until restart: %s", ep.episode_id, message)
                report.errors.append(f"episode {ep.episode_id}: {message}")
                skip.add(ep.episode_id)
                if len(self._rejected) < _MAX_REJECTED:
                    self._rejected.add(ep.episode_id)
        return done, down

    # -- background retry --------------------------------------------------------------------------------
    def start(self, interval: float, max_batches: int = BACKGROUND_MAX_BATCHES) -> None:
        """Run a bounded pass every ``interval`` seconds in a background task, until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(interval, max_batches), name="mcp-memory embedding retry"
            )

    async def _loop(self, interval: float, max_batches: int) -> None:
        while True:
            await anyio.sleep(interval)
            try:
                report = await self.run_once(max_batches=max_batches)
            except Exception:
                logger.warning("embedding retry pass failed", exc_info=True)
                continue
            if report.embedded or report.failed:
                logger.info(
                    "embedding retry: %d episodes embedded, %d still without a vector%s",
                    report.embedded,
                    report.failed,
                    f" ({report.stopped})" if report.stopped else "",
                )

    @property
    def running(self) -> bool:
        """Whether the background retry is running."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop the background retry (a pass in progress is cancelled; what it attached stays)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = ["BACKGROUND_MAX_BATCHES", "BackfillReport", "EmbeddingBackfill"]
