"""Wiring: settings -> stores -> services. One :class:`MemoryRuntime` per server process (or test)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import anyio

from mcp_memory import deadlines
from mcp_memory.config import Settings
from mcp_memory.embeddings import EmbeddingProvider, close_provider, provider_from_settings
from mcp_memory.errors import ConfigurationError
from mcp_memory.services.backfill import EmbeddingBackfill
from mcp_memory.services.episode_control import EpisodeControl
from mcp_memory.services.episodic import EpisodicMemory
from mcp_memory.services.hooks import LifecycleHooks, load_hooks
from mcp_memory.services.lifecycle import AgentLifecycleManager
from mcp_memory.services.retention_sweep import RetentionSweep
from mcp_memory.services.session_control import SessionControl
from mcp_memory.services.sessions import SessionDirectory
from mcp_memory.services.spawn_sweep import SpawnSweep
from mcp_memory.services.terminate_sweep import TerminateSweep
from mcp_memory.services.transfer import Transfer
from mcp_memory.services.working import WorkingMemory
from mcp_memory.stores.factory import build_durable_store, build_working_store, check_settings
from mcp_memory.stores.ports import AgedRetention, DurableStore, LapsedSpawns, Limits, StagedSpawn, WorkingStore
from mcp_memory.stores.transfer import TransferStore


class MemoryRuntime:
    """The stores and services of one mcp-memory instance.

    Use as ``async with MemoryRuntime(settings) as rt: await rt.lifecycle.spawn(...)``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        hooks: LifecycleHooks | None = None,
        embedder: EmbeddingProvider | None = None,
        embedding_retry: bool = True,
    ) -> None:
        """``embedding_retry``: run the background embedding retry while started (when a provider is
        configured); ``mcp-memory reembed`` turns it off and runs its own pass."""
        self.settings = settings or Settings()
        check_settings(self.settings)
        try:
            loaded_hooks = hooks or load_hooks(self.settings.hooks, self.settings.hook_timeout_seconds)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.clock = clock
        self.store = build_durable_store(self.settings)
        """The durable store: sessions, events, checkpoints, episodes."""
        self.working_store = build_working_store(self.settings, self.store)
        """The working store: Redis if configured, else the durable store itself."""
        self.embedder = embedder if embedder is not None else provider_from_settings(self.settings)
        width = getattr(self.store, "embedding_dimension", None)
        if self.embedder is not None and width is not None and width != self.embedder.dimension:
            raise ConfigurationError(
                f"the embedding provider {self.embedder.name} makes {self.embedder.dimension}-dimensional vectors "
                f"but the store holds {width}; set MCP_MEMORY_EMBEDDING_DIMENSION={self.embedder.dimension}"
            )
        self.working = WorkingMemory(self.working_store, self.settings, clock, sessions=self.store)
        self.episodic = EpisodicMemory(self.store, self.settings, self.embedder, clock)
        self.episode_control = EpisodeControl(self.episodic, self.store, self.settings, clock)
        self.episodic.record_through(self.episode_control.record_fields)
        self.lifecycle = AgentLifecycleManager(
            self.working,
            self.store,
            self.episodic,
            self.settings,
            loaded_hooks,
            clock,
        )
        self.control = SessionControl(
            self.store,
            self.working_store,
            clock,
            self.lifecycle.session_lock,
            self.settings.terminate_lease_seconds,
        )
        """Deletions: delete_session, delete_checkpoint, and the operator's forget."""
        self.sessions = SessionDirectory(self.store, clock, working=self.working_store is self.store)
        """Session discovery: list_sessions and identifier completion."""
        self.transfer = (
            Transfer(
                self.store,
                self.working_store,
                same_store=self.working_store is self.store,
                limits=Limits(max_keys=self.settings.max_keys_per_session),
                clock=clock,
                embedding_model=self.embedder.name if self.embedder is not None else None,
                item_limits=(self.settings.max_key_length, self.settings.max_value_bytes),
            )
            if isinstance(self.store, TransferStore)
            else None
        )
        """Export and import (``mcp-memory export`` / ``import``, the export resource); None for a durable store
        without the transfer port."""
        self.backfill = (
            EmbeddingBackfill(
                self.store, self.embedder, self.settings.embedding_batch_size, self.episodic.provider_recovered
            )
            if (self.embedder is not None)
            else None
        )
        """Embeds episodes stored without a vector: in the background, and for ``mcp-memory reembed``."""
        self.retention_sweep = (
            RetentionSweep(self.store, self.settings, clock) if isinstance(self.store, AgedRetention) else None
        )
        """Applies the configured retention ages to every session periodically while started (when an age is set);
        None for a durable store that cannot sweep."""
        apart = self.working_store is not self.store
        staged = self.working_store if apart and isinstance(self.working_store, StagedSpawn) else None
        self.spawn_sweep = SpawnSweep(self.store, staged, clock) if isinstance(self.store, LapsedSpawns) else None
        """Removes what spawns cut off by a crash left (their incomplete durable sessions, and their staged keys in
        Redis) periodically while started; None for a durable store that cannot sweep."""
        self.terminate_sweep = TerminateSweep(self.store, self.lifecycle.finish_cut_off_terminate, clock)
        """Finishes the terminates cut off after their record (their working memory's clear, their hooks)
        periodically while started."""
        self._embedding_retry = embedding_retry
        self._users = 0

    async def start(self) -> None:
        """Open the stores (idempotent; counted, so nested users share one runtime)."""
        if self._users == 0:
            await self.store.start()
            if self.working_store is not self.store:
                try:
                    await self.working_store.start()
                except BaseException:
                    await self.store.close()
                    raise
            if self.backfill is not None and self._embedding_retry:
                self.backfill.start(self.settings.embedding_retry_interval_seconds)
            if self.retention_sweep is not None:
                self.retention_sweep.start()
            if self.spawn_sweep is not None:
                self.spawn_sweep.start()
            self.terminate_sweep.start()
        self._users += 1

    async def close(self) -> None:
        """Close the stores when the last user leaves."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            try:
                if self.backfill is not None:
                    await self.backfill.stop()
                if self.retention_sweep is not None:
                    await self.retention_sweep.stop()
                if self.spawn_sweep is not None:
                    await self.spawn_sweep.stop()
                await self.terminate_sweep.stop()
                await close_provider(self.embedder)
                if self.working_store is not self.store:
                    await self.working_store.close()
            finally:
                await self.store.close()

    async def check(self) -> dict[str, Any]:
        """Facts about each store, counts included, for ``doctor`` (raises if a SQL store does not answer; Redis
        reports ``reachable: False`` instead). ``/readyz`` asks :meth:`probe`."""
        report = {"durable": await self.store.ping()}
        if self.working_store is not self.store:
            report["working"] = await self.working_store.ping()
        return report

    async def probe(self, within: float) -> dict[str, dict[str, Any]]:
        """Whether each store serves, for ``/readyz``: each store's cheap probe, all at once, each within
        ``within`` seconds (as a call's deadline, so Postgres and Redis cut themselves off cleanly; SQLite is
        cancelled). A store that raises or takes longer is reported ``reachable: False`` with the reason as
        ``error``, so every entry can be judged by :func:`not_serving`."""
        stores: dict[str, DurableStore | WorkingStore] = {"durable": self.store}
        if self.working_store is not self.store:
            stores["working"] = self.working_store
        report: dict[str, dict[str, Any]] = {}

        async def one(name: str, store: DurableStore | WorkingStore) -> None:
            try:
                with deadlines.call_deadline(within, 0), anyio.fail_after(within):
                    report[name] = await store.probe()
            except TimeoutError:
                report[name] = {"reachable": False, "error": f"did not answer within {within:g} s"}
            except Exception as exc:
                report[name] = {"reachable": False, "error": str(exc) or type(exc).__name__}

        async with anyio.create_task_group() as group:
            for name, store in stores.items():
                group.start_soon(one, name, store)
        return report

    async def __aenter__(self) -> MemoryRuntime:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def not_serving(facts: dict[str, Any]) -> bool:
    """Whether a store's facts (one entry of :meth:`MemoryRuntime.check` or :meth:`MemoryRuntime.probe`) say it
    serves no calls: not reachable, or reachable with an error (a Redis Cluster whose state is not ok). ``doctor``
    and ``/readyz`` decide by this."""
    return facts.get("reachable") is False or bool(facts.get("error"))


__all__ = ["MemoryRuntime", "not_serving"]
