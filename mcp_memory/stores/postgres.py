"""Postgres with pgvector: sessions, events, checkpoints and episodes (and working memory when Redis is not
configured), through SQLAlchemy 2 async Core on asyncpg.

Transactions and concurrency. Every port method is one transaction, and where it can be, one statement (a
single statement is atomic on its own, so it runs without BEGIN/COMMIT round trips). Postgres runs at READ
COMMITTED: each statement reads one snapshot, which is what makes ``snapshot`` atomic against a concurrent
``restore``. Writes that must check something first (the key limit of ``set``, the session's status) lock the
session's row (``FOR NO KEY UPDATE``) and then check in a *second* statement, which reads a snapshot taken after
the lock was granted; so two writers of one session queue on the row and never both see room for "one more key".

Checkpoints keep their state in one JSONB column ``{"key": ["<value JSON text>", expires_at], ...}``: the value
stays the caller's exact JSON text (JSONB would normalise spacing, key order and number forms, and the contract
promises the bytes back), while the checkpoint stays one row, readable with SQL (``state -> 'k' ->> 0``).

Recall (:meth:`PostgresStore.search_episodes`) is one SQL statement; see :func:`search_sql` for the fusion. Tables
live in the schema ``mcp_memory`` (see :mod:`mcp_memory.stores.pg_schema`, which also owns the migrations).

Failures: a connection that cannot be made or dies, a timeout, or a server shutting down is ``Unavailable``
("retry later"); a serialization failure or deadlock is ``Conflict``; a value over one of Postgres' own size
limits (SQLSTATE class 54: a checkpoint's state over JSONB's 256 MiB) is ``TooLarge``; anything else is
``Internal`` with the details in the log only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any, NoReturn
from uuid import UUID

import anyio
import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from mcp_memory import deadlines
from mcp_memory.config import Settings, mask_url
from mcp_memory.embeddings import vector_dimension
from mcp_memory.errors import Conflict, Internal, InvalidArgument, MemoryServiceError, TooLarge, Unavailable
from mcp_memory.models import (
    CheckpointData,
    CheckpointInfo,
    Episode,
    Item,
    Outcome,
    Scope,
    ScoredEpisode,
    SessionInfo,
    to_datetime,
)
from mcp_memory.ranking import (
    GOOD_COSINE,
    IMPORTANCE_WEIGHT,
    MIN_COSINE,
    RECENCY_HALF_LIFE_DAYS,
    RECENCY_WEIGHT,
    TEXT_WEIGHT,
    VECTOR_WEIGHT,
    normalize,
)
from mcp_memory.stores.pg_schema import connect_args
from mcp_memory.stores.ports import EpisodeChanges, EpisodeFilter, EventRecord, Limits, Retention, SearchMode
from mcp_memory.stores.sql.dialect import Dialect, as_is
from mcp_memory.stores.sql.episode_edits import EpisodeEdits
from mcp_memory.stores.sql.erase import ScopeErase
from mcp_memory.stores.sql.queries import (
    CHECKPOINT_COLUMNS,
    COMPLETE,
    EPISODE_COLUMNS,
    LIVE,
    SCOPE,
    SESSION_PK,
    checkpoint_selector,
    filter_clause,
)
from mcp_memory.stores.sql.retention import DELETE_CHECKPOINT, prune_statement
from mcp_memory.stores.sql.rules import (
    COMMON_TERM_MIN_EPISODES,
    COMMON_TERM_SHARE,
    candidate_pool,
    check_fits,
    check_writable,
    checkpoint_exists,
    keys_full,
    restore_overflows,
    session_exists,
)
from mcp_memory.stores.sql.sessions import FIRST_KEYS, SessionQueries
from mcp_memory.stores.sql.store import SqlStore
from mcp_memory.stores.sql.transfer import SqlTransfer

logger = logging.getLogger(__name__)

_WRITABLE = f"NOT sealed AND status <> 'terminated' AND {COMPLETE}"
_SESSION_SEALED = f"(SELECT sealed OR status = 'terminated' FROM sessions WHERE {SCOPE})"
"""Whether the session is terminated or being terminated (a scalar subquery, for reads of its checkpoints)."""
_DIALECT = Dialect(
    read_json=as_is,
    read_time=as_is,
    read_epoch=datetime.timestamp,
    write_uuid=as_is,
    write_time=to_datetime,
    before_bound="AND (created_at, id) < (:b_at, :b_id)",
)
_UPSERT_ITEMS = """
INSERT INTO working_items (session_pk, key, value, expires_at)
SELECT CAST(:pk AS bigint), k, v, e
FROM unnest(CAST(:keys AS text[]), CAST(:values AS text[]), CAST(:expiries AS float8[])) AS t(k, v, e)
ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
"""
_SET_ITEM = f"""
INSERT INTO working_items (session_pk, key, value, expires_at)
SELECT CAST(:pk AS bigint), CAST(:k AS text), CAST(:v AS text), CAST(:e AS float8)
WHERE EXISTS (SELECT 1 FROM working_items WHERE session_pk = :pk AND key = :k AND {LIVE})
   OR (SELECT count(*) FROM working_items WHERE session_pk = :pk AND {LIVE}) < :max
ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
RETURNING 1
"""
_INSERT_SESSION = (
    "INSERT INTO sessions (project_id, agent_instance_id, session_id, agent_type_id, status, created_at, updated_at, "
    "metadata) VALUES (:p, :a, :s, :t, 'running', :now, :now, CAST(:m AS jsonb)) ON CONFLICT DO NOTHING RETURNING *"
)
_INSERT_SPAWNING = (
    "INSERT INTO sessions (project_id, agent_instance_id, session_id, agent_type_id, status, created_at, updated_at, "
    "metadata, spawn_token, spawn_until) VALUES (:p, :a, :s, :t, 'running', :now, :now, CAST(:m AS jsonb), "
    "CAST(:tok AS text), CAST(:until AS timestamptz)) ON CONFLICT DO NOTHING RETURNING *"
)
BM25_K1 = 1.2
BM25_B = 0.75
_CLASS_WEIGHTS = {"A": 3.5, "B": 1.5, "C": 1.0, "D": 0.5}
"""Weights of the tsvector's classes: A task_description and lessons, B outcome_details, C task_type, D
context_summary (see the migrations); the SQLite adapter's bm25 column weights (4.0 and 3.0 for the two in A)."""
_FREQUENCY = " + ".join(f"{w} * cardinality(array_positions(u.weights, '{c}'))" for c, w in _CLASS_WEIGHTS.items())
_TEXT_RANK = (
    "(SELECT COALESCE(sum(s.idf * s.f * "
    f"{BM25_K1 + 1} / (s.f + {BM25_K1} * ({1 - BM25_B} + {BM25_B} * length(e.search_text) / s.avgdl))), 0.0) "
    f"FROM (SELECT w.idf, w.avgdl, {_FREQUENCY} AS f "
    "FROM unnest(e.search_text) AS u JOIN weights w ON w.lexeme = u.lexeme) AS s)"
)
"""An episode's full-text rank, BM25 over the episode's tsvector: per query word its weighted frequency ``f``
(each position counts its class's weight), the episode's length (its distinct words, ``length(tsvector)``)
against the project's average, and the word's IDF in the project (``weights``); 0 for an episode without a word
of the query."""
_TS_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
HNSW_MAX_EF_SEARCH = 1000
FILTERED_EF_FACTOR = 2
MIN_EF_SEARCH = 100
"""At 100,000 384-dim episodes, ef_search 40 finds 94.7% of the exact top 10, 100 finds 98.7% (bench_pg_search)."""
COMMON_LEXEME_SHARE = COMMON_TERM_SHARE
"""A word found in at least this share of the project's episodes does not make a row a full-text candidate..."""
COMMON_LEXEME_MIN_ROWS = COMMON_TERM_MIN_EPISODES
"""...once the project holds this many episodes (below it, ranking every match costs little). Shared with SQLite."""
EXACT_SCAN_BUDGET = 768_000
"""A project of at most this many episodes x vector dimensions is searched by an exact scan of its own vectors, not
the HNSW index (2,000 episodes at 384 dimensions, 3,000 at 256, 500 at 1536: about 2 ms on the benchmark VM). The
index is one graph over every project, so its approximate answer for one project depends on the others' vectors;
an exact scan of the project's rows does not."""
TOO_LARGE = "the data is larger than Postgres can store in one value"
"""The caller's message (before "; nothing was written") for a write over one of Postgres' size limits."""
CHECKPOINT_TOO_LARGE = (
    "the checkpoint's state is larger than Postgres can store in one JSONB value (256 MiB of keys and values "
    "together); delete or shrink keys of the session, then pause again"
)
UNAVAILABLE_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "57014", "25006", "3D000", "28")
"""Connection exceptions, insufficient resources, shutdowns, statement timeout, read-only (a standby), and (while
connecting) an unknown database or a refused login, which ``start`` turns into a ``ConfigurationError``."""


_scope_params = _DIALECT.scope_params


def ts_query(query: str) -> str | None:
    """A user's words as an OR-ed ``to_tsquery`` text: ``'word1 | word2'`` (letters and digits only, so no
    tsquery syntax can be injected). ``websearch_to_tsquery`` would AND the words, and an episode missing one
    of them would not be found at all."""
    tokens = list(dict.fromkeys(_TS_TOKEN.findall(query.lower())))[:64]
    return " | ".join(tokens) if tokens else None


def vector_text(vector: Sequence[float]) -> str:
    """A vector in pgvector's text form, scaled to unit length (so stored vectors are comparable by dot product
    too, and a caller's unnormalised vectors do not matter)."""
    return "[" + ",".join(map(str, normalize(vector))) + "]"


def _item_arrays(items: Mapping[str, Item], now: float) -> dict[str, Any]:
    keys: list[str] = []
    values: list[str] = []
    expiries: list[float | None] = []
    for key, item in items.items():
        if item.expires_at is None or item.expires_at > now:
            keys.append(key)
            values.append(item.value)
            expiries.append(item.expires_at)
    return {"keys": keys, "values": values, "expiries": expiries}


def _cut_off(driver: Any, cut_off: list[bool]) -> None:
    """The call's deadline has passed while a step held ``driver`` (an asyncpg connection): close its socket."""
    logger.warning("Postgres step cut off by the call's deadline; its connection is closed and discarded")
    cut_off.append(True)
    driver.terminate()


class PostgresStore(SessionQueries, EpisodeEdits, ScopeErase, SqlTransfer, SqlStore):
    """Working store and durable store on Postgres with pgvector (see the module docstring)."""

    _dialect = _DIALECT
    # Session discovery (sql/sessions.py): a listed session's first live keys, as an array (byte order, as memory_list).
    _FIRST_KEYS = (
        "ARRAY(SELECT w.key FROM working_items w WHERE w.session_pk = s.id "
        f'AND (w.expires_at IS NULL OR w.expires_at > :now) ORDER BY w.key COLLATE "C" LIMIT {FIRST_KEYS})'
    )

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
        self.exact_scan_max = EXACT_SCAN_BUDGET // embedding_dimension
        """Projects of at most this many episodes are searched by an exact scan of their vectors (see
        :data:`EXACT_SCAN_BUDGET`)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresStore:
        """The store the settings describe (not started)."""
        return cls(
            settings.resolved_database_url(),
            embedding_dimension=vector_dimension(settings),
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            timeout_seconds=settings.database_timeout_seconds,
        )

    # -- plumbing --------------------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """host:port/database, for messages (no credentials)."""
        host = self._url.host or self._url.query.get("host") or "localhost"
        return f"{host}:{self._url.port or 5432}/{self._url.database}"

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
        """Connect and check the schema: ``ConfigurationError`` (naming ``mcp-memory migrate``) if it is missing,
        behind, or built for another embedding dimension; ``Unavailable`` if Postgres does not answer."""
        from mcp_memory.stores.factory import ConfigurationError
        from mcp_memory.stores.pg_schema import read_state, schema_problem

        if self._engine is not None:
            return
        engine = self._create_engine()
        try:
            async with self._guard(), engine.connect() as conn:
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
        problem = schema_problem(state, self.embedding_dimension, self.where)
        if problem is not None:
            await engine.dispose()
            raise ConfigurationError(problem)
        self._engine = engine

    async def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.dispose()

    async def ping(self) -> dict[str, Any]:
        """Check the store answers; returns facts for ``mcp-memory doctor``."""
        from mcp_memory.stores.pg_schema import describe, read_state

        async with self._read() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT current_setting('server_version') AS server, "
                        "(SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector, "
                        "(SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM episodes) AS episodes, "
                        "(SELECT count(*) FROM episodes WHERE embedding IS NULL) AS missing"
                    )
                )
            ).one()
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
            if exc.connection_invalidated or lost or (sqlstate and sqlstate.startswith(UNAVAILABLE_SQLSTATES)):
                logger.warning("Postgres unavailable: %s", exc)
                raise self._unavailable(type(exc.orig).__name__ if exc.orig else "connection lost") from exc
            if sqlstate in ("40001", "40P01"):
                logger.info("Postgres serialization failure or deadlock: %s", exc)
                raise Conflict("a concurrent call changed the same session at the same time; retry") from exc
            if sqlstate == "23505":
                raise Conflict("a concurrent call wrote the same record at the same time; retry") from exc
            if sqlstate.startswith("54"):
                # program_limit_exceeded and kin: refused by the statement itself, which (like the transaction
                # around it) wrote nothing.
                logger.warning("Postgres refused a value over its limits: %s", exc.orig)
                raise TooLarge(f"{too_large}; nothing was written") from exc
            logger.exception("Postgres error")
            raise Internal("the store failed unexpectedly; see the server log") from exc
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
        limit = deadlines.step_limit(math.inf)
        if limit <= 0:
            raise Unavailable(deadlines.deadline_message("Postgres"))
        bounded = not math.isinf(limit)
        cut_off: list[bool] = []
        timer: asyncio.TimerHandle | None = None
        try:
            async with self._guard(too_large), AsyncExitStack() as stack:
                with anyio.fail_after(limit if bounded else None):
                    conn = await stack.enter_async_context(engine.begin() if transaction else engine.connect())
                    if not transaction:
                        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    driver = (await conn.get_raw_connection()).driver_connection
                left = deadlines.remaining()
                if bounded and left is not None and driver is not None:
                    timer = asyncio.get_running_loop().call_later(max(left, 0.0), _cut_off, driver, cut_off)
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

    async def _lock_writable(self, conn: AsyncConnection, scope: Scope) -> int:
        """Lock the session's row for this transaction and check it accepts writes; its pk."""
        row = (
            await conn.execute(
                text(f"SELECT id, status, sealed FROM sessions WHERE {SCOPE} AND {COMPLETE} FOR NO KEY UPDATE"),
                _scope_params(scope),
            )
        ).first()
        self._check_writable(scope, row)
        assert row is not None
        return int(row.id)

    @staticmethod
    def _check_writable(scope: Scope, row: Any) -> None:
        check_writable(scope, None if row is None else (row.status, row.sealed))

    # -- working store ---------------------------------------------------------------------------------
    async def open(self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits) -> int:
        check_fits(items, now, limits)
        async with self._write() as conn:
            pk = await self._lock_writable(conn, scope)
            arrays = _item_arrays(items, now)
            if arrays["keys"]:
                await conn.execute(text(_UPSERT_ITEMS), {"pk": pk, **arrays})
            return len(arrays["keys"])

    async def set(self, scope: Scope, key: str, item: Item, now: float, limits: Limits) -> None:
        async with self._write() as conn:
            pk = await self._lock_writable(conn, scope)
            params = {"pk": pk, "k": key, "v": item.value, "e": item.expires_at, "now": now, "max": limits.max_keys}
            if (await conn.execute(text(_SET_ITEM), params)).first() is None:
                raise keys_full(scope, limits)
            await self._maybe_purge(conn, now)

    async def delete(self, scope: Scope, key: str, now: float) -> bool:
        # One statement: lock the session row, delete only if it is writable, report what it found.
        async with self._one() as conn:
            row = (
                await conn.execute(
                    text(
                        f"WITH s AS (SELECT id, status, sealed FROM sessions WHERE {SCOPE} FOR NO KEY UPDATE), "
                        "d AS (DELETE FROM working_items w USING s WHERE w.session_pk = s.id AND w.key = :k "
                        f"AND NOT s.sealed AND s.status <> 'terminated' RETURNING w.expires_at) "
                        "SELECT s.status, s.sealed, "
                        "(SELECT count(*) FROM d WHERE d.expires_at IS NULL OR d.expires_at > :now) AS live "
                        "FROM s"
                    ),
                    {**_scope_params(scope), "k": key, "now": now},
                )
            ).first()
        self._check_writable(scope, row)
        assert row is not None
        return bool(row.live)

    async def list_keys(self, scope: Scope, prefix: str, now: float) -> list[str]:
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT key FROM working_items WHERE session_pk = {SESSION_PK} AND {LIVE} "
                    'AND left(key, :n) = :prefix ORDER BY key COLLATE "C"'
                ),
                {**_scope_params(scope), "now": now, "n": len(prefix), "prefix": prefix},
            )
            return [row.key for row in result]

    async def snapshot(self, scope: Scope, now: float) -> dict[str, Item]:
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT key, value, expires_at FROM working_items WHERE session_pk = {SESSION_PK} "
                    f'AND {LIVE} ORDER BY key COLLATE "C"'
                ),
                {**_scope_params(scope), "now": now},
            )
            return {row.key: Item(row.value, row.expires_at) for row in result}

    async def restore(self, scope: Scope, items: Mapping[str, Item], clear: bool, now: float, limits: Limits) -> int:
        if clear:
            check_fits(items, now, limits)
        arrays = _item_arrays(items, now)
        async with self._write() as conn:
            pk = await self._lock_writable(conn, scope)
            if clear:
                await conn.execute(text("DELETE FROM working_items WHERE session_pk = :pk"), {"pk": pk})
            if arrays["keys"]:
                await conn.execute(text(_UPSERT_ITEMS), {"pk": pk, **arrays})
            if not clear:
                live = (
                    await conn.execute(
                        text(f"SELECT count(*) FROM working_items WHERE session_pk = :pk AND {LIVE}"),
                        {"pk": pk, "now": now},
                    )
                ).scalar_one()
                if live > limits.max_keys:
                    raise restore_overflows(limits)
            return len(arrays["keys"])

    async def clear(self, scope: Scope, now: float) -> int:
        async with self._one() as conn:
            live = (
                await conn.execute(
                    text(
                        f"WITH d AS (DELETE FROM working_items WHERE session_pk = {SESSION_PK} RETURNING expires_at) "
                        f"SELECT count(*) FROM d WHERE {LIVE}"
                    ),
                    {**_scope_params(scope), "now": now},
                )
            ).scalar_one()
        return int(live)

    # -- sessions and events ---------------------------------------------------------------------------
    @staticmethod
    def _event_params(ev: EventRecord) -> dict[str, Any]:
        return {
            "ev_t": ev.event_type,
            "ev_at": to_datetime(ev.at),
            "ev_d": ev.measured_ms(),
            "ev_o": ev.outcome,
            "ev_detail": orjson.dumps(dict(ev.detail), default=str).decode(),
        }

    _EVENT_VALUES = (
        "CAST(:ev_t AS text), CAST(:ev_at AS timestamptz), CAST(:ev_d AS float8), CAST(:ev_o AS text), "
        "CAST(:ev_detail AS jsonb)"
    )
    _EVENT_VALUES_NO_DETAIL = (
        "CAST(:ev_t AS text), CAST(:ev_at AS timestamptz), CAST(:ev_d AS float8), CAST(:ev_o AS text)"
    )
    _EVENT_COLUMNS = "(session_pk, event_type, at, duration_ms, outcome, detail)"

    @staticmethod
    def _session_params(
        scope: Scope, agent_type_id: UUID | None, metadata: Mapping[str, Any], now: float
    ) -> dict[str, Any]:
        return {
            **_scope_params(scope),
            "t": agent_type_id,
            "now": to_datetime(now),
            "m": orjson.dumps(dict(metadata)).decode(),
        }

    async def create_session(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
    ) -> SessionInfo:
        async with self._one() as conn:
            row = (
                await conn.execute(
                    text(
                        f"WITH s AS ({_INSERT_SESSION}), "
                        f"ev AS (INSERT INTO events {self._EVENT_COLUMNS} SELECT id, {self._EVENT_VALUES} FROM s) "
                        "SELECT * FROM s"
                    ),
                    {**self._session_params(scope, agent_type_id, metadata, now), **self._event_params(event)},
                )
            ).first()
            if row is None:
                status = (
                    await conn.execute(text(f"SELECT status FROM sessions WHERE {SCOPE}"), _scope_params(scope))
                ).scalar()
                raise session_exists(scope, status)
        return self._session_info(row)

    async def begin_spawn(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
        token: str,
        lease_seconds: float,
    ) -> SessionInfo:
        params = {
            **self._session_params(scope, agent_type_id, metadata, now),
            **self._event_params(event),
            "tok": token,
            "until": to_datetime(now + lease_seconds),
        }
        # One transaction: a lapsed spawn's row goes and the new one comes in together (a concurrent takeover
        # blocks on the row's lock, then finds it gone and inserts nothing: conflict).
        async with self._write() as conn:
            await self._take_over_lapsed_spawn(conn, params)
            row = (
                await conn.execute(
                    text(
                        f"WITH s AS ({_INSERT_SPAWNING}), "
                        f"ev AS (INSERT INTO events {self._EVENT_COLUMNS} SELECT id, {self._EVENT_VALUES} FROM s) "
                        "SELECT * FROM s"
                    ),
                    params,
                )
            ).first()
            if row is None:
                raise await self._refuse_spawn(conn, scope, params)
        return self._session_info(row)

    async def discard_session(self, scope: Scope) -> None:
        async with self._one() as conn:
            await conn.execute(
                text(
                    f"WITH s AS (DELETE FROM sessions WHERE {SCOPE} AND status = 'running' AND NOT sealed "
                    "AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE session_pk = sessions.id) RETURNING id) "
                    "DELETE FROM working_items WHERE session_pk IN (SELECT id FROM s)"
                ),
                _scope_params(scope),
            )

    async def record_event(self, scope: Scope, event: EventRecord) -> None:
        async with self._one() as conn:
            await conn.execute(
                text(
                    f"INSERT INTO events {self._EVENT_COLUMNS} SELECT id, {self._EVENT_VALUES} "
                    f"FROM sessions WHERE {SCOPE} AND {COMPLETE}"
                ),
                {**_scope_params(scope), **self._event_params(event)},
            )

    # -- lifecycle transitions -------------------------------------------------------------------------
    async def _prune(
        self, conn: AsyncConnection, session_pk: int, info: CheckpointInfo, retention: Retention | None
    ) -> None:
        """Apply ``retention``: the pause's second statement, in its transaction. Its first took the session's row
        lock, so no other pause of the session inserts in between, and (read committed) this statement's snapshot
        sees every checkpoint committed before that lock was granted: two concurrent pauses never leave more than
        the policy allows (one statement could not: its snapshot predates the lock wait)."""
        prune = prune_statement(_DIALECT, retention, session_pk, info.created_at.timestamp(), "OFFSET :n")
        if prune is not None:
            await conn.execute(text(prune[0]), prune[1])

    async def delete_checkpoint(self, scope: Scope, checkpoint_id: str, event: EventRecord) -> bool:
        # One statement: the checkpoint goes, and the event is recorded only if it did.
        async with self._one() as conn:
            row = (
                await conn.execute(
                    text(
                        f"WITH d AS ({DELETE_CHECKPOINT}), "
                        f"ev AS (INSERT INTO events {self._EVENT_COLUMNS} SELECT session_pk, {self._EVENT_VALUES} "
                        "FROM d) SELECT session_pk FROM d"
                    ),
                    {**_scope_params(scope), "cid": checkpoint_id, **self._event_params(event)},
                )
            ).first()
        return row is not None

    async def record_pause(
        self,
        scope: Scope,
        info: CheckpointInfo,
        items: Mapping[str, Item],
        event: EventRecord,
        retention: Retention | None = None,
    ) -> None:
        state = orjson.dumps({key: [it.value, it.expires_at] for key, it in items.items()})
        # One statement: lock the writable session, insert the checkpoint (nothing if its id is taken), mark the
        # session paused and record the event only if the checkpoint went in; then the pruning (``_prune``).
        async with self._write(CHECKPOINT_TOO_LARGE) as conn:
            row = (
                await conn.execute(
                    text(
                        f"WITH s AS (SELECT id FROM sessions WHERE {SCOPE} AND {_WRITABLE} FOR NO KEY UPDATE), "
                        "cp AS (INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, "
                        "label, content_hash, metadata, state, state_bytes, keep) SELECT s.id, CAST(:cid AS text), "
                        "CAST(:at AS timestamptz), CAST(:n AS integer), CAST(:b AS bigint), CAST(:label AS text), "
                        "CAST(:h AS text), CAST(:m AS jsonb), CAST(:state AS jsonb), CAST(:state_bytes AS bigint), "
                        "CAST(:keep AS boolean) FROM s "
                        "ON CONFLICT (session_pk, checkpoint_id) DO NOTHING RETURNING session_pk), "
                        "upd AS (UPDATE sessions SET status = 'paused', updated_at = :ev_at "
                        "WHERE id = (SELECT session_pk FROM cp)), "
                        f"ev AS (INSERT INTO events {self._EVENT_COLUMNS} SELECT session_pk, {self._EVENT_VALUES} "
                        "FROM cp) SELECT session_pk FROM cp"
                    ),
                    {
                        **_scope_params(scope),
                        "cid": info.checkpoint_id,
                        "at": info.created_at,
                        "n": info.keys_count,
                        "b": info.bytes,
                        "label": info.label,
                        "h": info.content_hash,
                        "m": orjson.dumps(info.metadata).decode(),
                        "state": state.decode(),
                        "state_bytes": len(state),
                        "keep": info.keep,
                        **self._event_params(event),
                    },
                )
            ).first()
            if row is None:
                await self._refuse_pause(conn, scope, info.checkpoint_id)
            await self._prune(conn, int(row.session_pk), info, retention)

    async def _refuse_pause(self, conn: AsyncConnection, scope: Scope, checkpoint_id: str) -> NoReturn:
        """Why a pause's insert wrote nothing: the session is missing or not writable, else the id is taken."""
        found = (
            await conn.execute(
                text(f"SELECT status, sealed FROM sessions WHERE {SCOPE} AND {COMPLETE}"), _scope_params(scope)
            )
        ).first()
        self._check_writable(scope, found)
        raise checkpoint_exists(checkpoint_id)

    # -- one transaction per transition (this store is the working store too) ---------------------------
    async def spawn_session(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
        items: Mapping[str, Item],
        limits: Limits,
    ) -> tuple[SessionInfo, int]:
        check_fits(items, now, limits)
        arrays = _item_arrays(items, now)
        # One statement: the session, its event and its items, or (if the session exists) nothing.
        async with self._one() as conn:
            row = (
                await conn.execute(
                    text(
                        f"WITH s AS ({_INSERT_SESSION}), "
                        f"ev AS (INSERT INTO events {self._EVENT_COLUMNS} SELECT id, {self._EVENT_VALUES} FROM s), "
                        "it AS (INSERT INTO working_items (session_pk, key, value, expires_at) SELECT s.id, k, v, e "
                        "FROM s, unnest(CAST(:keys AS text[]), CAST(:values AS text[]), CAST(:expiries AS float8[])) "
                        "AS t(k, v, e)) SELECT * FROM s"
                    ),
                    {
                        **self._session_params(scope, agent_type_id, metadata, now),
                        **arrays,
                        **self._event_params(event),
                    },
                )
            ).first()
            if row is None:
                status = (
                    await conn.execute(text(f"SELECT status FROM sessions WHERE {SCOPE}"), _scope_params(scope))
                ).scalar()
                raise session_exists(scope, status)
        return self._session_info(row), len(arrays["keys"])

    async def pause_session(
        self, scope: Scope, info: CheckpointInfo, now: float, event: EventRecord, retention: Retention | None = None
    ) -> CheckpointInfo:
        # One statement: lock the writable session, aggregate its live items into the checkpoint's state, count,
        # size and hash (as mcp_memory.models.content_hash: sha256 over key NUL value NUL in code point order,
        # which is byte order in UTF-8, i.e. COLLATE "C"), insert it (nothing if its id is taken), mark the
        # session paused and record the event only if the checkpoint went in. state_bytes is the size of the
        # state's JSONB text here (the two-step path measures its compact JSON); it is informational only.
        # Then the pruning, the transaction's second statement (``_prune``).
        async with self._write(CHECKPOINT_TOO_LARGE) as conn:
            row = (
                await conn.execute(
                    text(
                        f"WITH s AS (SELECT id FROM sessions WHERE {SCOPE} AND {_WRITABLE} FOR NO KEY UPDATE), "
                        "w AS (SELECT key, value, expires_at FROM working_items "
                        f"WHERE session_pk = (SELECT id FROM s) AND {LIVE}), "
                        "agg AS (SELECT count(*) AS n, COALESCE(sum(octet_length(value)), 0) AS b, "
                        "COALESCE(jsonb_object_agg(key, jsonb_build_array(value, expires_at)), CAST('{}' AS jsonb)) "
                        "AS state, 'sha256:' || encode(sha256(COALESCE(string_agg(convert_to(key, 'UTF8') || "
                        "decode('00', 'hex') || convert_to(value, 'UTF8') || decode('00', 'hex'), "
                        "decode('', 'hex') ORDER BY key COLLATE \"C\"), decode('', 'hex'))), 'hex') AS h FROM w), "
                        "cp AS (INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, "
                        "label, content_hash, metadata, state, state_bytes, keep) SELECT s.id, CAST(:cid AS text), "
                        "CAST(:at AS timestamptz), agg.n, agg.b, CAST(:label AS text), agg.h, CAST(:m AS jsonb), "
                        "agg.state, octet_length(CAST(agg.state AS text)), CAST(:keep AS boolean) FROM s, agg "
                        "ON CONFLICT (session_pk, checkpoint_id) DO NOTHING "
                        "RETURNING session_pk, keys_count, bytes, content_hash), "
                        "upd AS (UPDATE sessions SET status = 'paused', updated_at = :ev_at "
                        "WHERE id = (SELECT session_pk FROM cp)), "
                        f"ev AS (INSERT INTO events {self._EVENT_COLUMNS} SELECT session_pk, "
                        f"{self._EVENT_VALUES_NO_DETAIL}, CAST(:ev_detail AS jsonb) || "
                        "jsonb_build_object('items', keys_count) FROM cp) "
                        "SELECT session_pk, keys_count, bytes, content_hash FROM cp"
                    ),
                    {
                        **_scope_params(scope),
                        "now": now,
                        "cid": info.checkpoint_id,
                        "at": info.created_at,
                        "label": info.label,
                        "m": orjson.dumps(info.metadata).decode(),
                        "keep": info.keep,
                        **self._event_params(event),
                    },
                )
            ).first()
            if row is None:
                await self._refuse_pause(conn, scope, info.checkpoint_id)
            await self._prune(conn, int(row.session_pk), info, retention)
        return info.model_copy(
            update={"keys_count": int(row.keys_count), "bytes": int(row.bytes), "content_hash": row.content_hash}
        )

    async def resume_session(
        self,
        scope: Scope,
        checkpoint_id: str | None,
        clear: bool,
        now: float,
        limits: Limits,
        event: EventRecord,
    ) -> tuple[CheckpointInfo, int] | None:
        params = _scope_params(scope)
        where = checkpoint_selector(params, checkpoint_id)
        async with self._write() as conn:
            # The session's row locked (writers of this session queue behind this resume) and the checkpoint.
            found = (
                await conn.execute(
                    text(
                        f"WITH s AS (SELECT id, status, sealed FROM sessions WHERE {SCOPE} FOR NO KEY UPDATE) "
                        f"SELECT s.id AS pk, s.status, s.sealed, c.* FROM s JOIN LATERAL (SELECT {CHECKPOINT_COLUMNS}, "
                        f"state FROM checkpoints WHERE session_pk = s.id {where}) c ON true"
                    ),
                    params,
                )
            ).first()
            if found is None:
                return None
            self._check_writable(scope, found)
            info = self._checkpoint_info(found)
            items = {key: Item(value, expires_at) for key, (value, expires_at) in found.state.items()}
            if clear:
                check_fits(items, now, limits)
            arrays = _item_arrays(items, now)
            restored = len(arrays["keys"])
            recorded = event.with_detail({"checkpoint_id": info.checkpoint_id, "items": restored})
            # One statement: (with clear) delete the keys the checkpoint does not have, upsert its keys (disjoint
            # rows, so the two never touch one row twice), status and event; and the count of the other live
            # keys, which the upsert leaves alone (checked below: too many rolls it all back).
            others = (
                "session_pk = :pk AND NOT EXISTS (SELECT 1 FROM unnest(CAST(:keys AS text[])) AS r(key) "
                "WHERE r.key = working_items.key)"
            )
            delete = f"d AS (DELETE FROM working_items WHERE {others}), " if clear else ""
            count = "0" if clear else f"(SELECT count(*) FROM working_items WHERE {others} AND {LIVE})"
            kept = (
                await conn.execute(
                    text(
                        f"WITH {delete}ins AS ({_UPSERT_ITEMS}), "
                        "upd AS (UPDATE sessions SET status = 'running', updated_at = :ev_at WHERE id = :pk), "
                        f"ev AS (INSERT INTO events {self._EVENT_COLUMNS} VALUES (:pk, {self._EVENT_VALUES})) "
                        f"SELECT {count}"
                    ),
                    {"pk": found.pk, "now": now, **arrays, **self._event_params(recorded)},
                )
            ).scalar_one()
            if not clear and kept + restored > limits.max_keys:
                raise restore_overflows(limits)
            return info, restored

    async def record_resume(self, scope: Scope, event: EventRecord) -> None:
        async with self._one() as conn:
            row = (
                await conn.execute(
                    text(
                        f"WITH s AS (SELECT id, status, sealed FROM sessions WHERE {SCOPE} FOR NO KEY UPDATE), "
                        f"upd AS (UPDATE sessions SET status = 'running', updated_at = :ev_at FROM s "
                        f"WHERE sessions.id = s.id AND NOT s.sealed AND s.status <> 'terminated' RETURNING s.id), "
                        f"ev AS (INSERT INTO events {self._EVENT_COLUMNS} SELECT id, {self._EVENT_VALUES} FROM upd) "
                        "SELECT status, sealed FROM s"
                    ),
                    {**_scope_params(scope), **self._event_params(event)},
                )
            ).first()
        self._check_writable(scope, row)

    async def record_terminate(
        self,
        scope: Scope,
        episode: Episode | None,
        embedding: Sequence[float] | None,
        result: Mapping[str, Any],
        event: EventRecord,
        embedding_model: str | None = None,
        seal_token: str | None = None,
    ) -> dict[str, Any]:
        async with self._write() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, status, terminate_result, sealed, seal_token FROM sessions "
                        f"WHERE {SCOPE} FOR UPDATE"
                    ),
                    _scope_params(scope),
                )
            ).first()
            stored = self._terminated_result(scope, row, seal_token)
            if stored is not None:
                return stored
            assert row is not None
            # Episode, session and event in one statement.
            episode_sql, episode_params = (
                self._episode_insert(episode, embedding, embedding_model) if episode else ("", {})
            )
            await conn.execute(
                text(
                    f"WITH {episode_sql + ', ' if episode_sql else ''}"
                    "upd AS (UPDATE sessions SET status = 'terminated', sealed = true, updated_at = :ev_at, "
                    "terminated_at = :ev_at, episode_id = :eid, terminate_result = CAST(:r AS jsonb) WHERE id = :pk) "
                    f"INSERT INTO events {self._EVENT_COLUMNS} VALUES (:pk, {self._EVENT_VALUES})"
                ),
                {
                    **episode_params,
                    "pk": row.id,
                    "eid": episode.episode_id if episode else None,
                    "r": orjson.dumps(dict(result)).decode(),
                    **self._event_params(event),
                },
            )
            return dict(result)

    # -- checkpoints -----------------------------------------------------------------------------------
    async def get_checkpoint(self, scope: Scope, checkpoint_id: str | None) -> CheckpointData | None:
        params = _scope_params(scope)
        where = checkpoint_selector(params, checkpoint_id)
        async with self._read() as conn:
            row = (
                await conn.execute(
                    text(
                        f"SELECT {CHECKPOINT_COLUMNS}, state, {_SESSION_SEALED} AS session_sealed "
                        f"FROM checkpoints WHERE session_pk = {SESSION_PK} {where}"
                    ),
                    params,
                )
            ).first()
        if row is None:
            return None
        items = {key: Item(value, expires_at) for key, (value, expires_at) in row.state.items()}
        return CheckpointData(self._checkpoint_info(row), items, bool(row.session_sealed))

    # -- episodes --------------------------------------------------------------------------------------
    def _embedding_text(self, embedding: Sequence[float] | None, what: str) -> str | None:
        """The vector as pgvector text, or None (logged) if it has the wrong number of dimensions."""
        if embedding is None:
            return None
        if len(embedding) != self.embedding_dimension:
            logger.warning(
                "%s has %d dimensions but the database stores %d; left without a vector",
                what,
                len(embedding),
                self.embedding_dimension,
            )
            return None
        return vector_text(embedding)

    def _episode_insert(
        self, ep: Episode, embedding: Sequence[float] | None, model: str | None
    ) -> tuple[str, dict[str, Any]]:
        """A CTE inserting the episode, and its parameters. The model's name is kept only with a vector (one of
        the wrong width is not stored, see :meth:`_embedding_text`, and then neither is its model)."""
        emb = self._embedding_text(embedding, f"the embedding of episode {ep.episode_id}")
        sql = (
            "ins_ep AS (INSERT INTO episodes (episode_id, project_id, agent_instance_id, session_id, task_type, "
            "task_description, outcome, outcome_details, lessons_learned, importance_score, context_summary, "
            "metadata, created_at, embedding, embedding_model) VALUES (:ep_id, :ep_p, :ep_a, :ep_s, :ep_tt, :ep_td, "
            ":ep_o, :ep_od, CAST(:ep_ll AS jsonb), :ep_imp, :ep_cs, CAST(:ep_m AS jsonb), :ep_at, "
            "CAST(:ep_emb AS vector), CAST(:ep_model AS text)))"
        )
        return sql, {
            "ep_id": ep.episode_id,
            "ep_p": ep.project_id,
            "ep_a": ep.agent_instance_id,
            "ep_s": ep.session_id,
            "ep_tt": ep.task_type,
            "ep_td": ep.task_description,
            "ep_o": ep.outcome.value,
            "ep_od": ep.outcome_details,
            "ep_ll": orjson.dumps(ep.lessons_learned).decode(),
            "ep_imp": ep.importance_score,
            "ep_cs": ep.context_summary,
            "ep_m": orjson.dumps(ep.metadata).decode(),
            "ep_at": ep.created_at,
            "ep_emb": emb,
            "ep_model": model if emb is not None else None,
        }

    async def add_episode(
        self, episode: Episode, embedding: Sequence[float] | None, embedding_model: str | None = None
    ) -> UUID:
        sql, params = self._episode_insert(episode, embedding, embedding_model)
        async with self._write() as conn:
            # Writers of the same episode queue on one advisory lock (held to commit), so of two concurrent
            # repeats the second finds the first.
            await self._lock_same(conn, episode)
            same = await self._same_episode(conn, episode)
            if same is not None:
                return same
            await conn.execute(text(f"WITH {sql} SELECT 1"), params)
        return episode.episode_id

    # -- edits (sql/episode_edits.py): the full-text counts follow by triggers; vectors and locks ------------
    _JSON = "CAST({} AS jsonb)"

    async def _insert_event(self, conn: AsyncConnection, session_pk: int, ev: EventRecord) -> None:
        await conn.execute(
            text(f"INSERT INTO events {self._EVENT_COLUMNS} VALUES (:pk, {self._EVENT_VALUES})"),
            {"pk": session_pk, **self._event_params(ev)},
        )

    async def _lock_same(self, conn: AsyncConnection, episode: Episode) -> None:
        key = f"{episode.project_id}|{episode.agent_instance_id}|{episode.session_id}|{episode.task_description}"
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})

    def _vector_set(self, changes: EpisodeChanges, params: dict[str, Any]) -> str:
        emb = None
        if changes.embedding is not None:
            emb = self._embedding_text(changes.embedding, "the new embedding of an edited episode")
        params["emb"] = emb
        params["model"] = None if emb is None else changes.embedding_model
        return "embedding = CAST(:emb AS vector), embedding_model = CAST(:model AS text)"

    async def nearest_episode(
        self,
        project_id: UUID,
        embedding: Sequence[float],
        embedding_model: str | None,
        task_type: str,
        outcome: Outcome,
    ) -> tuple[UUID, float] | None:
        qv = self._embedding_text(embedding, "the embedding of a new episode")
        if qv is None:
            return None
        model = "" if embedding_model is None else " AND embedding_model = CAST(:model AS text)"
        async with self._read() as conn:
            # Exact (no index): one task type and outcome of one project, a B-tree's rows.
            row = (
                await conn.execute(
                    text(
                        "SELECT episode_id, 1.0 - (embedding <=> CAST(:qv AS vector)) AS cos FROM episodes "
                        f"WHERE project_id = :p AND task_type = :tt AND outcome = :o AND embedding IS NOT NULL{model} "
                        "ORDER BY (embedding <=> CAST(:qv AS vector)) + 0 LIMIT 1"
                    ),
                    {"qv": qv, "p": project_id, "tt": task_type, "o": outcome.value, "model": embedding_model},
                )
            ).first()
        return None if row is None else (row.episode_id, float(row.cos))

    # -- transfer (sql/transfer.py) ----------------------------------------------------------------------
    _vector_column = "CAST(e.embedding AS text)"

    @staticmethod
    def _read_vector(value: Any) -> list[float] | None:
        vector: list[float] = orjson.loads(value)
        return vector

    @staticmethod
    def _checkpoint_extra(state: str) -> dict[str, Any]:
        return {"state_bytes": len(state.encode())}

    async def _import_episode(
        self, conn: AsyncConnection, ep: Episode, embedding: Sequence[float] | None, model: str | None
    ) -> None:
        sql, params = self._episode_insert(ep, embedding, model)
        await conn.execute(text(f"WITH {sql} SELECT 1"), params)

    async def search_episodes(
        self,
        project_id: UUID,
        query: str,
        query_embedding: Sequence[float] | None,
        flt: EpisodeFilter,
        limit: int,
        now: float,
        mode: SearchMode = "hybrid",
        embedding_model: str | None = None,
    ) -> list[ScoredEpisode]:
        pool = candidate_pool(limit)
        tsq = ts_query(query) if mode != "vector" else None
        qv = (
            self._embedding_text(query_embedding, "the query embedding")
            if query_embedding is not None and mode != "text"
            else None
        )
        if tsq is None and qv is None:
            return []
        extra, params = filter_clause(_DIALECT, flt, prefix="e.")
        # Vector candidates: fewer than text ones, as each costs HNSW work; every candidate of either list is
        # scored by both retrievers anyway (see search_sql).
        vector_pool = max(limit * 4, 40)
        params.update(p=project_id, pool=pool, limit=limit, now=now)
        if qv is not None:
            params["vpool"] = vector_pool
        if tsq is not None:
            params["tsq"] = tsq
        if qv is not None:
            params["qv"] = qv
            if embedding_model is not None:
                params["model"] = embedding_model
        sql = search_sql(
            extra,
            text_retriever=tsq is not None,
            vector_retriever=qv is not None,
            same_model=qv is not None and embedding_model is not None,
            exact_scan_max=self.exact_scan_max,
        )
        # The HNSW scan yields at most ef_search rows before the filters drop some: size it to the candidate pool,
        # and widen it when filters will drop rows (if too few survive, the query falls back to an exact scan).
        ef_search = min(HNSW_MAX_EF_SEARCH, max(vector_pool, MIN_EF_SEARCH) * (FILTERED_EF_FACTOR if extra else 1))
        if qv is None:
            async with self._read() as conn:
                rows = (await conn.execute(text(sql), params)).all()
        else:
            async with self._write() as conn:
                await conn.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef_search)})
                rows = (await conn.execute(text(sql), params)).all()
        return [ScoredEpisode(**self._episode(r).model_dump(), score=round(r.score, 6)) for r in rows]

    async def episodes_missing_embedding(self, limit: int, model: str | None = None) -> list[Episode]:
        # Without a model: the partial index episodes_missing_embedding serves it (few rows, asked often by the
        # background retry). With one (reembed --all, run by hand): a scan, as most rows may be stale then.
        stale = "" if model is None else " OR e.embedding_model IS DISTINCT FROM :model"
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT {EPISODE_COLUMNS} FROM episodes e WHERE e.embedding IS NULL{stale} "
                    "ORDER BY e.created_at, e.id LIMIT :limit"
                ),
                {"limit": limit, **({"model": model} if model is not None else {})},
            )
            return [self._episode(r) for r in result]

    async def set_episode_embedding(
        self, project_id: UUID, episode_id: UUID, embedding: Sequence[float], model: str
    ) -> bool:
        if len(embedding) != self.embedding_dimension:
            # Never written: a vector(n) column holds n dimensions only (and Postgres would refuse it anyway).
            raise InvalidArgument(
                f"the embedding of {model} has {len(embedding)} dimensions but the Postgres schema of {self.where} "
                f"stores {self.embedding_dimension}-dimensional vectors; vectors of another dimension need a new "
                f"schema (a database migrated with MCP_MEMORY_EMBEDDING_DIMENSION={len(embedding)}), or a model "
                f"of {self.embedding_dimension} dimensions"
            )
        async with self._one() as conn:
            result = await conn.execute(
                text(
                    "UPDATE episodes SET embedding = CAST(:emb AS vector), embedding_model = CAST(:model AS text) "
                    "WHERE project_id = :p AND episode_id = :e "
                    "AND (embedding IS NULL OR embedding_model IS DISTINCT FROM CAST(:model AS text))"
                ),
                {"emb": vector_text(embedding), "model": model, "p": project_id, "e": episode_id},
            )
            return bool(result.rowcount)


def search_sql(
    filters: str, *, text_retriever: bool, vector_retriever: bool, same_model: bool = False, exact_scan_max: int = 0
) -> str:
    """The recall query: one statement that fuses full-text and vector scores, as :mod:`mcp_memory.ranking` does.

    - Full text: the OR-ed tsquery (``:tsq``) over the GIN-indexed tsvector, ranked by BM25 (k1 1.2, b 0.75, as
      SQLite's FTS5) computed from the episode's tsvector (:data:`_TEXT_RANK`: each query word's frequency, every
      position weighted by its column's class, the episode's distinct words against the project's average) and each
      word's IDF, FTS5's ``ln((N - n + 0.5) / (n + 0.5))`` floored at 1e-6, with N the project's episodes and n
      those holding the word; each score is a share of the best one (BM25 has no fixed scale). N, n and the
      lengths are the project's own counts (``project_episode_counts``, ``project_lexeme_counts``, kept exact by
      triggers on ``episodes``, migrations 0002 and 0003): no other project's episodes move a score, and no
      ANALYZE is needed. Ranking every row that shares one common word with the query ("fix", "test") would cost
      time in proportion to the project, so candidates are the rows matching the query's *selective* words: those
      found in fewer than ``COMMON_LEXEME_SHARE`` of the project's episodes, once it holds
      ``COMMON_LEXEME_MIN_ROWS``. Common words still count in the rank of those candidates, with their low IDF; a
      query made of common words only matches on all of them. A word no episode of the project holds is left
      out of both (it would match nothing), as on SQLite.
    - Vectors: a project of at most ``exact_scan_max`` episodes (see :data:`EXACT_SCAN_BUDGET`) is searched by
      an exact scan of its own vectors: the ``:vpool`` nearest, whatever the other projects hold (the HNSW scan,
      in the plan, is gated off and never runs). A larger project: the ``:vpool`` nearest by cosine distance
      through the HNSW index (ef_search sized to it), one graph over every project, so approximate and not
      independent of the others' vectors. pgvector 0.6 filters *after* the index scan (no iterative scans): with
      filters the scan is widened (ef_search twice the pool), and the rows that survive the filters are the
      nearest matching ones. A selective filter (one agent, a recent ``since``) can leave fewer than ``:limit``:
      then, and only then, an exact scan of the filtered rows replaces them (cheap exactly because the filter is
      selective; B-trees on project with agent, task type or time find the rows). Cosines below
      ``MIN_COSINE`` are dropped; each kept cosine is divided by the best one of the query, or by ``GOOD_COSINE``
      if the best is lower (ranking.py's ``similarities``). ``same_model``: only vectors stored under the model
      ``:model`` count (those of another model are on another scale, even at the same dimension).
    - Fusion: ranking.py's ``fuse``: the weighted average (``TEXT_WEIGHT``, ``VECTOR_WEIGHT``) of the two scores
      over the retrievers that found anything (a retriever with no hit for the query has no say, so its weight
      leaves the denominator), then scaled by ``1 + 0.15 importance + 0.10 recency`` (30-day half-life), best
      first. Each candidate of either retriever is scored by *both*: its text share and its cosine are computed
      for it, so an episode just outside one list's cut-off (the HNSW pool, or the selective-word candidates) is
      scored as what it is there, not as a zero. An episode the retriever would not find at all still scores 0
      there, as in ``fuse``: no word of the query (its BM25 is 0), no vector of the query's model, or a
      cosine below ``MIN_COSINE``. The scales are the retrievers' own: the best rank among the text hits, the best
      cosine among the vector hits.
    Filters (``filters``, conditions on ``e``) apply inside each retriever, so the pool is of matching rows.
    """
    where = f"e.project_id = :p{filters}"
    model = " AND e.embedding_model = :model" if same_model else ""
    ctes: list[str] = []
    parts: list[str] = []
    if text_retriever:
        ctes.append(
            "terms AS (SELECT lexeme FROM unnest(tsvector_to_array(to_tsvector('english', "
            "replace(:tsq, ' | ', ' ')))) AS lexeme)"
        )
        # The project's own counts (kept exact by triggers, see migration 0002): N episodes, and per query word
        # the number n of them holding it. Nothing here depends on another project's episodes or on ANALYZE.
        ctes.append(
            "term_stats AS MATERIALIZED (SELECT t.lexeme, CAST(COALESCE((SELECT l.episodes "
            "FROM project_lexeme_counts l WHERE l.project_id = :p AND l.lexeme = t.lexeme), 0) AS float8) AS n, "
            "CAST(COALESCE(c.episodes, 0) AS float8) AS total, CAST(COALESCE(c.tokens, 0) AS float8) AS tokens "
            "FROM terms t LEFT JOIN project_episode_counts c ON c.project_id = :p)"
        )
        ctes.append(
            "selective AS (SELECT string_agg(quote_literal(lexeme), ' | ') AS q FROM term_stats "
            f"WHERE n > 0 AND NOT (total >= {COMMON_LEXEME_MIN_ROWS} AND n >= {COMMON_LEXEME_SHARE} * total))"
        )
        # No selective word: the episodes holding every word of the query that the project has (as SQLite).
        ctes.append("all_words AS (SELECT string_agg(quote_literal(lexeme), ' & ') AS q FROM term_stats WHERE n > 0)")
        # Per query word its inverse document frequency in the project (BM25's, always positive), and the project's
        # average episode length.
        ctes.append(
            "weights AS MATERIALIZED (SELECT lexeme, GREATEST(ln((total - n + 0.5) / (n + 0.5)), 1e-6) AS idf, "
            "GREATEST(tokens / GREATEST(total, 1.0), 1.0) AS avgdl FROM term_stats)"
        )
        ctes.append(
            f"text_hits AS (SELECT e.id, {_TEXT_RANK} AS r FROM episodes e "
            f"WHERE {where} AND e.search_text @@ COALESCE((SELECT CAST(q AS tsquery) FROM selective), "
            "(SELECT CAST(q AS tsquery) FROM all_words), to_tsquery('english', :tsq)) ORDER BY r DESC LIMIT :pool)"
        )
        ctes.append("t AS (SELECT id, r / max(r) OVER () AS s FROM text_hits WHERE r > 0)")
        parts.append("t")
    if vector_retriever:
        distance = "(e.embedding <=> CAST(:qv AS vector))"
        ctes.append(
            f"approx AS MATERIALIZED (SELECT e.id, {distance} AS d FROM episodes e "
            "WHERE (SELECT episodes FROM project_episode_counts WHERE project_id = :p) > "
            f"{int(exact_scan_max)} AND {where}{model} AND e.embedding IS NOT NULL "
            "ORDER BY e.embedding <=> CAST(:qv AS vector) "
            "LIMIT :vpool)"
        )
        ctes.append(
            f"exact AS MATERIALIZED (SELECT e.id, {distance} AS d FROM episodes e "
            f"WHERE (SELECT count(*) FROM approx) < :limit AND {where}{model} AND e.embedding IS NOT NULL "
            f"ORDER BY {distance} + 0 LIMIT :vpool)"
        )
        ctes.append(
            "vector_hits AS (SELECT id, d FROM exact UNION ALL "
            "SELECT id, d FROM approx WHERE NOT EXISTS (SELECT 1 FROM exact))"
        )
        ctes.append(f"kept AS (SELECT id, 1.0 - d AS cos FROM vector_hits WHERE 1.0 - d >= {MIN_COSINE})")
        ctes.append(f"v AS (SELECT id, LEAST(cos / GREATEST(max(cos) OVER (), {GOOD_COSINE}), 1.0) AS s FROM kept)")
        parts.append("v")
    if len(parts) == 1:
        # One retriever: the weighted average over it alone is its own score.
        ctes.append(f"fused AS (SELECT id, s AS rel FROM {parts[0]})")
    else:
        # Every candidate of either retriever gets both scores, computed for it: a text hit just outside the
        # vector pool still has its cosine, and the reverse (not a zero for being missed by the other list).
        cosine = "(1.0 - (e.embedding <=> CAST(:qv AS vector)))"
        same = "e.embedding_model = :model AND " if same_model else ""
        ctes.append(
            "scored AS (SELECT e.id, "
            f"COALESCE(LEAST({_TEXT_RANK} "
            "/ NULLIF((SELECT max(r) FROM text_hits), 0), 1.0), 0.0) AS ts, "
            f"CASE WHEN {same}{cosine} >= {MIN_COSINE} THEN "
            f"LEAST({cosine} / GREATEST((SELECT max(cos) FROM kept), {GOOD_COSINE}), 1.0) ELSE 0.0 END AS vs "
            "FROM (SELECT id FROM t UNION SELECT id FROM v) AS cand JOIN episodes e ON e.id = cand.id)"
        )
        # Weights of the retrievers that found anything (0 for one that found nothing: it has no say).
        wt = f"(CASE WHEN EXISTS (SELECT 1 FROM t) THEN {TEXT_WEIGHT} ELSE 0.0 END)"
        wv = f"(CASE WHEN EXISTS (SELECT 1 FROM v) THEN {VECTOR_WEIGHT} ELSE 0.0 END)"
        ctes.append(f"fused AS (SELECT id, (ts * {wt} + vs * {wv}) / GREATEST({wt} + {wv}, 1e-9) AS rel FROM scored)")
    recency = (
        "power(0.5, GREATEST(0.0, CAST(:now AS float8) - extract(epoch FROM e.created_at)::float8) "
        f"/ 86400.0 / {RECENCY_HALF_LIFE_DAYS})"
    )
    return (
        f"WITH {', '.join(ctes)} "
        f"SELECT {EPISODE_COLUMNS}, f.rel * (1.0 + {IMPORTANCE_WEIGHT} * e.importance_score "
        f"+ {RECENCY_WEIGHT} * {recency}) AS score "
        "FROM fused f JOIN episodes e ON e.id = f.id WHERE f.rel > 0 "
        "ORDER BY score DESC, e.id DESC LIMIT :limit"
    )


__all__ = ["PostgresStore", "search_sql", "ts_query", "vector_text"]
