"""Settings for the stores a parametrized test names ("sqlite", "postgres", "redis+sqlite", "redis+postgres"),
each fresh for the test: a SQLite file under its ``tmp_path`` or a migrated Postgres database for the records, and
working memory there too, or (``redis+``) on the shared test Redis under a key prefix of its own, whose keys are
deleted when the test is done."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp_memory.config import Settings
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix


@asynccontextmanager
async def settings_for(stores: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[Settings]:
    """Settings on ``stores`` (see the module docstring), with ``overrides`` of other settings."""
    records = stores.removeprefix("redis+")
    if records == "postgres":
        from tests import pg_servers  # only a test on Postgres needs its server

        url = pg_servers.database_url(await pg_servers.migrated_database())
    else:
        assert records == "sqlite", f"unknown stores {stores!r}"
        url = f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"
    if records == stores:
        yield Settings(database_url=url, **overrides)
        return
    prefix = unique_prefix()
    try:
        yield Settings(database_url=url, redis_url=shared_redis_url(), redis_key_prefix=prefix, **overrides)
    finally:
        delete_keys(shared_redis_url(), prefix)
