"""The Postgres schema's migrations (Alembic, shipped in :mod:`mcp_memory.stores.migrations`) and the start-up check.

Alembic is configured here in code, so no ``alembic.ini`` is needed at run time. The schema is never changed
behind an operator's back: ``mcp-memory migrate`` applies migrations, and a server whose database is behind
refuses to start with a message naming that command. (Auto-migrating on first start would suit a desktop user,
but a server sharing a database with others must not alter its schema unasked; one explicit command and a clear
error serve both.)

The embedding dimension is fixed when the schema is created (``vector(n)``; the HNSW index needs a fixed n) and
recorded in ``mcp_memory_meta``; start-up refuses settings with another ``embedding_dimension``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory import faults
from mcp_memory.stores import migrations
from mcp_memory.stores.postgres.search import DEFAULT_EF_SEARCH
from mcp_memory.stores.sql.clauses import text

SCHEMA = "mcp_memory"
"""Every table lives in this Postgres schema, so that the database can be shared: an application's own
``checkpoints`` table (LangGraph's ``AsyncPostgresSaver`` has one) or Alembic history does not clash with ours."""
SEARCH_PATH = f"{SCHEMA}, public"
"""Our connections' search_path: our tables first, then ``public`` (where the vector extension is installed)."""
VERSION_TABLE = migrations.VERSION_TABLE
"""Alembic's version table (in :data:`SCHEMA`)."""


def connect_args(timeout_seconds: float | None = None) -> dict[str, Any]:
    """asyncpg connect arguments of every connection to our schema."""
    # force_custom_plan: statements are prepared and cached per connection, and after five runs Postgres may
    # switch to a generic plan that, not knowing the LIMIT or the query vector, scans every vector exactly
    # instead of using the HNSW index. Planning each time costs well under 1 ms.
    # max_parallel_workers_per_gather 0: our queries are short; a parallel plan for the (usually skipped) exact-scan
    # fallback of a search still launches its workers, ~6 ms for nothing (measured at 100k episodes).
    # hnsw.ef_search: the HNSW scan size most searches need, so that they need no transaction to set it (a
    # placeholder until pgvector loads, which then takes it).
    settings = {
        "application_name": "mcp-memory",
        "search_path": SEARCH_PATH,
        "plan_cache_mode": "force_custom_plan",
        "max_parallel_workers_per_gather": "0",
        "hnsw.ef_search": str(DEFAULT_EF_SEARCH),
    }
    args: dict[str, Any] = {"server_settings": settings}
    if timeout_seconds is not None:
        args.update(timeout=timeout_seconds, command_timeout=timeout_seconds)
    return args


MIGRATE_COMMAND = "mcp-memory migrate"


def alembic_config(embedding_dimension: int | None = None) -> Config:
    """The Alembic configuration of our migrations (no ini file): the ``postgres`` history."""
    config = migrations.alembic_config("postgres")
    config.attributes["version_table_schema"] = SCHEMA
    if embedding_dimension is not None:
        config.attributes["embedding_dimension"] = embedding_dimension
    return config


def head_revision() -> str:
    """The newest revision this release knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every revision this release ships."""
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What the database holds: its Alembic revision (None: no schema yet) and its vector dimension."""

    revision: str | None
    embedding_dimension: int | None


def read_state(conn: Connection) -> SchemaState:
    """The schema's revision and recorded embedding dimension (sync; run through ``run_sync``)."""
    revision = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE, "version_table_schema": SCHEMA}
    ).get_current_revision()
    dimension = None
    if conn.execute(text(f"SELECT to_regclass('{SCHEMA}.mcp_memory_meta')")).scalar() is not None:
        value = conn.execute(text("SELECT value FROM mcp_memory_meta WHERE key = 'embedding_dimension'")).scalar()
        dimension = int(value) if value is not None else None
    return SchemaState(revision, dimension)


def run_migration(conn: Connection, direction: str, revision: str, embedding_dimension: int) -> None:
    """Upgrade or downgrade to ``revision`` on ``conn`` (sync; run through ``run_sync``), in its transaction."""
    from alembic import command

    config = alembic_config(embedding_dimension)
    config.attributes["connection"] = conn
    if direction == "upgrade":
        command.upgrade(config, revision)
    elif direction == "downgrade":
        command.downgrade(config, revision)
    else:
        raise ValueError(f"unknown direction {direction!r}")


def newer_schema(revision: str, where: str) -> str:
    """What the server and ``migrate`` say of a database at a revision this release does not ship."""
    return (
        f"the Postgres schema of {where} is at revision {revision}, which this mcp-memory does not know (a newer "
        "release migrated it); upgrade mcp-memory"
    )


def location(url: URL | str) -> str:
    """host:port/database of a database URL, for messages (no credentials)."""
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "localhost"
    return f"{host}:{parsed.port or 5432}/{parsed.database}"


def schema_problem(state: SchemaState, embedding_dimension: int, where: str) -> str | None:
    """Why the server cannot start on this schema (a message naming the fix), or None if it can."""
    head = head_revision()
    if state.revision is None:
        return (
            f"the Postgres database {where} has no mcp-memory schema yet; run `{MIGRATE_COMMAND}` "
            "(with the same MCP_MEMORY_DATABASE_URL and MCP_MEMORY_EMBEDDING_DIMENSION) to create it"
        )
    if state.revision != head:
        if state.revision in known_revisions():
            return (
                f"the Postgres schema of {where} is at revision {state.revision}, this mcp-memory needs {head}; "
                f"run `{MIGRATE_COMMAND}` to upgrade it"
            )
        return newer_schema(state.revision, where)
    if state.embedding_dimension is not None and state.embedding_dimension != embedding_dimension:
        return (
            f"the Postgres database {where} stores {state.embedding_dimension}-dimensional embeddings but "
            f"embedding_dimension is {embedding_dimension}; set MCP_MEMORY_EMBEDDING_DIMENSION="
            f"{state.embedding_dimension} (and an embedding model of that size), or, to change the width, use a "
            f"new database migrated with MCP_MEMORY_EMBEDDING_DIMENSION={embedding_dimension} (its vector column "
            f"holds {state.embedding_dimension} dimensions only, so `mcp-memory reembed --all` cannot change it "
            "in place)"
        )
    return None


async def encoding_problem(conn: AsyncConnection, where: str) -> str | None:
    """Why the database cannot hold our text (a message naming the fix), or None if its encoding is UTF8.

    Keys, values and episodes are Unicode, and prefixes and lengths are counted in characters: a SQL_ASCII
    database (a bare ``initdb`` under the C locale) counts bytes, and a single-byte one (LATIN1) cannot store most
    characters, so either would answer some calls wrongly or with ``internal``."""
    encoding = (await conn.execute(text("SHOW server_encoding"))).scalar()
    if encoding == "UTF8":
        return None
    return (
        f"the Postgres database {where} has server_encoding {encoding}, mcp-memory needs UTF8; create a database "
        "with ENCODING 'UTF8' (CREATE DATABASE <name> ENCODING 'UTF8' TEMPLATE template0), point "
        f"MCP_MEMORY_DATABASE_URL at it and run `{MIGRATE_COMMAND}`"
    )


MIGRATION_LOCK = 0x6D63706D656D  # "mcpmem": the advisory lock key that migrations of one database queue on


async def migrate(
    url: str, *, revision: str = "head", embedding_dimension: int = 256, downgrade: bool = False
) -> tuple[SchemaState, SchemaState]:
    """Upgrade (or downgrade) the database at ``url`` to ``revision`` in one transaction (Postgres DDL is
    transactional: a failing migration leaves the schema as it was). Returns the state before and after.

    A database whose encoding is not UTF8 (:func:`encoding_problem`) is refused (``ValueError``) before anything
    else is looked at, and so is an upgrade of one whose recorded embedding dimension differs from
    ``embedding_dimension``: the vectors stored there would not fit the new setting."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args())
    try:
        async with reachable(url), engine.begin() as conn:
            # First: on a Postgres without pgvector the migration would fail on its extension and say only that.
            encoding = await encoding_problem(conn, location(url))
            if encoding is not None:
                raise ValueError(encoding)
            # One migration of a database at a time (replicas that migrate as they start): a second waits here,
            # then reads the state the first left, instead of racing it on the same DDL and failing.
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            await faults.reached("migrate.locked")
            before = await conn.run_sync(read_state)
            if before.revision is not None and before.revision not in known_revisions():
                # Alembic would only say it "can't locate revision": say who wrote it, as a start does.
                raise ValueError(newer_schema(before.revision, location(url)))
            if (
                not downgrade
                and before.embedding_dimension is not None
                and before.embedding_dimension != embedding_dimension
            ):
                raise ValueError(
                    f"the database stores {before.embedding_dimension}-dimensional embeddings but "
                    f"embedding_dimension is {embedding_dimension}; set MCP_MEMORY_EMBEDDING_DIMENSION="
                    f"{before.embedding_dimension} or use another database"
                )
            direction = "downgrade" if downgrade else "upgrade"
            await conn.run_sync(run_migration, direction, revision, embedding_dimension)
            after = await conn.run_sync(read_state)
    finally:
        await engine.dispose()
    return before, after


class MigrationFailed(Exception):
    """Postgres could not be reached or refused the migration; the message says why (no traceback)."""


async def schema_state(url: str) -> SchemaState:
    """The database's schema state, changing nothing; ``ValueError`` for a database that is not UTF8, as
    :func:`migrate`."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args())
    try:
        async with reachable(url), engine.connect() as conn:
            encoding = await encoding_problem(conn, location(url))
            if encoding is not None:
                raise ValueError(encoding)
            return await conn.run_sync(read_state)
    finally:
        await engine.dispose()


@asynccontextmanager
async def autocommit_connection(url: URL | str) -> AsyncIterator[AsyncConnection]:
    """A connection of its own, outside any transaction (``CONCURRENTLY`` refuses one; each statement of a batched
    fill commits on its own) and without the store's per-command timeout (an index build outlasts it)."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args())
    try:
        async with engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")
    finally:
        await engine.dispose()


@asynccontextmanager
async def reachable(url: str) -> AsyncIterator[None]:
    """Driver and network failures as :class:`MigrationFailed` with a one-line reason."""
    from sqlalchemy.exc import DBAPIError

    from mcp_memory.config import mask_url

    try:
        yield
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise MigrationFailed(f"Postgres at {mask_url(url)} answered with an error: {reason}") from exc
    except (OSError, TimeoutError) as exc:
        raise MigrationFailed(f"Postgres at {mask_url(url)} is not reachable: {exc or type(exc).__name__}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("asyncpg"):
            raise MigrationFailed(f"Postgres at {mask_url(url)} refused the connection: {exc}") from exc
        raise


def describe(state: SchemaState) -> dict[str, Any]:
    """The schema state for ``doctor`` and ``migrate``."""
    return {"revision": state.revision, "head": head_revision(), "embedding_dimension": state.embedding_dimension}


__all__ = [
    "MIGRATE_COMMAND",
    "SCHEMA",
    "SEARCH_PATH",
    "VERSION_TABLE",
    "MigrationFailed",
    "SchemaState",
    "alembic_config",
    "autocommit_connection",
    "connect_args",
    "describe",
    "encoding_problem",
    "head_revision",
    "location",
    "migrate",
    "newer_schema",
    "reachable",
    "read_state",
    "run_migration",
    "schema_problem",
    "schema_state",
]
