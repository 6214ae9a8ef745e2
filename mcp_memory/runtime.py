"""Wiring: settings -> stores -> services. One :class:`MemoryRuntime` per server process (or test)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy.engine import make_url

from mcp_memory.config import Settings
from mcp_memory.embeddings import EmbeddingProvider, provider_from_settings
from mcp_memory.episodic import EpisodicMemory
from mcp_memory.lifecycle import AgentLifecycleManager, LifecycleHooks, load_hooks
from mcp_memory.stores.sqlite import SqliteStore
from mcp_memory.working import WorkingMemory


class ConfigurationError(ValueError):
    """The settings ask for something this build cannot do; the message says what to change."""


def check_settings(settings: Settings) -> None:
    """Refuse settings this release cannot honour, rather than silently ignoring them."""
    if settings.redis_url:
        raise ConfigurationError(
            "MCP_MEMORY_REDIS_URL is set, but this release keeps working memory in its SQLite store only; "
            "unset it (the Redis adapter is not available yet)"
        )
    url = settings.resolved_database_url()
    try:
        backend = make_url(url).get_backend_name()
    except Exception as exc:
        raise ConfigurationError(f"MCP_MEMORY_DATABASE_URL {url!r} is not a valid database URL: {exc}") from exc
    if backend != "sqlite":
        raise ConfigurationError(
            f"MCP_MEMORY_DATABASE_URL uses {backend!r}; this release supports SQLite "
            "('sqlite+aiosqlite:///path/to/file.db') only"
        )
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise ConfigurationError(
            "MCP_MEMORY_DATABASE_URL names an in-memory SQLite database, which would lose every checkpoint "
            "when the server stops; give a file path ('sqlite+aiosqlite:///path/to/file.db')"
        )


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
    ) -> None:
        self.settings = settings or Settings()
        check_settings(self.settings)
        try:
            loaded_hooks = hooks or load_hooks(self.settings.hooks, self.settings.hook_timeout_seconds)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        self.clock = clock
        self.store = SqliteStore(self.settings.resolved_database_url(), synchronous=self.settings.sqlite_synchronous)
        self.embedder = embedder if embedder is not None else provider_from_settings(self.settings)
        self.working = WorkingMemory(self.store, self.settings, clock)
        self.episodic = EpisodicMemory(self.store, self.settings, self.embedder, clock)
        self.lifecycle = AgentLifecycleManager(
            self.working,
            self.store,
            self.episodic,
            self.settings,
            loaded_hooks,
            clock,
        )
        self._users = 0

    async def start(self) -> None:
        """Open the stores (idempotent; counted, so nested users share one runtime)."""
        if self._users == 0:
            await self.store.start()
        self._users += 1

    async def close(self) -> None:
        """Close the stores when the last user leaves."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.store.close()

    async def check(self) -> dict[str, Any]:
        """Facts about each store, for ``doctor`` (raises if a store does not answer)."""
        return {"sqlite": await self.store.ping()}

    async def __aenter__(self) -> MemoryRuntime:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


__all__ = ["ConfigurationError", "MemoryRuntime", "check_settings"]
