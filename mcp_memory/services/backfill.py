"""Embedding backfill: episodes stored without a vector (the provider failed or was too slow when they were
recorded) get one later, so that nothing recorded during an outage stays invisible to vector search.

Two users: ``mcp-memory reembed`` (one pass over everything, reporting counts) and the background retry the
runtime starts when a provider is configured (a bounded pass every ``embedding_retry_interval_seconds``).
Passes of one process never overlap, and a pass stops at the first sign the provider is down or unusable (a
``provider_wide`` :class:`~mcp_memory.embeddings.EmbeddingError`: transient, or a configuration no text can pass)
instead of hammering it or the store. Two failures are not the provider's, and do not stop it:

- a batch that times out while one of its episodes alone does not: later batches are half as large (and, from
  :data:`GROW_BACK_SECONDS` later, twice as large again at the start of each pass, up to the configured size: a
  provider slow for a spell does not keep small batches for the rest of the process);
- a batch refused while the provider embeds a short test text (:data:`PROBE_TEXT`): its episodes are tried one by
  one, and those refused are remembered and skipped until the process restarts, so that they never hold up the
  newer episodes behind them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import anyio
import anyio.lowlevel

from mcp_memory.embeddings import EmbeddingError, EmbeddingProvider
from mcp_memory.models import Episode
from mcp_memory.services.episodic import episode_text
from mcp_memory.services.periodic import Periodic
from mcp_memory.stores.ports import EpisodeStore, EpisodeText

logger = logging.getLogger(__name__)

BACKGROUND_MAX_BATCHES = 10
"""Batches one background pass embeds at most; the rest waits for the next interval."""
_MAX_REJECTED = 10_000
"""Refused episodes remembered at most (as UUIDs: under 2 MB); past it, a refused episode is skipped for the rest
of its pass only."""
GROW_BACK_SECONDS = 600.0
"""How long batches stay at a size a timeout halved them to before a pass tries twice that size again (one more
timed-out request then, at worst, every this many seconds)."""
PROBE_TEXT = "mcp-memory embedding check"
"""A short plain text any model takes: whether the provider embeds it tells a refusal of some episodes' texts from
a provider that refuses everything."""


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
        self._size = batch_size
        """Episodes per provider call: ``batch_size``, halved each time a batch timed out while one of its episodes
        alone did not (a provider too slow for a whole batch within one request's timeout), doubled again back
        towards ``batch_size`` by :meth:`_grow_back`."""
        self._resized_at = 0.0
        """``time.monotonic()`` when :attr:`_size` last changed."""
        self._lock = anyio.Lock()
        self._rejected: set[UUID] = set()
        """Episodes the provider refused on their own (while it embedded :data:`PROBE_TEXT`): not retried by this
        process (at most :data:`_MAX_REJECTED` of them), so that bad episodes cannot block those behind them."""
        self._max_batches = BACKGROUND_MAX_BATCHES
        """Of each background pass (:meth:`start`)."""
        self._retry = Periodic(
            "mcp-memory embedding retry", self._background_pass, logger, "embedding retry pass failed"
        )

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
        self._grow_back()
        batches = 0
        while max_batches is None or batches < max_batches:
            size = self._size
            page = await self._store.episodes_missing_embedding(size + len(skip), model if all_models else None)
            todo = [ep for ep in page if ep.episode_id not in skip][:size]
            if not todo:
                break
            batches += 1
            down = await self._batch(todo, report, skip)
            if down is not None:
                report.stopped = down
                break
            await anyio.lowlevel.checkpoint()  # let the store serve others between batches
        return report

    def _grow_back(self) -> None:
        """At the start of a pass, batches halved at least :data:`GROW_BACK_SECONDS` ago double (up to the configured
        size): whatever made the provider slow may have passed. If not, the next timeout halves them again."""
        if self._size >= self._batch_size or time.monotonic() - self._resized_at < GROW_BACK_SECONDS:
            return
        self._size = min(self._batch_size, self._size * 2)
        self._resized_at = time.monotonic()
        logger.info("embedding batches of %d again", self._size)

    async def _batch(self, todo: list[Episode], report: BackfillReport, skip: set[UUID]) -> str | None:
        """Embed ``todo`` and attach the vectors. None if the provider is up (episodes it refused are remembered and
        skipped); otherwise why the pass stops there (the episodes not embedded are counted as failed)."""
        error = await self._embed(todo, report, skip)
        if error is None:
            return None
        if error.timed_out and len(todo) > 1:
            return await self._shrink(todo, report, skip, error)
        if error.provider_wide:
            report.failed += len(todo)
            return str(error)
        return await self._sort_out_refused(todo, report, skip, error)

    async def _embed(self, todo: list[Episode], report: BackfillReport, skip: set[UUID]) -> EmbeddingError | None:
        try:
            vectors = await self._embedder.embed([episode_text(ep) for ep in todo])
        except Exception as exc:
            return exc if isinstance(exc, EmbeddingError) else EmbeddingError(str(exc), transient=False)
        if self._on_recovered is not None:
            self._on_recovered()
        for ep, vector in zip(todo, vectors, strict=True):
            await self._attach(ep, vector, report, skip)
        return None

    async def _shrink(
        self, todo: list[Episode], report: BackfillReport, skip: set[UUID], error: EmbeddingError
    ) -> str | None:
        """A batch timed out. If its first episode alone gets an answer, the provider is up but too slow for that
        many texts in one request's timeout: later batches (of this process) are half as large. If it times out
        or fails too, the provider is down. Asking one episode, not each half in turn, costs a provider that hangs
        two timeouts, not one per halving."""
        down = await self._batch(todo[:1], report, skip)
        if down is not None:
            report.failed += len(todo) - 1
            return down
        self._size = max(1, len(todo) // 2)
        self._resized_at = time.monotonic()
        logger.warning(
            "embedding %d texts in one request timed out (%s); batches of %d for the next %g s at least",
            len(todo),
            error,
            self._size,
            GROW_BACK_SECONDS,
        )
        return None

    async def _sort_out_refused(
        self, todo: list[Episode], report: BackfillReport, skip: set[UUID], error: EmbeddingError
    ) -> str | None:
        """The provider refused the batch, neither as down nor as misconfigured (an API's 400, say): the texts'
        fault, or the provider's? It is asked for :data:`PROBE_TEXT`; if it refuses that too, it is the provider's
        (the pass stops, no episode is blamed). Otherwise the episodes are embedded one by one and those refused
        are remembered (:meth:`_refuse`), so that they do not hold up the newer ones behind them."""
        try:
            await self._embedder.embed([PROBE_TEXT])
        except Exception as exc:
            report.failed += len(todo)
            if isinstance(exc, EmbeddingError) and exc.transient:
                return str(exc)
            return f"{error} (a short test text is refused too: the provider's configuration, not the episodes)"
        if self._on_recovered is not None:
            self._on_recovered()
        if len(todo) == 1:
            self._refuse(todo[0], str(error), report, skip)
            return None
        for tried, ep in enumerate(todo):
            failure = await self._embed([ep], report, skip)
            if failure is None:
                continue
            if failure.provider_wide:  # down meanwhile (a rate limit, a timeout) or broken: no episode's fault
                report.failed += len(todo) - tried
                return str(failure)
            self._refuse(ep, str(failure), report, skip)
        return None

    def _refuse(self, ep: Episode, message: str, report: BackfillReport, skip: set[UUID]) -> None:
        logger.warning("embedding of episode %s refused; not retried until restart: %s", ep.episode_id, message)
        report.failed += 1
        report.errors.append(f"episode {ep.episode_id}: {message}")
        skip.add(ep.episode_id)
        if len(self._rejected) < _MAX_REJECTED:
            self._rejected.add(ep.episode_id)

    async def _attach(self, ep: Episode, vector: list[float], report: BackfillReport, skip: set[UUID]) -> None:
        # Attached only to the text it was made from: an edit since (which dropped the vector) is embedded next.
        made_from = EpisodeText.of(ep)
        model = self._embedder.name
        if await self._store.set_episode_embedding(ep.project_id, ep.episode_id, vector, model, made_from):
            report.embedded += 1
        else:
            skip.add(ep.episode_id)  # deleted meanwhile or embedded by another process: nothing to do

    # -- background retry --------------------------------------------------------------------------------
    def start(self, interval: float, max_batches: int = BACKGROUND_MAX_BATCHES) -> None:
        """Run a bounded pass every ``interval`` seconds in a background task, until :meth:`stop`; nothing if
        running already."""
        if not self._retry.running:
            self._max_batches = max_batches
            self._retry.start(interval)

    async def _background_pass(self) -> None:
        report = await self.run_once(max_batches=self._max_batches)
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
        return self._retry.running

    async def stop(self) -> None:
        """Stop the background retry (a pass in progress is cancelled; what it attached stays)."""
        await self._retry.stop()


__all__ = ["BACKGROUND_MAX_BATCHES", "GROW_BACK_SECONDS", "PROBE_TEXT", "BackfillReport", "EmbeddingBackfill"]
