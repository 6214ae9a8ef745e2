"""Which adapters the settings ask for, built lazily so that an unused backend's driver is never imported.

- Durable store (sessions, events, checkpoints, episodes): SQLite (``sqlite+aiosqlite://``, the default) or
  Postgres with pgvector (``postgresql+asyncpg://``).
- Working store (live key-value state): Redis when ``redis_url`` is set, else the durable store's own
  SQL tables (so the embedded default is one file).
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.engine import make_url

from mcp_memory.config import Settings
from mcp_memory.errors import ConfigurationError
from mcp_memory.stores.ports import CombinedStore, WorkingStore

DurableBackend = Literal["sqlite", "postgresql"]


def durable_backend(settings: Settings) -> DurableBackend:
    """The durable store's backend, or ``ConfigurationError`` naming what is wrong with the URL."""
    url = settings.resolved_database_url()
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigurationError(f"MCP_MEMORY_DATABASE_URL {url!r} is not a valid database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            raise ConfigurationError(
                "MCP_MEMORY_DATABASE_URL names an in-memory SQLite database, which would lose every checkpoint "
                "when the server stops; give a file path ('sqlite+aiosqlite:///path/to/file.db')"
            )
        return "sqlite"
    if backend == "postgresql":
        if parsed.get_driver_name() != "asyncpg":
            raise ConfigurationError(
                f"MCP_MEMORY_DATABASE_URL uses the driver {parsed.get_driver_name()!r}; use "
                "'postgresql+asyncpg://user:password@host:5432/dbname'"
            )
        return "postgresql"
    raise ConfigurationError(
        f"MCP_MEMORY_DATABASE_URL uses {backend!r}; supported are SQLite ('sqlite+aiosqlite:///path/to/file.db') "
        "and Postgres with pgvector ('postgresql+asyncpg://user:password@host:5432/dbname')"
    )


def check_settings(settings: Settings) -> None:
    """Refuse settings this build cannot honour, rather than silently ignoring them."""
    durable_backend(settings)
    if settings.redis_url:
        from mcp_memory.stores.redis.connection import check_redis_settings

        check_redis_settings(settings)


def build_durable_store(settings: Settings) -> CombinedStore:
    """The durable store the settings ask for (not started); it can hold working memory too."""
    backend = durable_backend(settings)
    if backend == "postgresql":
        from mcp_memory.stores.postgres.store import PostgresStore

        return PostgresStore.from_settings(settings)
    from mcp_memory.stores.sqlite.store import SqliteStore

    return SqliteStore(settings.resolved_database_url(), synchronous=settings.sqlite_synchronous)


def build_working_store(settings: Settings, durable: CombinedStore) -> WorkingStore:
    """The working store: Redis if configured, else the durable store itself (its SQL tables)."""
    if settings.redis_url:
        from mcp_memory.stores.redis.store import RedisWorkingStore

        # The durable store is Redis's authority on sessions: it re-opens sessions Redis has lost.
        return RedisWorkingStore.from_settings(settings, durable=durable)
    return durable


__all__ = ["build_durable_store", "build_working_store", "check_settings", "durable_backend"]
