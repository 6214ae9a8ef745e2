"""The Postgres connection of one store: its engine and pool, the two ways to run a step (one transaction, or
autocommit statements), the call's deadline over each step, and driver failures as contract errors.

Failures: a connection that cannot be made or dies, a timeout, or a server shutting down is ``Unavailable``
("retry later"); a serialization failure or deadlock is ``Conflict``; a value over one of Postgres' own size
limits (SQLSTATE class 54: a checkpoint's state over JSONB's 256 MiB) is ``TooLarge``; anything else is
``Internal`` with the details in the log only.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]  # no stubs; its errors carry a sqlstate
import orjson
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from mcp_memory import deadlines
from mcp_memory.config import mask_url
from mcp_memory.errors import Conflict, Internal, MemoryServiceError, TooLarge, Unavailable
from mcp_memory.stores.postgres.schema import (
    connect_args,
    describe,
    encoding_problem,
    location,
    read_state,
    schema_problem,
)
from mcp_memory.stores.postgres.statements import PING
from mcp_memory.stores.sql.clauses import text

logger = logging.getLogger(__name__)

TOO_LARGE = "the data is larger than Postgres can store in one value"
"""The caller's message (before "; nothing was written") for a write over one of Postgres' size limits."""
CHECKPOINT_TOO_LARGE = (
    "the checkpoint's state is larger than Postgres can store in one JSONB value (256 MiB of keys and values "
    "together); delete or shrink keys of the session, then pause again"
)
UNAVAILABLE_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "57014", "25006", "3D000", "28")
"""Connection exceptions, insufficient resources, shutdowns, statement timeout, read-only (a standby), and (while
connecting) an unknown database or a refused login, which ``start`` turns into a ``ConfigurationError``."""


def _cut_off(driver: Any, cut_off: list[bool]) -> None:
    """The call's deadline has passed while a step held ``driver`` (an asyncpg connection): close its socket."""
    logger.warning("Postgres step cut off by the call's deadline; its connection is closed and discarded")
    cut_off.append(True)
    driver.terminate()


def _step_limit() -> float:
    """What is left of the call's deadline for one Postgres step (infinite outside a tool call); ``Unavailable`` if
    nothing is."""
    limit = deadlines.step_limit(math.inf)
    if limit <= 0:
        raise Unavailable(deadlines.deadline_message("Postgres"))
    return limit


def _arm_cut_off(driver: Any, limit: float, cut_off: list[bool]) -> asyncio.TimerHandle | None:
    """Close ``driver``'s socket when the call's deadline passes (:func:`_cut_off`), if a deadline bounds the step."""
    left = deadlines.remaining()
    if math.isinf(limit) or left is None:
        return None
    return asyncio.get_running_loop().call_later(max(left, 0.0), _cut_off, driver, cut_off)


HELD_DRIVERS = 2
"""Pooled connections :meth:`PostgresConnection._driver` keeps checked out between its uses, newest first: taking one
of them costs nothing, where a checkout from SQLAlchemy's pool and its check-in cost ~0.05 ms of Python (a greenlet
switch, the pool's bookkeeping and reset), a tenth of a 10-key pause. The pool counts them as checked out, so its
size and overflow still bound every connection open; and they never cost another caller a connection: one is held
only while the pool could still hand out another at once (fewer than its size and overflow out) and holds fewer
than its size idle, and a step of :meth:`PostgresConnection._connection` that finds the pool with none idle gives
the held ones back to it first."""


def _pool_is_full(engine: AsyncEngine) -> bool:
    """Whether a connection given back now would be beyond the pool's size (one of its overflow), so closed.
    Read and acted on with no await between, so no other task can change it in between."""
    pool = engine.sync_engine.pool
    return isinstance(pool, QueuePool) and pool.checkedin() >= pool.size()


async def _close_quietly(driver: asyncpg.Connection) -> None:
    """Close ``driver`` with the protocol's goodbye, or drop its socket if that fails or takes over a second."""
    try:
        await driver.close(timeout=1.0)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):  # TimeoutError is an OSError
        driver.terminate()


async def _give_back(engine: AsyncEngine, pooled: PoolProxiedConnection) -> None:
    """Return a reusable connection with no transaction open to the pool, or close it if it is one beyond the
    pool's size."""
    if not _pool_is_full(engine):
        pooled.close()  # its reset, a rollback, is nothing here: no transaction is open
        return
    # An overflow connection: the pool would close it in its synchronous code, which cannot await asyncpg's close
    # outside a greenlet (it logs and leaves it open).
    with anyio.CancelScope(shield=True):
        await _close_quietly(pooled.driver_connection)
    pooled.invalidate()  # outside a greenlet: closed at once, no round trip


class PostgresConnection:
    """The engine and pool of one Postgres store, its steps (:meth:`_write`, :meth:`_read`) bounded by the call's
    deadline, and its error mapping (:meth:`_guard`); see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        embedding_dimension: int = 256,
        pool_size: int = 10,
        max_overflow: int = 10,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._url = make_url(url)
        self.embedding_dimension = embedding_dimension
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._timeout = timeout_seconds
        self._engine: AsyncEngine | None = None
        self._held_drivers: list[PoolProxiedConnection] = []

    @property
    def where(self) -> str:
        """host:port/database, for messages (no credentials)."""
        return location(self._url)

    def _create_engine(self) -> AsyncEngine:
        return create_async_engine(
            self._url,
            pool_size=self._pool_size,
            max_overflow=self._max_overflow,
            pool_timeout=self._timeout,
            pool_pre_ping=False,
            json_deserializer=orjson.loads,
            connect_args=connect_args(self._timeout),
        )

    async def start(self) -> None:
        """Connect and check the database and its schema: ``ConfigurationError`` if the database is not UTF8, or
        (naming ``mcp-memory migrate``) if the schema is missing, behind, or built for another embedding dimension;
        ``Unavailable`` if Postgres does not answer."""
        from mcp_memory.errors import ConfigurationError

        if self._engine is not None:
            return
        engine = self._create_engine()
        try:
            async with self._guard(), engine.connect() as conn:
                problem = await encoding_problem(conn, self.where)
                state = await conn.run_sync(read_state)
                await conn.rollback()
        except Unavailable as exc:
            await engine.dispose()
            # Not worth retrying: the settings name a database or a login that does not exist.
            cause = exc.__cause__
            sqlstate = getattr(getattr(cause, "orig", cause), "sqlstate", None)
            if sqlstate == "3D000":
                raise ConfigurationError(
                    f"the Postgres database {self.where} does not exist; create it (CREATE DATABASE) and run "
                    "`mcp-memory migrate`"
                ) from exc
            if sqlstate in ("28000", "28P01"):
                raise ConfigurationError(
                    f"Postgres at {self.where} refused the login of MCP_MEMORY_DATABASE_URL (SQLSTATE {sqlstate})"
                ) from exc
            raise
        except BaseException:
            await engine.dispose()
            raise
        problem = problem or schema_problem(state, self.embedding_dimension, self.where)
        if problem is not None:
            await engine.dispose()
            raise ConfigurationError(problem)
        self._engine = engine

    async def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await self._give_back_held(engine)  # to the pool, whose dispose() closes them
            await engine.dispose()

    async def ping(self) -> dict[str, Any]:
        """Check the store answers; returns facts for ``mcp-memory doctor``."""
        async with self._read() as conn:
            row = (await conn.execute(text(PING))).one()
            state = await conn.run_sync(read_state)
        return {
            "backend": "postgresql",
            "url": mask_url(self._url.render_as_string(hide_password=False)),
            "server_version": row.server,
            "pgvector_version": row.pgvector,
            "schema": describe(state),
            "sessions": row.sessions,
            "episodes": row.episodes,
            "episodes_missing_embedding": row.missing,
            "pool_size": self._pool_size,
            "max_overflow": self._max_overflow,
        }

    async def probe(self) -> dict[str, Any]:
        """``SELECT 1`` on a pooled connection, bounded (as every step) by the deadline it runs under: the server
        and the pool answer, at no cost that grows with the data."""
        async with self._read() as conn:
            await conn.execute(text("SELECT 1"))
        return {}

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise Unavailable("the Postgres store is not started")
        return self._engine

    def _unavailable(self, reason: str) -> Unavailable:
        return Unavailable(f"Postgres is not reachable at {self.where} ({reason}); retry later")

    @asynccontextmanager
    async def _guard(self, too_large: str = TOO_LARGE) -> AsyncIterator[None]:
        """Driver failures as contract errors: never a traceback or a driver message to the caller. ``too_large``:
        what to tell the caller when a value exceeds one of Postgres' own size limits (SQLSTATE class 54)."""
        try:
            yield
        except MemoryServiceError:
            raise
        except DBAPIError as exc:
            sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
            cause = exc.orig.__cause__ if exc.orig is not None else None
            lost = not sqlstate and ("closed" in str(exc.orig) or isinstance(cause, OSError | TimeoutError))
            if exc.connection_invalidated or lost:
                logger.warning("Postgres unavailable: %s", exc)
                raise self._unavailable(type(exc.orig).__name__ if exc.orig else "connection lost") from exc
            raise self._by_sqlstate(sqlstate, exc, exc.orig, too_large) from exc
        except asyncpg.PostgresError as exc:
            # Raised by the asyncpg connection itself (the hot paths of stores/postgres/transitions.py).
            raise self._by_sqlstate(str(exc.sqlstate or ""), exc, exc, too_large) from exc
        except PoolTimeoutError as exc:
            raise Unavailable(
                f"all {self._pool_size + self._max_overflow} Postgres connections are busy; retry later"
            ) from exc
        except (OSError, TimeoutError) as exc:
            logger.warning("Postgres unavailable: %r", exc)
            raise self._unavailable(str(exc) or type(exc).__name__) from exc
        except SQLAlchemyError as exc:
            logger.exception("Postgres error")
            raise Internal("the store failed unexpectedly; see the server log") from exc
        except Exception as exc:
            # asyncpg raises its own errors (not DBAPI-wrapped) while connecting: a refused login, no database.
            if type(exc).__module__.startswith("asyncpg"):
                logger.warning("Postgres connection failed: %r", exc)
                raise self._unavailable(type(exc).__name__) from exc
            raise

    def _by_sqlstate(self, sqlstate: str, exc: Exception, orig: object, too_large: str) -> MemoryServiceError:
        """The contract error for a failure the server reported with ``sqlstate``."""
        if sqlstate.startswith(UNAVAILABLE_SQLSTATES):
            logger.warning("Postgres unavailable: %s", exc)
            return self._unavailable(type(orig).__name__)
        if sqlstate in ("40001", "40P01"):
            logger.info("Postgres serialization failure or deadlock: %s", exc)
            return Conflict("a concurrent call changed the same session at the same time; retry")
        if sqlstate == "23505":
            return Conflict("a concurrent call wrote the same record at the same time; retry")
        if sqlstate == "23503":
            # A row whose session a concurrent call removed (or the reverse): the statement wrote nothing.
            return Conflict("a concurrent call removed or changed the same session at the same time; retry")
        if sqlstate.startswith("54"):
            # program_limit_exceeded and kin: refused by the statement itself, which (like the transaction
            # around it) wrote nothing.
            logger.warning("Postgres refused a value over its limits: %s", orig)
            return TooLarge(f"{too_large}; nothing was written")
        logger.error("Postgres error", exc_info=exc)
        return Internal("the store failed unexpectedly; see the server log")

    @asynccontextmanager
    async def _driver(self, too_large: str = TOO_LARGE) -> AsyncIterator[asyncpg.Connection]:
        """The asyncpg connection of a pooled connection, for statements sent on it directly (the transitions' hot
        path): each statement is its own transaction. Bounded by the call's deadline and mapped as
        :meth:`_connection`, but checked out of the pool as a raw connection: no ``Connection`` object, isolation
        level set and reset, or greenlet switches, which cost more Python time than the rest of a small pause
        (0.09 ms against 0.02 ms a checkout). And once given back, up to :data:`HELD_DRIVERS` are held for the next
        use instead of going back to the pool, whose checkout and check-in cost ~0.05 ms more. A transaction left
        open (none of the callers begins one) is rolled back before the connection goes back."""
        engine = self._require_engine()
        limit = _step_limit()
        bounded = not math.isinf(limit)
        cut_off: list[bool] = []
        timer: asyncio.TimerHandle | None = None
        try:
            async with self._guard(too_large):
                pooled = self._take_held()
                if pooled is None:
                    if bounded:
                        with anyio.fail_after(limit):
                            pooled = await engine.raw_connection()
                    else:  # no cancel scope to enter and leave: outside a tool call nothing bounds the step
                        pooled = await engine.raw_connection()
                driver: asyncpg.Connection = pooled.driver_connection
                # Back to the pool after success or an error the server reported (the statement's transaction is
                # over); discarded after anything else (cancelled mid-statement, cut off, a lost socket), as its
                # protocol state is not known.
                reusable = False
                try:
                    timer = _arm_cut_off(driver, limit, cut_off)
                    yield driver
                    reusable = True
                except (asyncpg.PostgresError, MemoryServiceError):
                    reusable = True
                    raise
                finally:
                    if timer is not None:
                        timer.cancel()
                    try:
                        if reusable and not driver.is_closed() and driver.is_in_transaction():
                            with anyio.CancelScope(shield=True):
                                await driver.execute("ROLLBACK")
                    except BaseException:
                        reusable = False
                        raise
                    finally:
                        if not reusable or driver.is_closed():
                            pooled.invalidate()  # outside a greenlet: closed at once, no round trip
                        elif self._may_hold(engine):
                            self._held_drivers.append(pooled)  # no transaction is open: the next use takes it as it is
                        else:
                            await _give_back(engine, pooled)
        except Unavailable as exc:
            if cut_off or deadlines.spent():
                raise Unavailable(deadlines.deadline_message("Postgres")) from exc
            raise

    def _take_held(self) -> PoolProxiedConnection | None:
        """A held connection for :meth:`_driver`, newest first; None if none is. One whose socket has closed since
        (the server ended it: restarted, or the backend was terminated) is discarded, not handed out."""
        while self._held_drivers:
            pooled = self._held_drivers.pop()
            driver = pooled.driver_connection
            if driver is not None and not driver.is_closed():
                return pooled
            pooled.invalidate()  # outside a greenlet: closed at once, no round trip
        return None

    def _may_hold(self, engine: AsyncEngine) -> bool:
        """Whether a connection :meth:`_driver` gives back now may be held (:data:`HELD_DRIVERS`): fewer are held,
        the store is open on ``engine``, the pool holds fewer than its size idle, and it could hand out another
        connection at once (fewer than its size and overflow out, this one included), so no caller waits on it."""
        pool = engine.sync_engine.pool
        return (
            len(self._held_drivers) < HELD_DRIVERS
            and self._engine is engine
            and not _pool_is_full(engine)
            and isinstance(pool, QueuePool)
            and pool.checkedout() < self._pool_size + self._max_overflow
        )

    async def _release_held(self, engine: AsyncEngine) -> None:
        """Give the held connections back to the pool if it has none idle: a step of :meth:`_connection`, which
        cannot take a held one, then gets one of them rather than a new connection or a wait."""
        pool = engine.sync_engine.pool
        if self._held_drivers and isinstance(pool, QueuePool) and pool.checkedin() == 0:
            await self._give_back_held(engine)

    async def _give_back_held(self, engine: AsyncEngine) -> None:
        """Every held connection back to the pool (or closed, beyond its size), none held after."""
        held, self._held_drivers = self._held_drivers, []
        for pooled in held:
            await _give_back(engine, pooled)

    @asynccontextmanager
    async def _write(self, too_large: str = TOO_LARGE) -> AsyncIterator[AsyncConnection]:
        """One transaction (BEGIN ... COMMIT); rolled back on any exception."""
        async with self._connection(too_large, transaction=True) as conn:
            yield conn

    @asynccontextmanager
    async def _read(self, too_large: str = TOO_LARGE) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit: each statement is its own transaction (no BEGIN/COMMIT round trips).
        Also used for single-statement writes, which are atomic by themselves."""
        async with self._connection(too_large, transaction=False) as conn:
            yield conn

    @asynccontextmanager
    async def _connection(self, too_large: str, *, transaction: bool) -> AsyncIterator[AsyncConnection]:
        """A pooled connection for one step, bounded (within a tool call) by what is left of the call's deadline.

        Getting the connection (pool checkout, or connecting) is cancelled at the deadline. Once it is ours, the
        deadline closes its socket instead (``asyncpg.Connection.terminate``): the statement in flight, or the
        COMMIT or ROLLBACK on the way out, then fails at once as a lost connection, which SQLAlchemy invalidates
        and the pool discards (so no connection is reused mid-request when Postgres comes back). Cancelling it
        would not do: SQLAlchemy finishes closing a connection even when cancelled, and a ROLLBACK sent to a
        stalled server waits for the full statement timeout."""
        engine = self._require_engine()
        limit = _step_limit()
        bounded = not math.isinf(limit)
        cut_off: list[bool] = []
        timer: asyncio.TimerHandle | None = None
        await self._release_held(engine)
        try:
            async with self._guard(too_large), AsyncExitStack() as stack:
                with anyio.fail_after(limit if bounded else None):
                    conn = await stack.enter_async_context(engine.begin() if transaction else engine.connect())
                    if not transaction:
                        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    driver = (await conn.get_raw_connection()).driver_connection
                if driver is not None:
                    timer = _arm_cut_off(driver, limit, cut_off)
                yield conn
        except Unavailable as exc:
            # Cut off, or no connection in time (``_guard`` has made the TimeoutError of fail_after Unavailable).
            if cut_off or deadlines.spent():
                raise Unavailable(deadlines.deadline_message("Postgres")) from exc
            raise
        finally:
            if timer is not None:
                timer.cancel()

    _one = _read
