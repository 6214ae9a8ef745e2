"""Shared fixtures: real stores on temporary files, a controllable clock, MCP clients.

The store fixtures are parametrised by adapter name; the Redis and Postgres adapters join the contract
suite by adding their names to ``WORKING_ADAPTERS`` / ``DURABLE_ADAPTERS`` and a branch to ``make_store``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.ports import DurableStore, EventRecord, Limits, WorkingStore
from mcp_memory.stores.sqlite.store import SqliteStore
from tests.http_helpers import Inbox
from tests.redis_servers import RedisServer, delete_keys, make_redis_store, shared_redis_url, unique_prefix
from tests.stalled_stores import PrivatePostgres
from tests.store_settings import settings_for
from tests.transfer_helpers import small_export

# The suite exercises every tool, the owner tools included (off by default, see Settings.owner_tools); tests of the
# default tool list pass owner_tools=False themselves. Set in the environment so `mcp-memory serve` subprocesses
# the tests start inherit it.
os.environ.setdefault("MCP_MEMORY_OWNER_TOOLS", "true")

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
async def servers_on_one_clock(settings: Settings, clock: FakeClock) -> AsyncIterator[tuple[MemoryRuntime, ...]]:
    """Two runtimes on the test backend's stores (``settings``), both on the fake clock: two servers."""
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        yield a, b


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No inherited MCP_MEMORY_* variables and no user config file: settings are only what the test gives."""
    for name in list(os.environ):
        if name.startswith("MCP_MEMORY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MCP_MEMORY_CONFIG", "")
    return monkeypatch


def configure(env: pytest.MonkeyPatch, tmp_path: Path, where: str, **values: str) -> None:
    """Settings given where an operator gives them: ``where="env"``, as ``MCP_MEMORY_<NAME>`` variables;
    ``"file"``, in a config file under ``tmp_path`` (a value that starts with a digit bare, any other a TOML
    string). A name with ``__`` is a table's key, as in the variables (``http__port``: ``port`` under ``[http]``)."""
    if where == "env":
        for name, value in values.items():
            env.setenv(f"MCP_MEMORY_{name.upper()}", value)
        return
    tables: dict[str, str] = {}
    for name, value in values.items():
        table, _, key = name.rpartition("__")
        tables[table] = tables.get(table, "") + f"{key} = {value if value[:1].isdigit() else json.dumps(value)}\n"
    cfg = tmp_path / "config.toml"
    cfg.write_text("".join(f"[{table}]\n{lines}" if table else lines for table, lines in sorted(tables.items())))
    env.setenv("MCP_MEMORY_CONFIG", str(cfg))


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"


def made_sqlite_file(url: str) -> str:
    """The SQLite file of ``url`` created at today's schema, as a first ``serve`` leaves it (``doctor`` and
    ``export`` only read a file, and say so when there is none); returns ``url``."""
    from mcp_memory.stores.sqlite.upgrade import prepare, sqlite_file

    path = sqlite_file(url)
    assert path is not None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    prepare(path)
    return url


# -- backends: where a runtime test's memory lives ----------------------------------------------------------
BACKENDS = ("sqlite", "redis", "postgres")
"""``sqlite``: everything in the test's SQLite file. ``redis``: working memory in the shared test Redis (a fresh key
prefix, deleted afterwards), durable state in the SQLite file (the two-step lifecycle). ``postgres``: everything in a
fresh Postgres database with pgvector (async tests only)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backends(*names): run the test once per backend named (see tests/conftest.py BACKENDS) through the "
        "settings, make_settings and runtime fixtures; the closest marker wins (a test can narrow its module's)",
    )


# -- pytest-xdist: what runs on one worker ------------------------------------------------------------------
WALL_CLOCK_TESTS = (
    "tests/test_serve_stops_on_signals.py::",
    "tests/test_stalled_store_refused_within_call_deadline.py::",
    "tests/test_a_completion_prompt_and_read_on_a_stalled_store_answer_within_the_call_deadline.py::",
    "tests/test_terminate_cut_off_by_redis_stall_does_not_lock_session.py::",
    "tests/test_http_idle_connections_do_not_starve_authenticated_calls.py::",
    "tests/test_http_read_timeouts_close_slow_clients.py::",
    "tests/test_call_deadline_does_not_count_embedding_time.py::",
    "tests/test_hooks.py::test_hanging_hook_is_cancelled_after_the_timeout",
    "tests/test_backfill.py::test_a_slow_provider_does_not_hold_up_recording",
    "tests/test_http.py::test_slow_and_vanished_clients_do_not_hold_up_others",
    "tests/test_http.py::test_connections_past_the_cap_shed_the_idle_ones_and_get_503_when_all_are_busy",
    "tests/test_redis_store.py::test_redis_stopping_mid_session_is_unavailable_then_recovers",
    "tests/test_redis_store.py::test_a_redis_that_accepts_but_never_answers_is_unavailable_promptly",
    "tests/test_a_subscriber_that_stops_reading_does_not_slow_other_callers.py::",
    "tests/test_a_session_past_its_calls_in_flight_is_refused_at_once.py::",
)
"""Tests that assert a wall-clock bound (a stop, a refusal or a cut-off within N seconds). Under pytest-xdist they
run one after another on one worker, so that two of them never compete for the CPU with each other."""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the test Postgres this process started (in each pytest-xdist worker too): see ``pg_servers.stop_server``."""
    from tests import pg_servers

    pg_servers.stop_server()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``--dist loadgroup`` (pyproject's addopts): the tests of the local model on one worker, which loads it
    once (a session fixture is per worker), and the wall-clock tests on one worker (see ``WALL_CLOCK_TESTS``)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if "minilm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("minilm"))
        elif item.nodeid.startswith(WALL_CLOCK_TESTS):
            item.add_marker(pytest.mark.xdist_group("wall_clock"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None and "backend" in metafunc.fixturenames:
        unknown = set(marker.args) - set(BACKENDS)
        assert marker.args and not unknown, f"backends{marker.args}: unknown {unknown}"
        metafunc.parametrize("backend", marker.args, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of this test run: one of ``@pytest.mark.backends(...)``'s names, SQLite for unmarked tests."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix on the shared test Redis; its keys are deleted afterwards."""
    prefix = unique_prefix()
    yield prefix
    delete_keys(shared_redis_url(), prefix)


@pytest.fixture(autouse=True)
def postgres_retention_counts_stay_exact() -> Iterator[None]:
    """After every test that made a Postgres database: each session's retention counts (migration 0011) equal a
    count of its rows, whatever the test wrote (a writer that forgets to count fails the test that uses it). Then
    the databases the test made are dropped (``drop_made_since``), so a run's disk use stays that of a few tests."""
    from tests import pg_servers

    mark = pg_servers.databases_made()
    yield
    try:
        drift = pg_servers.count_drift_since(mark)
    finally:
        pg_servers.drop_made_since(mark)
    assert not drift, f"sessions whose retention counts are not their rows' (pk, stored, stored, rows, rows): {drift}"


@pytest.fixture
async def postgres_database_url() -> str:
    """A fresh Postgres database at the head revision (pgvector, 256-wide vectors)."""
    from tests import pg_servers

    return pg_servers.database_url(await pg_servers.migrated_database())


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """Settings both of ``two_servers`` take besides their stores' (a test overrides it by parametrizing it)."""
    return {}


@pytest.fixture(params=["sqlite", "postgres"])
async def two_servers(
    request: pytest.FixtureRequest, db_url: str, server_settings: dict[str, Any]
) -> AsyncIterator[tuple[MemoryRuntime, MemoryRuntime]]:
    """Two runtimes on one Redis key prefix and one durable store (SQLite or Postgres): two servers of one
    deployment, for races that no in-process lock orders."""
    from tests import pg_servers

    url = db_url if request.param == "sqlite" else pg_servers.database_url(await pg_servers.migrated_database())
    prefix = unique_prefix()
    settings = Settings(database_url=url, redis_url=shared_redis_url(), redis_key_prefix=prefix, **server_settings)
    try:
        async with MemoryRuntime(settings) as a, MemoryRuntime(settings) as b:
            yield a, b
    finally:
        delete_keys(shared_redis_url(), prefix)


@pytest.fixture
def backend_settings(backend: str, db_url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings that put a runtime on ``backend`` (the others are the defaults)."""
    if backend == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        return {"database_url": db_url, "redis_url": shared_redis_url(), "redis_key_prefix": prefix}
    if backend == "postgres":
        return {"database_url": request.getfixturevalue("postgres_database_url")}
    return {"database_url": db_url}


@pytest.fixture
def settings(backend_settings: dict[str, Any]) -> Settings:
    return Settings(**backend_settings)


@pytest.fixture(params=["sqlite", "redis+sqlite", "postgres", "redis+postgres"])
async def settings_on_every_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings on each pair of stores in turn (``tests/store_settings.py``), the one pair ``backends`` leaves out
    (Redis + Postgres) included."""
    async with settings_for(request.param, tmp_path) as settings:
        yield settings


@pytest.fixture
def make_settings(backend_settings: dict[str, Any]) -> Callable[..., Settings]:
    """Settings on the test's backend with overrides, e.g. ``make_settings(max_keys_per_session=5)``."""

    def make(**overrides: Any) -> Settings:
        return Settings(**{**backend_settings, **overrides})

    return make


@pytest.fixture
async def runtime(settings: Settings, clock: FakeClock) -> AsyncIterator[MemoryRuntime]:
    """A started runtime on a fresh SQLite file, with the fake clock."""
    async with MemoryRuntime(settings, clock=clock) as rt:
        yield rt


@pytest.fixture
def server(runtime: MemoryRuntime) -> MemoryServer:
    """The MCP server on ``runtime``."""
    return create_server(runtime=runtime)


@pytest.fixture
def inbox() -> Inbox:
    """The notifications ``client`` receives."""
    return Inbox()


@pytest.fixture
async def client(server: MemoryServer, inbox: Inbox) -> AsyncIterator[Client]:
    """The SDK's in-process client of ``server`` (legacy mode: the request/response protocol), noting the
    notifications it receives in ``inbox`` (the SDK's own handler drops them)."""
    async with Client(server, mode="legacy", message_handler=inbox) as c:
        yield c


@pytest.fixture
async def exported(tmp_path: Path) -> tuple[uuid.UUID, Path]:
    """A small project exported from its own SQLite file (``transfer_helpers.small_export``): its id and the file. A
    module whose tests import a larger project defines its own."""
    return await small_export(tmp_path)


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


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (never the shared one), for a test that stops it (SIGSTOP) or runs two servers'
    runtimes on one Redis."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A Postgres of the test module's own (pgserver), migrated, that a test may freeze (tests/stalled_stores.py)."""
    pytest.importorskip("pgserver")
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.close()
