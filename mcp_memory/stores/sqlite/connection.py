"""The SQLite file: engine, transactions and the WAL checkpointer.

Every store method is one transaction; write transactions start with ``BEGIN IMMEDIATE`` so that two writers
(also in two processes sharing the file) queue on SQLite's lock instead of failing a read-to-write upgrade. The
file runs in WAL mode: readers never block the writer, and each statement reads one consistent snapshot, which is
what makes ``snapshot`` atomic against concurrent writes. WAL checkpoints run on a thread of their own
(:class:`_WalCheckpointer`), never inside a caller's commit.

Two ways to run a transaction, both on the same connections (and so the same single writer):

- through SQLAlchemy async (:meth:`SqliteConnection._write`, :meth:`SqliteConnection._read`): one thread hand-over
  per statement, for the calls off the hot path;
- whole, as one plain ``sqlite3`` function run on the aiosqlite connection's own thread
  (:meth:`SqliteConnection._write_direct`, :meth:`SqliteConnection._read_direct`, and
  :meth:`SqliteConnection._on_thread` inside a SQLAlchemy transaction): one hand-over per call, for pause's and
  resume's path. This uses aiosqlite's private ``Connection._execute`` (its one way to run a function on its
  thread, stable since 0.17), which is why aiosqlite is capped below 0.23; it is used in this module only.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from mcp_memory.errors import Internal, MemoryServiceError, Unavailable
from mcp_memory.stores.sqlite.fulltext import create_tokenizer
from mcp_memory.stores.sqlite.upgrade import prepare, unreadable

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

WAL_CHECKPOINT_EVERY = 32
"""The WAL checkpoint thread runs after this many write transactions (or a second), whichever comes first."""


def _in_autocommit(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``fn`` outside a transaction, each statement atomic on its own (on the connection's own thread)."""
    return fn(db)


def _in_open_transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``fn`` inside the transaction the connection has open (on the connection's own thread)."""
    return fn(db)


def _in_transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``fn`` as one write transaction (on the connection's own thread)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


class _WalCheckpointer:
    """Copies the WAL back into the database file on a thread and connection of its own.

    SQLite's automatic checkpoint runs inside the commit that crosses its threshold (1,000 pages), so about one
    pause in 30 at 1,000 keys paid for copying ~4 MB and syncing the database file: ~8 ms, the whole p99 of
    pause. Here our connections turn that off and this thread runs a PASSIVE checkpoint (it never blocks
    readers or the writer) after every ``every`` write transactions or ``interval`` seconds, whichever comes
    first, and once more at close."""

    def __init__(self, path: str, every: int = WAL_CHECKPOINT_EVERY, interval: float = 1.0) -> None:
        self._path = path
        self._every = every
        self._interval = interval
        self._writes = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mcp-memory-wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def note_write(self) -> None:
        """Called after each committed write transaction (on the event loop; cheap)."""
        self._writes += 1
        if self._writes >= self._every:
            self._wake.set()

    def stop(self) -> None:
        """Finish: one last checkpoint, then the thread ends (blocking; call it off the event loop)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=True)
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                if self._writes or self._stopping:
                    self._writes = 0
                    try:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error as exc:  # busy or gone: the next round tries again
                        logger.debug("WAL checkpoint of %s failed: %s", self._path, exc)
                if self._stopping:
                    return
        except sqlite3.Error:
            logger.warning("the WAL checkpoint thread of %s stopped", self._path, exc_info=True)
        finally:
            if db is not None:
                db.close()


class SqliteConnection:
    """The SQLite file of one store: its engine, its single writer connection, its two ways to run a transaction
    (see the module docstring) and its WAL checkpointer."""

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        """``synchronous``: SQLite's durability level. FULL (the default) makes every commit, so every
        acknowledged pause, survive a power loss; NORMAL is about twice as fast per write and survives a crash
        of this process but may lose the last commits on power loss."""
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self._url = make_url(url)
        self._synchronous = synchronous
        self._engine: AsyncEngine | None = None
        self._writer: AsyncConnection | None = None
        # The aiosqlite connection under ``_writer``, kept: fetching it through SQLAlchemy is a greenlet hop
        # (~35 µs) on every hot write.
        self._writer_driver: Any = None
        # Writers in this process queue here instead of spinning on SQLite's busy handler.
        self._write_lock = anyio.Lock(fast_acquire=True)
        self._checkpointer: _WalCheckpointer | None = None

    @property
    def path(self) -> str:
        """The database file (``:memory:`` for an in-memory database, which :meth:`start` refuses)."""
        return self._url.database or ":memory:"

    async def start(self) -> None:
        """Bring the file to today's schema (Alembic, see :mod:`.upgrade`), then open the engine."""
        if self._engine is not None:
            return
        if self.path == ":memory:" or self.path.startswith("file::memory:"):
            # The schema step runs on a connection of its own (see .upgrade), which would see another database.
            raise Unavailable("an in-memory SQLite database is not supported; give a file path")
        # A path that cannot be used is said in one sentence (serve prints it as its one line of error).
        folder = (await anyio.Path(self.path).expanduser()).parent
        try:
            await folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Unavailable(f"cannot create {folder}, the directory of the SQLite file: {exc.strerror}") from exc
        try:
            await anyio.to_thread.run_sync(prepare, self.path)
        except (OSError, sqlite3.DatabaseError, DBAPIError) as exc:
            # Unreadable, not a database, or damaged (DatabaseError is SQLite's NOTADB and CORRUPT; DBAPIError the
            # same met inside Alembic's upgrade).
            raise unreadable(self.path, exc) from exc
        # Every transaction here ends explicitly, so the pool's reset-on-return ROLLBACK is a wasted hop.
        engine = create_async_engine(self._url, connect_args={"timeout": 30}, pool_reset_on_return=None)
        synchronous = self._synchronous

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let us issue BEGIN ourselves (pysqlite's implicit transactions are wrong for this).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            for pragma in (
                "PRAGMA journal_mode=WAL",
                f"PRAGMA synchronous={synchronous}",
                "PRAGMA foreign_keys=ON",
                "PRAGMA busy_timeout=30000",
                # Checkpoints run on a thread of their own (see _WalCheckpointer), not inside a user's commit.
                "PRAGMA wal_autocheckpoint=0",
                # Whatever the build's default: a pause's retention prune then zeroes only what costs no I/O, with no
                # PRAGMA of its own; deletions a caller asks for set ON around themselves (see .secure_delete).
                "PRAGMA secure_delete=FAST",
            ):
                cur.execute(pragma)
            cur.close()
            create_tokenizer(dbapi_conn)

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            if options.get("mcp_memory_autocommit"):
                return  # one statement: atomic on its own, no transaction needed
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("mcp_memory_write") else "BEGIN")

        self._engine = engine
        self._checkpointer = _WalCheckpointer(str(await anyio.Path(self.path).expanduser()))
        self._checkpointer.start()

    async def close(self) -> None:
        async with self._write_lock:
            await self._drop_writer()
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await anyio.to_thread.run_sync(checkpointer.stop)
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise Unavailable("the SQLite store is not started")
        return self._engine

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except MemoryServiceError:
            raise
        except (OperationalError, sqlite3.OperationalError) as exc:
            logger.warning("SQLite operational error: %s", exc)
            raise Unavailable("the SQLite store is busy or unreachable; retry later") from exc
        except (DBAPIError, sqlite3.DatabaseError) as exc:
            logger.exception("SQLite error")
            raise Internal("the store failed unexpectedly; see the server log") from exc

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """The single writer: one kept-open connection, one transaction at a time (SQLite has one writer
        anyway). Commit and rollback are shielded from cancellation so the connection is never left
        inside a transaction; if either fails, the connection is dropped and reopened next time."""
        engine = self._require_engine()
        async with self._guard(), self._write_lock:
            if self._writer is None:
                conn = await engine.connect()
                self._writer = await conn.execution_options(mcp_memory_write=True)
            conn = self._writer
            txn = await conn.begin()
            try:
                yield conn
            except BaseException:
                with anyio.CancelScope(shield=True):
                    try:
                        await txn.rollback()
                    except Exception:
                        await self._drop_writer()
                raise
            with anyio.CancelScope(shield=True):
                try:
                    await txn.commit()
                except BaseException:
                    await self._drop_writer()
                    raise
            if self._checkpointer is not None:
                self._checkpointer.note_write()

    async def _drop_writer(self) -> None:
        writer, self._writer, self._writer_driver = self._writer, None, None
        if writer is not None:
            try:
                await writer.invalidate()
                await writer.close()
            except Exception:
                logger.debug("closing a broken writer connection failed", exc_info=True)

    @asynccontextmanager
    async def _read(self, *, statements: int = 1) -> AsyncIterator[AsyncConnection]:
        """A read-only connection. One statement reads one consistent snapshot by itself; several
        (``statements > 1``) share a transaction so that they see the same snapshot."""
        engine = self._require_engine()
        async with self._guard(), engine.connect() as conn:
            if statements > 1:
                async with conn.begin():
                    yield conn
            else:
                yield await conn.execution_options(mcp_memory_autocommit=True)

    async def _driver(self, conn: AsyncConnection) -> Any:
        """The aiosqlite connection under a SQLAlchemy one."""
        raw = await conn.get_raw_connection()
        return raw.driver_connection

    async def _writer_ready(self) -> Any:
        """The writer connection's aiosqlite driver, connected (again, if SQLAlchemy invalidated and so closed it).
        Called with the write lock held."""
        if self._writer is None:
            conn = await self._require_engine().connect()
            self._writer = await conn.execution_options(mcp_memory_write=True)
        driver = self._writer_driver
        if driver is None or not driver._running:
            driver = self._writer_driver = await self._driver(self._writer)
        return driver

    async def _write_direct(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """A write transaction run whole on the writer connection's own thread: one hand-over to that thread
        instead of three or four per statement through SQLAlchemy's aiosqlite adapter (each one a thread wake-up
        on both sides, ~0.1-0.2 ms; a pause's five statements spent more there than in SQLite itself). For the
        hot lifecycle calls; ``fn`` speaks plain ``sqlite3`` with the same SQL text and named parameters.

        The call is shielded from cancellation: the thread finishes the transaction (commit or rollback)
        whatever happens to the caller, and the caller learns which."""
        async with self._guard(), self._write_lock:
            driver = await self._writer_ready()
            try:
                with anyio.CancelScope(shield=True):
                    # aiosqlite's one way to run a function on its thread (stable since 0.17).
                    result: _T = await driver._execute(_in_transaction, driver._conn, fn)
            except MemoryServiceError:
                raise  # raised by fn, after its rollback: the connection is clean
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._drop_writer()
                raise
            if self._checkpointer is not None:
                self._checkpointer.note_write()
            return result

    async def truncate_wal(self) -> bool:
        """Copy every frame of the WAL into the database file and truncate the WAL to nothing: the old page images
        it holds (a deleted row's, as it was before the deletion) leave the disk with it; a PASSIVE checkpoint
        copies them but leaves the WAL's bytes as they were. Whether it was done: not if another connection (of
        any process) kept reading an older snapshot, or writing, past the busy timeout (30 s). Run on the writer
        connection, outside a transaction, so that no write of this process comes between."""
        async with self._guard(), self._write_lock:
            driver = await self._writer_ready()

            def checkpoint(db: sqlite3.Connection) -> bool:
                busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                return int(busy) == 0

            with anyio.CancelScope(shield=True):
                done: bool = await driver._execute(_in_autocommit, driver._conn, checkpoint)
            return done

    async def _read_direct(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """One read (a single statement, so one consistent snapshot) run on a reader's own thread in one
        hand-over; see :meth:`_write_direct`."""
        engine = self._require_engine()
        async with self._guard(), engine.connect() as conn:
            driver = await self._driver(conn)
            result: _T = await driver._execute(_in_autocommit, driver._conn, fn)
            return result

    async def _on_thread(self, conn: AsyncConnection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn`` run on ``conn``'s own thread in one hand-over, inside the transaction ``conn`` has open (see
        :meth:`_write_direct`); for several statements between SQLAlchemy ones of the same transaction."""
        driver = await self._driver(conn)
        result: _T = await driver._execute(_in_open_transaction, driver._conn, fn)
        return result
