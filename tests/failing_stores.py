"""Real failures of the stores, for the tests of the sweeps' passes: sessions whose deletion fails (a foreign key of
the test's own that no deletion cascades to), sessions whose update fails (a trigger of the test's own), the
``sessions`` table gone from under the store (renamed away by another client, then back), and a Redis of the test's
own that it stops and starts again. Each on the test's own connection or process: the stores are the real ones."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.models import Scope
from tests.redis_servers import RedisServer, unique_prefix
from tests.store_settings import settings_for


class _OnTheDatabase:
    """A connection of the test's own to the durable store's database, and the names of its tables there."""

    def __init__(self, database_url: str) -> None:
        self._engine = create_async_engine(database_url)
        self._postgres = database_url.startswith("postgresql")
        self._schema = "mcp_memory." if self._postgres else ""
        self._sessions = f"{self._schema}sessions"

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._engine.dispose()

    async def _run(self, *statements: str, params: dict[str, str] | None = None) -> None:
        async with self._engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement), params or {})


class Pins(_OnTheDatabase):
    """A table whose rows reference sessions with no cascade: the durable store's deletion of a pinned session fails
    with a real foreign-key error, for that session alone, until :meth:`unpin_all`."""

    async def __aenter__(self) -> Pins:
        self._pins = f"{self._schema}sweep_pins"
        await self._run(f"CREATE TABLE {self._pins} (session_pk BIGINT NOT NULL REFERENCES {self._sessions} (id))")
        return self

    async def pin(self, scopes: Sequence[Scope]) -> None:
        for scope in scopes:
            await self._run(
                f"INSERT INTO {self._pins} SELECT id FROM {self._sessions} WHERE session_id = :s",
                params={"s": scope.session_id},
            )

    async def unpin_all(self) -> None:
        await self._run(f"DELETE FROM {self._pins}")


class StuckRows(_OnTheDatabase):
    """A trigger that fails every update of the sessions :meth:`stick` names (a real database error, raised by the
    database for those rows alone), until :meth:`unstick_all`."""

    async def __aenter__(self) -> StuckRows:
        self._stuck = f"{self._schema}sweep_stuck"
        await self._run(f"CREATE TABLE {self._stuck} (session_pk BIGINT NOT NULL)")
        if self._postgres:
            await self._run(
                "CREATE FUNCTION mcp_memory.sweep_stuck() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF EXISTS (SELECT 1 FROM mcp_memory.sweep_stuck WHERE session_pk = OLD.id) THEN "
                "RAISE EXCEPTION 'session row % is stuck', OLD.id; END IF; RETURN NEW; END $$",
                "CREATE TRIGGER sweep_stuck BEFORE UPDATE ON mcp_memory.sessions "
                "FOR EACH ROW EXECUTE FUNCTION mcp_memory.sweep_stuck()",
            )
        else:
            await self._run(
                "CREATE TRIGGER sweep_stuck BEFORE UPDATE ON sessions "
                "WHEN OLD.id IN (SELECT session_pk FROM sweep_stuck) "
                "BEGIN SELECT RAISE(ABORT, 'the session row is stuck'); END"
            )
        return self

    async def stick(self, scopes: Sequence[Scope]) -> None:
        for scope in scopes:
            await self._run(
                f"INSERT INTO {self._stuck} SELECT id FROM {self._sessions} WHERE session_id = :s",
                params={"s": scope.session_id},
            )

    async def unstick_all(self) -> None:
        await self._run(f"DELETE FROM {self._stuck}")


class SessionsTable(_OnTheDatabase):
    """The ``sessions`` table, which :meth:`take_away` renames (every statement of the store on it then fails: a
    listing, a read, a write) and :meth:`put_back` names again."""

    async def __aenter__(self) -> SessionsTable:
        return self

    async def take_away(self) -> None:
        await self._run(f"ALTER TABLE {self._sessions} RENAME TO sessions_away")

    async def put_back(self) -> None:
        await self._run(f"ALTER TABLE {self._schema}sessions_away RENAME TO sessions")

    @asynccontextmanager
    async def away_from(self, point: str) -> AsyncIterator[None]:
        """Inside: the table taken away as the store first reaches the fault point ``point``; put back on leaving."""
        taken = False

        async def take_away_once(reached: str) -> None:
            nonlocal taken
            if reached == point and not taken:
                taken = True
                await self.take_away()

        try:
            with faults.on_fault(take_away_once):
                yield
        finally:
            if taken:
                await self.put_back()


@asynccontextmanager
async def with_private_redis(records: str, tmp_path: Path) -> AsyncIterator[tuple[Settings, RedisServer]]:
    """Settings on ``records`` ("sqlite" or "postgres") with working memory on a ``redis-server`` of the test's own
    (persistent: it keeps its keys across a stop and a start on the same port), which fails a call at once while
    stopped (one retry, half a second's timeout)."""
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        async with settings_for(
            records,
            tmp_path,
            redis_url=server.url,
            redis_key_prefix=unique_prefix(),
            redis_timeout_seconds=0.5,
            redis_retries=1,
        ) as settings:
            yield settings, server
    finally:
        server.stop()


def warnings_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    """The warnings (and worse) ``logger`` logged so far, then forgets every record."""
    found = [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING]
    caplog.clear()
    return found


__all__ = ["Pins", "SessionsTable", "StuckRows", "warnings_of", "with_private_redis"]
