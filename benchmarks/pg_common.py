"""A Postgres with pgvector for the benchmarks: the one ``--url`` names, or a pgserver started in a temp dir.

Each run works in a database of its own (created here, dropped at the end unless ``--keep``).
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import URL, make_url

from mcp_memory.stores.postgres.schema import SEARCH_PATH, migrate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="admin URL of a Postgres with pgvector (default: start pgserver, Postgres 16 + pgvector, in a temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument(
        "--shared-buffers",
        default="1GB",
        help="pgserver only: shared_buffers (its default, 128MB, is smaller than a 100k-vector HNSW index)",
    )


def server_url(
    given: str | None, shared_buffers: str | None = None, maintenance_work_mem: str | None = None
) -> tuple[URL, Any]:
    """The admin URL (asyncpg driver) and the pgserver handle (None with ``--url``)."""
    if given:
        return make_url(given).set(drivername="postgresql+asyncpg"), None
    import pgserver
    from pgserver._commands import pg_ctl

    server = pgserver.get_server(tempfile.mkdtemp(prefix="mcpmem-bench-"), cleanup_mode="delete")
    if maintenance_work_mem:
        # A server setting, not a session's: the store's background index builds run with it.
        server.psql(f"ALTER SYSTEM SET maintenance_work_mem = '{maintenance_work_mem}'")
    if shared_buffers or maintenance_work_mem:
        # The buffer cache is sized at start-up: set it, then restart (pg_ctl reuses the server's options).
        if shared_buffers:
            server.psql(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
        pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user)
    return make_url(server.get_uri()).set(drivername="postgresql+asyncpg"), server


def connect_args(url: URL) -> dict[str, Any]:
    """asyncpg.connect() keywords for a SQLAlchemy URL (including pgserver's unix-socket ``?host=``)."""
    host = url.query.get("host") or url.host
    args: dict[str, Any] = {
        "user": url.username,
        "password": url.password,
        "database": url.database or "postgres",
        "host": host if isinstance(host, str) else host[0],
    }
    if url.port:
        args["port"] = url.port
    args["server_settings"] = {"search_path": SEARCH_PATH}
    return args


def as_string(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def bench_database(admin: URL, *, embedding_dimension: int, keep: bool = False) -> AsyncIterator[URL]:
    """A fresh database migrated to head; its URL."""
    name = f"mcpmem_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(**connect_args(admin))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = admin.set(database=name)
    try:
        await migrate(as_string(url), embedding_dimension=embedding_dimension)
        yield url
    finally:
        if not keep:
            conn = await asyncpg.connect(**connect_args(admin))
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
