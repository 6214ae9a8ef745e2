"""Shared fixtures: real stores on temporary files, a controllable clock, MCP clients.

The store fixtures are parametrised by adapter name; the Redis and Postgres adapters join the contract
suite by adding their names to ``WORKING_ADAPTERS`` / ``DURABLE_ADAPTERS`` and a branch to ``make_store``.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.runtime import MemoryRuntime
from mcp_memory.stores.ports import DurableStore, EventRecord, Limits, WorkingStore
from mcp_memory.stores.sqlite import SqliteStore
from tests.redis_servers import make_redis_store

WORKING_ADAPTERS = ["sqlite", "postgres", "redis"]
DURABLE_ADAPTERS = ["sqlite", "postgres"]
SQL_ADAPTERS = {"sqlite", "postgres"}
"""Adapters whose working store is the durable store's own tables: they pair only with themselves."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The local all-MiniLM-L6-v2 provider (extra ``local-embeddings``), loaded once per test session."""
    import torch

    from mcp_memory.embeddings import SentenceTransformerEmbedding

    # One intra-op thread: texts come one or a few at a time, and on a busy machine (tests of other
    # checkouts running) two spinning OpenMP threads per call are several times slower than one.
    torch.set_num_threads(1)
    provider = SentenceTransformerEmbedding()
    # Loaded with the network refused: the default model must never ask a model hub (HF_HUB_OFFLINE unset or not).
    saved = socket.socket.connect, socket.create_connection, socket.getaddrinfo

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the local embedding model tried the network: {args!r}")

    socket.socket.connect, socket.create_connection, socket.getaddrinfo = refuse, refuse, refuse  # type: ignore[method-assign]
    try:
        provider.warm_up()
        provider._encode(["warm up"])
    finally:
        socket.socket.connect, socket.create_connection, socket.getaddrinfo = saved  # type: ignore[method-assign]
    return provider


class FakeClock:
    """A clock tests move by hand (epoch seconds), so TTL tests need no sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.now = start if start is not None else time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url)


@pytest.fixture
def make_settings(db_url: str) -> Callable[..., Settings]:
    """Settings on the test's database with overrides, e.g. ``make_settings(max_keys_per_session=5)``."""

    def make(**overrides: Any) -> Settings:
        return Settings(**{"database_url": db_url, **overrides})

    return make


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[MemoryRuntime]:
    """A started runtime on a fresh SQLite file, with the fake clock."""
    async with MemoryRuntime(settings, clock=clock) as rt:
        yield rt


def new_scope(session_id: str = "s1") -> Scope:
    """A scope with fresh random project and agent ids."""
    return Scope(uuid.uuid4(), uuid.uuid4(), session_id)


async def statements_per_lifecycle_call(
    rt: MemoryRuntime, statements: list[str], sizes: tuple[int, ...] = (10, 2000)
) -> list[dict[str, int]]:
    """For a session of each size (keys in its initial state): the SQL statements spawn, pause, resume and
    terminate each send through the store's SQLAlchemy engine, noted in ``statements`` (which a caller may also
    feed from elsewhere, e.g. the statements a store sends to its driver directly)."""
    from sqlalchemy import event

    engine = rt.store._require_engine().sync_engine  # type: ignore[attr-defined]

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async def costs_for(n: int) -> dict[str, int]:
        scope = new_scope(f"s{n}")
        p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
        per_op: dict[str, int] = {}
        statements.clear()
        await rt.lifecycle.spawn(p, a, s, initial_state={f"k{i}": i for i in range(n)})
        per_op["spawn"] = len(statements)
        for op in ("pause", "resume", "terminate"):
            statements.clear()
            await getattr(rt.lifecycle, op)(p, a, s)
            per_op[op] = len(statements)
        return per_op

    event.listen(engine, "before_cursor_execute", count)
    try:
        return [await costs_for(n) for n in sizes]
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture
def scope() -> Scope:
    return new_scope()


# -- the contract suite's store pair ---------------------------------------------------------------------
async def make_store(name: str, tmp_path: Path, durable: Any = None, *, embedding_dimension: int = 256) -> Any:
    """A started store of the named adapter, empty as far as the test can tell (fresh ids per test).
    ``durable``: the durable store a working store consults (Redis re-opens sessions it lost from it).
    ``embedding_dimension``: the width of the vectors the test stores (Postgres fixes it in its schema)."""
    if name == "redis":
        return await make_redis_store(durable)
    if name == "sqlite":
        store = SqliteStore(f"sqlite+aiosqlite:///{tmp_path / 'contract.db'}")
        await store.start()
        return store
    if name == "postgres":
        from tests.pg_servers import fresh_postgres_store

        return await fresh_postgres_store(embedding_dimension)
    raise ValueError(f"unknown adapter {name}")


class StorePair:
    """A working store and a durable store, as one runtime would use them."""

    def __init__(self, working: WorkingStore, durable: DurableStore) -> None:
        self.working = working
        self.durable = durable
        self.limits = Limits(max_keys=100)

    async def open_session(self, scope: Scope, now: float, items: dict[str, Any] | None = None) -> None:
        """Create the session in the durable store and open its working memory."""
        event = EventRecord("spawn", now, 0.0, "ok", {})
        await self.durable.create_session(scope, None, {}, now, event)
        await self.working.open(scope, items or {}, now, self.limits)


@pytest.fixture(
    params=[(w, d) for w in WORKING_ADAPTERS for d in DURABLE_ADAPTERS if w == d or w not in SQL_ADAPTERS],
    ids=lambda p: f"{p[0]}+{p[1]}",
)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorePair]:
    working_name, durable_name = request.param
    durable = await make_store(durable_name, tmp_path)
    working = durable if working_name == durable_name else await make_store(working_name, tmp_path, durable)
    try:
        yield StorePair(working, durable)
    finally:
        await durable.close()
        if working is not durable:
            await working.close()
