"""A real Postgres with pgvector for the tests: one server per test process, one fresh database per test.

The server is the PyPI package ``pgserver`` (Postgres 16 + pgvector in a temporary data directory, stopped and
removed at the end of the test session), started lazily on first use, or the one ``MCP_MEMORY_TEST_POSTGRES_URL``
names (a superuser URL of a server with pgvector). A test's databases are dropped once it ends (one still in use
then, at the end of the run). A migrated template database is made once per embedding dimension; each test gets
``CREATE DATABASE ... TEMPLATE`` of it, which takes milliseconds.

Under pytest-xdist each worker process starts its own pgserver (or, on ``MCP_MEMORY_TEST_POSTGRES_URL``, makes
templates named after its worker id), so workers share no database. Only strings are kept between tests (each test
runs in its own event loop), never a connection.
"""

from __future__ import annotations

import atexit
import os
import queue
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from mcp_memory.stores.postgres.store import PostgresStore

ENV_URL = "MCP_MEMORY_TEST_POSTGRES_URL"
PREFIX = "mcpmem_test_"

_lock = threading.Lock()
_server: Any = None
_base: URL | None = None
_templates: set[int] = set()
_made: list[str] = []


def base_url() -> URL:
    """The admin URL (``postgresql+asyncpg://``) of the test server, starting pgserver on first use."""
    global _server, _base
    with _lock:
        if _base is None:
            external = os.environ.get(ENV_URL)
            if external:
                url = make_url(external)
            else:
                import pgserver

                datadir = tempfile.mkdtemp(prefix="mcpmem-pg-")
                _server = pgserver.get_server(datadir, cleanup_mode="delete")
                url = make_url(_server.get_uri())
            _base = url.set(drivername="postgresql+asyncpg")
            if external:
                atexit.register(_drop_made)
        return _base


def database_url(name: str) -> str:
    """The URL of database ``name`` on the test server, as a string with its password (for settings/env)."""
    return base_url().set(database=name).render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    import asyncpg

    url = base_url()
    conn = await asyncpg.connect(**_connect_args(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _connect_args(url: URL) -> dict[str, Any]:
    args: dict[str, Any] = {"user": url.username, "password": url.password, "database": url.database or "postgres"}
    host = url.query.get("host") or url.host
    args["host"] = host if isinstance(host, str) else host[0]
    if url.port:
        args["port"] = url.port
    return args


async def create_database(*, template: str | None = None, encoding: str | None = None) -> str:
    """A new empty (or templated) database; its name. ``encoding``: an empty one in that server encoding (and the C
    locale, which every encoding accepts)."""
    name = f"{PREFIX}{uuid.uuid4().hex[:16]}"
    if encoding is not None:
        # template0: the only template whose encoding a new database may differ from.
        await _admin(f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    else:
        await _admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    _made.append(name)
    return name


async def migrated_database(embedding_dimension: int = 256) -> str:
    """A fresh database at the head revision with ``embedding_dimension``-wide vectors; its name."""
    # Per pytest-xdist worker: workers sharing one MCP_MEMORY_TEST_POSTGRES_URL each make (and drop) their own.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    template = f"{PREFIX}template_{worker}_{embedding_dimension}"
    if embedding_dimension not in _templates:
        from mcp_memory.stores.postgres.schema import migrate

        await _admin(f'DROP DATABASE IF EXISTS "{template}"')
        await _admin(f'CREATE DATABASE "{template}"')
        _made.append(template)
        await migrate(database_url(template), embedding_dimension=embedding_dimension)
        _templates.add(embedding_dimension)
    return await create_database(template=template)


async def fresh_postgres_store(embedding_dimension: int = 256) -> PostgresStore:
    """A started :class:`PostgresStore` on a database of its own."""
    name = await migrated_database(embedding_dimension)
    store = PostgresStore(database_url(name), embedding_dimension=embedding_dimension, pool_size=4, max_overflow=8)
    await store.start()
    return store


async def first_column(url: str, sql: str, params: dict[str, Any] | None = None) -> set[str]:
    """The values of the first column of ``sql`` on the database at ``url`` (its catalog, as a test inspects it),
    through an engine of the store's own settings (its search path)."""
    engine = PostgresStore(url)._create_engine()
    try:
        async with engine.connect() as conn:
            return {str(r[0]) for r in await conn.execute(text(sql), params or {})}
    finally:
        await engine.dispose()


@asynccontextmanager
async def open_postgres_store(exact_scan_max: int | None = None) -> AsyncIterator[PostgresStore]:
    """:func:`fresh_postgres_store`, closed on the way out; ``exact_scan_max`` lowered for a test that needs a
    project's vectors to take the index path at a few hundred episodes."""
    store = await fresh_postgres_store()
    if exact_scan_max is not None:
        store.exact_scan_max = exact_scan_max
    try:
        yield store
    finally:
        await store.close()


COUNTS_DRIFT = (
    "SELECT s.id, s.unkept_checkpoints, s.event_count, c.n AS unkept_rows, e.n AS event_rows FROM sessions s "
    "CROSS JOIN LATERAL (SELECT count(*) AS n FROM checkpoints WHERE session_pk = s.id AND NOT keep) c "
    "CROSS JOIN LATERAL (SELECT count(*) AS n FROM events WHERE session_pk = s.id) e "
    "WHERE s.unkept_checkpoints <> c.n OR s.event_count <> e.n"
)
"""The sessions whose retention counts (migration 0011) differ from a count of their rows."""
HAS_COUNTS = (
    "SELECT 1 FROM information_schema.columns WHERE table_schema = 'mcp_memory' AND table_name = 'sessions' "
    "AND column_name = 'event_count'"
)


def databases_made() -> int:
    """How many databases this process has made so far (a mark for :func:`count_drift_since`)."""
    return len(_made)


async def count_drift(name: str) -> list[tuple[int, int, int, int, int]]:
    """The sessions of database ``name`` whose stored retention counts are not the counts of their rows, as
    ``(pk, unkept_checkpoints, event_count, unkept rows, event rows)``; none on a schema without the counts."""
    import asyncpg

    conn = await asyncpg.connect(**_connect_args(base_url().set(database=name)), server_settings={
        "search_path": "mcp_memory, public"})  # fmt: skip
    try:
        if await conn.fetchval(HAS_COUNTS) is None:
            return []
        return [tuple(r) for r in await conn.fetch(COUNTS_DRIFT)]
    finally:
        await conn.close()


def count_drift_since(mark: int) -> dict[str, list[tuple[int, int, int, int, int]]]:
    """:func:`count_drift` of every test database made since ``mark`` (templates aside), those with any; run on a
    thread of its own, outside any event loop of the test's."""
    import anyio

    names = [name for name in _made[mark:] if "_template_" not in name]
    if not names:
        return {}

    async def check() -> dict[str, list[tuple[int, int, int, int, int]]]:
        found = {name: await count_drift(name) for name in names}
        return {name: drift for name, drift in found.items() if drift}

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, check).result()


def drop_made_since(mark: int) -> None:
    """Have the test databases made since ``mark`` (templates aside) dropped, by a thread of this module's in the
    background (a drop takes ~150 ms, which the tests need not wait for). Dropped after each test rather than at
    exit: a run of the whole suite makes thousands of them, gigabytes a worker, which filled a CI machine's disk. One
    still in use (a connection a fixture of a wider scope keeps) is left for the end of the run: no ``FORCE``."""
    names = [name for name in _made[mark:] if "_template_" not in name]
    if not names:
        return
    global _dropper
    with _lock:
        if _dropper is None or not _dropper.is_alive():
            _dropper = threading.Thread(target=_drop_queued, name="test-database-dropper", daemon=True)
            _dropper.start()
    admin = base_url()
    for name in reversed(names):
        _to_drop.put((admin, name))


_to_drop: queue.SimpleQueue[tuple[URL, str]] = queue.SimpleQueue()
_dropper: threading.Thread | None = None


def _drop_queued() -> None:
    import anyio
    import asyncpg

    async def drop(admin: URL, name: str) -> None:
        # On the server the name was made on (never base_url(), which would start a new one after stop_server).
        conn = await asyncpg.connect(**_connect_args(admin))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            await conn.close()

    while True:
        admin, name = _to_drop.get()
        try:
            anyio.run(drop, admin, name)
        except Exception:  # in use, or the server stopped: left for _drop_made or the server's removal
            pass


def stop_server() -> None:
    """Stop this process's pgserver and remove its data directory, if it started one. Called at the end of the test
    session (conftest's ``pytest_sessionfinish``): pgserver's own clean-up runs at exit, which a pytest-xdist worker
    may not reach (execnet ends a worker that takes long to finish with ``os._exit``), and every run then left a
    running server and its files behind."""
    global _server, _base
    with _lock:
        if _server is not None:
            _server.cleanup()
            _server, _base = None, None
            _templates.clear()


def _drop_made() -> None:
    import anyio

    async def drop() -> None:
        for name in reversed(_made):
            try:
                await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:
                pass

    anyio.run(drop)
