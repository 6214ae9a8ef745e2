"""A Postgres database whose server encoding is not UTF8 is refused by ``migrate`` (``--status`` included), by a
start and so by ``doctor``, each with one line naming the fix (a database created with ENCODING 'UTF8'); and the
prefix match of ``memory_list`` counts no characters, so it would not depend on the database's count anyway.

Before, nothing looked at the encoding: on a SQL_ASCII database (a bare ``initdb`` under the C locale) the prefix
match cut keys at Python's count of characters while Postgres counted bytes, so ``memory_list(prefix="é")`` answered
``[]`` beside a key ``é1``; on LATIN1 a key holding an emoji was ``internal``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

import anyio
import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from mcp_memory.models import Item, Scope
from mcp_memory.stores.postgres.schema import connect_args, run_migration
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.records import EventRecord, Limits
from tests import pg_servers
from tests.pg_servers import create_database, database_url
from tests.test_a_store_that_cannot_start_is_one_line_and_an_exit_code import LOG_LINE, TRANSPORTS, serve

pytestmark = pytest.mark.anyio

ENCODINGS = ["SQL_ASCII", "LATIN1"]


def refusal(encoding: str) -> str:
    return (
        f"has server_encoding {encoding}, mcp-memory needs UTF8; create a database with ENCODING 'UTF8' "
        "(CREATE DATABASE <name> ENCODING 'UTF8' TEMPLATE template0), point MCP_MEMORY_DATABASE_URL at it and run "
        "`mcp-memory migrate`"
    )


async def migrated_anyway(encoding: str) -> str:
    """A database in ``encoding`` at the head revision, migrated past ``migrate``'s refusal (as one an earlier
    release migrated): its URL."""
    url = database_url(await create_database(encoding=encoding))
    engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args())
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run_migration, "upgrade", "head", 256)
    finally:
        await engine.dispose()
    return url


async def has_our_schema(name: str) -> bool:
    conn = await asyncpg.connect(**pg_servers._connect_args(pg_servers.base_url().set(database=name)))
    try:
        return bool(await conn.fetchval("SELECT to_regnamespace('mcp_memory') IS NOT NULL"))
    finally:
        await conn.close()


async def cli(tmp_path: Path, url: str, *args: str) -> tuple[int, str, list[str]]:
    """Run ``mcp-memory ARGS`` on ``url``: its exit code, stdout and the lines of stderr that are not log lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env.update(MCP_MEMORY_CONFIG="", MCP_MEMORY_DATABASE_URL=url, XDG_DATA_HOME=str(tmp_path / "data"))
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-m", "mcp_memory.cli", *args], env=env, check=False)
    errors = [line for line in done.stderr.decode().splitlines() if not LOG_LINE.match(line)]
    return done.returncode, done.stdout.decode(), errors


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_migrate_refuses_it_and_changes_nothing(tmp_path: Path, encoding: str) -> None:
    name = await create_database(encoding=encoding)
    for args in (["migrate"], ["migrate", "--status"]):
        code, _, errors = await cli(tmp_path, database_url(name), *args)
        assert code == 2, errors
        assert len(errors) == 1, errors
        assert errors[0].startswith("mcp-memory: configuration error: the Postgres database "), errors
        assert errors[0].endswith(refusal(encoding)), errors
    assert not await has_our_schema(name)


@pytest.mark.parametrize("args", TRANSPORTS, ids=["stdio", "http"])
async def test_a_server_refuses_to_start_on_it(tmp_path: Path, args: list[str]) -> None:
    code, errors = await serve(tmp_path, await migrated_anyway("SQL_ASCII"), args)
    assert code == 2, errors
    assert len(errors) == 1, errors
    assert errors[0].startswith("mcp-memory: configuration error: the Postgres database "), errors
    assert errors[0].endswith(refusal("SQL_ASCII")), errors


async def test_a_server_names_the_encoding_before_the_missing_schema(tmp_path: Path) -> None:
    code, errors = await serve(tmp_path, database_url(await create_database(encoding="LATIN1")), ["serve"])
    assert code == 2 and len(errors) == 1, errors
    assert errors[0].endswith(refusal("LATIN1")), errors


async def test_doctor_says_why(tmp_path: Path) -> None:
    code, out, _ = await cli(tmp_path, await migrated_anyway("SQL_ASCII"), "doctor")
    assert code == 1, out
    report = json.loads(out)
    assert report["ok"] is False and report["error"].endswith(refusal("SQL_ASCII")), report.get("error")


async def test_a_prefix_is_matched_by_its_characters_whatever_the_database_counts() -> None:
    # A store on a database an earlier release ran on, opened past the start's check (as that release did).
    store = PostgresStore(await migrated_anyway("SQL_ASCII"))
    store._engine = store._create_engine()
    try:
        scope, now = Scope(uuid.uuid4(), uuid.uuid4(), "s1"), time.time()
        await store.create_session(scope, None, {}, now, EventRecord("spawn", now, 0.0, "ok", {}))
        for key in ["é1", "é2", "\U0001f600x", "abc"]:
            await store.set(scope, key, Item('"v"'), now, Limits(max_keys=100))
        assert await store.list_keys(scope, "é", now) == ["é1", "é2"]
        assert await store.list_keys(scope, "\U0001f600", now) == ["\U0001f600x"]
        assert await store.list_keys(scope, "", now) == ["abc", "é1", "é2", "\U0001f600x"]
    finally:
        await store.close()
