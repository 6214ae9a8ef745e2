"""Where Redis fails over (Sentinel; a Cluster primary with a replica), a closing call (terminate, delete_session,
the operator's forget) answers only once a replica holds what it closed: a failover to that replica keeps the
session closed, or erased, instead of bringing it back open. The replica is stopped (SIGSTOP) while the call runs:
the call is seen blocked in ``WAIT`` on the primary, unanswered, before the replica comes back, and right after it
answers the replica holds the closed state. A replica that never acknowledges costs the wait and a warning, not the
call, and only once: the closes after it do not wait until one probes again, and a forget of many sessions waits
once for them all. Working-memory writes, pause and resume never wait, and standalone Redis never sends ``WAIT`` at all.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis import replication
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.conftest import new_scope
from tests.redis_servers import RedisClusterServers, RedisServer, SentinelServer
from tests.stalled_stores import frozen
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio

TIMEOUT = 4.0
"""``redis_timeout_seconds`` of these tests: a closing call waits up to half of it (2 s) for a replica."""


def in_sync(replica: RedisServer) -> None:
    client = replica.client()
    try:
        deadline = time.monotonic() + 15
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, str]]:
    """A primary, its replica, and a Sentinel monitoring them: (primary, replica, the Sentinel URL)."""
    primary = RedisServer(tmp_path / "primary").start()
    replica = RedisServer(tmp_path / "replica", extra=["--replicaof", "127.0.0.1", str(primary.port)])
    sentinel = SentinelServer(tmp_path / "sentinel", primary.port)
    try:
        replica.start()
        sentinel.start()
        in_sync(replica)
        yield primary, replica, sentinel.sentinel_url
    finally:
        for server in (sentinel, replica, primary):
            if server.process is not None:
                os.kill(server.process.pid, signal.SIGCONT)
            server.stop()


def blocked_in_wait(primary: RedisServer) -> bool:
    """Whether a client of ``primary`` is blocked in ``WAIT`` (``CLIENT LIST``: command wait, flag b)."""
    client = primary.client()
    try:
        return any(c["cmd"] == "wait" and "b" in c["flags"] for c in client.client_list())
    finally:
        client.close()


async def answers_after_the_replica_is_back(
    call: Callable[[], Awaitable[Any]], replica: RedisServer, primary: RedisServer
) -> None:
    """``call`` does not answer while ``replica`` is stopped: it is seen blocked in ``WAIT`` on ``primary`` (having
    sent its closing script before it, in one pipeline) without having answered; it answers once the replica is
    back."""
    done = anyio.Event()

    async def close() -> None:
        await call()
        done.set()

    assert replica.process is not None
    with frozen(replica.process.pid) as resume, anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(close)
            while not done.is_set():  # (polled: Redis does not tell when a client blocks)
                if blocked_in_wait(primary):
                    break
                await anyio.sleep(0.01)
            assert not done.is_set(), "the close answered before any replica had it"
            resume()
    assert done.is_set()


def ids(scope: Any) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def store_of(rt: MemoryRuntime) -> RedisWorkingStore:
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    return store


def waits(server: RedisServer) -> int:
    """How many ``WAIT`` commands ``server`` has run."""
    client = server.client()
    try:
        return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
    finally:
        client.close()


async def test_terminate_delete_and_forget_answer_once_the_replica_holds_the_close(
    sentinel_setup: tuple[RedisServer, RedisServer, str], db_url: str
) -> None:
    primary, replica, url = sentinel_setup
    settings = Settings(database_url=db_url, redis_url=url, redis_timeout_seconds=TIMEOUT, owner_tools=True)
    async with MemoryRuntime(settings) as rt:
        ended, deleted, forgotten = new_scope("ended"), new_scope("deleted"), new_scope("forgotten")
        for scope in (ended, deleted, forgotten):
            await rt.lifecycle.spawn(*ids(scope), initial_state={"secret": scope.session_id})
        keys = store_of(rt).keys
        read = replica.client()
        try:
            await answers_after_the_replica_is_back(partial_call(rt.lifecycle.terminate, *ids(ended)), replica, primary)
            assert read.get(keys(ended)[0]) == "t" and read.exists(keys(ended)[1]) == 0

            delete = partial_call(rt.control.delete_session, *ids(deleted))
            await answers_after_the_replica_is_back(delete, replica, primary)
            assert read.exists(*keys(deleted)) == 0

            forget = partial_call(rt.control.forget, forgotten.project_id, None, None, False)
            await answers_after_the_replica_is_back(forget, replica, primary)
            assert read.exists(*keys(forgotten)) == 0
        finally:
            read.close()
    assert waits(primary) >= 3


async def test_an_import_closing_a_terminated_session_in_its_switch_answers_once_the_replica_holds_it(
    sentinel_setup: tuple[RedisServer, RedisServer, str], db_url: str, tmp_path: Path
) -> None:
    """The import closes a terminated session that kept its keys in its switch (as terminate would): a failover to a
    replica without the switch would leave the session's kept keys staged, never to be read."""
    primary, replica, url = sentinel_setup
    scope = new_scope("ended")
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(*ids(scope), initial_state={"kept": 1})
        await rt.lifecycle.terminate(*ids(scope), cleanup_working=False)
        path = await export_to(rt, Selection(scope.project_id), tmp_path / "ended.jsonl")
    async with MemoryRuntime(Settings(database_url=db_url, redis_url=url, redis_timeout_seconds=TIMEOUT)) as rt:
        assert rt.transfer is not None
        await answers_after_the_replica_is_back(partial_call(rt.transfer.import_file, path), replica, primary)
        read = replica.client()
        try:
            assert read.get(store_of(rt).keys(scope)[0]) == "t" and read.hget(store_of(rt).keys(scope)[1], "kept")
        finally:
            read.close()


def partial_call(fn: Callable[..., Awaitable[Any]], *args: Any) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return await fn(*args)

    return call


async def test_a_replica_that_never_acknowledges_costs_the_wait_and_a_warning(
    sentinel_setup: tuple[RedisServer, RedisServer, str], db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    primary, replica, url = sentinel_setup
    settings = Settings(database_url=db_url, redis_url=url, redis_timeout_seconds=TIMEOUT)
    async with MemoryRuntime(settings) as rt:
        scope = new_scope()
        await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
        assert replica.process is not None
        with frozen(replica.process.pid), caplog.at_level(logging.WARNING):
            started = time.monotonic()
            result = await rt.lifecycle.terminate(*ids(scope))
            took = time.monotonic() - started
        assert result.success  # the close is done (durably, and on the primary)
        assert took >= TIMEOUT / 2 - 0.1
        assert any("no Redis replica acknowledged the clear" in r.getMessage() for r in caplog.records)
        admin = primary.client()
        assert admin.get(store_of(rt).keys(scope)[0]) == "t"
        admin.close()


async def test_working_memory_writes_pause_and_resume_never_wait(
    sentinel_setup: tuple[RedisServer, RedisServer, str], db_url: str
) -> None:
    primary, _, url = sentinel_setup
    async with MemoryRuntime(Settings(database_url=db_url, redis_url=url)) as rt:
        scope = new_scope()
        await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
        await rt.working.set(scope, "b", 2)
        await rt.working.delete(scope, "a")
        await rt.lifecycle.pause(*ids(scope))
        await rt.lifecycle.resume(*ids(scope))
    assert waits(primary) == 0


async def test_standalone_redis_never_waits(tmp_path: Path, db_url: str) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        settings = Settings(database_url=db_url, redis_url=server.url, owner_tools=True)
        async with MemoryRuntime(settings) as rt:
            one, two = new_scope("one"), new_scope("two")
            for scope in (one, two):
                await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
            await rt.lifecycle.terminate(*ids(one))
            await rt.control.delete_session(*ids(two))
            await rt.control.forget(one.project_id, None, None, False)
        assert waits(server) == 0
    finally:
        server.stop()


async def test_a_cluster_close_answers_once_the_slots_replica_holds_it(tmp_path: Path, db_url: str) -> None:
    cluster = RedisClusterServers(tmp_path / "cluster", nodes=6, replicas=1).start()
    try:
        settings = Settings(
            database_url=db_url, redis_url=cluster.url, redis_cluster=True, redis_timeout_seconds=TIMEOUT
        )
        async with MemoryRuntime(settings) as rt:
            ended, deleted = new_scope("ended"), new_scope("deleted")
            for scope in (ended, deleted):
                await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
            keys = store_of(rt).keys
            replica, primary = cluster.replica_of(keys(ended)[0]), cluster.primary_of(keys(ended)[0])
            terminate = partial_call(rt.lifecycle.terminate, *ids(ended))
            await answers_after_the_replica_is_back(terminate, replica, primary)
            read = redis.Redis(port=replica.port, decode_responses=True)
            read.readonly()
            assert read.get(keys(ended)[0]) == "t"
            read.close()

            replica, primary = cluster.replica_of(keys(deleted)[0]), cluster.primary_of(keys(deleted)[0])
            delete = partial_call(rt.control.delete_session, *ids(deleted))
            await answers_after_the_replica_is_back(delete, replica, primary)
            read = redis.Redis(port=replica.port, decode_responses=True)
            read.readonly()
            assert read.exists(*keys(deleted)) == 0
            read.close()

            # forget's erase of sessions over every primary: one pipeline, one WAIT per primary (three at most).
            project = uuid.uuid4()
            forgotten = [Scope(project, uuid.uuid4(), f"s{i}") for i in range(8)]
            for scope in forgotten:
                await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
            before = sum(waits(server) for server in cluster.servers)
            report = await rt.control.forget(project, None, None, False)
            assert report["redis_sessions"] == 8
            assert 1 <= sum(waits(server) for server in cluster.servers) - before <= 3
            for scope in forgotten:
                read = redis.Redis(port=cluster.replica_of(keys(scope)[0]).port, decode_responses=True)
                read.readonly()
                assert read.exists(*keys(scope)) == 0
                read.close()
    finally:
        for server in cluster.servers:
            if server.process is not None:
                os.kill(server.process.pid, signal.SIGCONT)
        cluster.stop()


async def test_a_forget_of_many_sessions_waits_for_the_replica_once(
    sentinel_setup: tuple[RedisServer, RedisServer, str], db_url: str
) -> None:
    primary, replica, url = sentinel_setup
    settings = Settings(database_url=db_url, redis_url=url, redis_timeout_seconds=TIMEOUT)
    async with MemoryRuntime(settings) as rt:
        project = uuid.uuid4()
        scopes = [Scope(project, uuid.uuid4(), f"s{i}") for i in range(6)]
        for scope in scopes:
            await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
        before = waits(primary)
        report = await rt.control.forget(project, None, None, False)
        assert report["redis_sessions"] == 6
        assert waits(primary) == before + 1  # one WAIT after the six erases, in one pipeline
        read = replica.client()
        try:
            assert not any(read.exists(*store_of(rt).keys(scope)) for scope in scopes)
        finally:
            read.close()


async def test_after_a_replica_missed_a_close_the_next_closes_do_not_wait_until_one_probes_again(
    sentinel_setup: tuple[RedisServer, RedisServer, str],
    db_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    primary, replica, url = sentinel_setup
    pause = 5.0
    monkeypatch.setattr(replication, "UNACKED_PAUSE_SECONDS", pause, raising=False)
    settings = Settings(database_url=db_url, redis_url=url, redis_timeout_seconds=TIMEOUT, owner_tools=True)
    wait = TIMEOUT / 2
    async with MemoryRuntime(settings) as rt:
        project = uuid.uuid4()
        forgotten = [Scope(project, uuid.uuid4(), f"f{i}") for i in range(6)]
        later = [new_scope(f"l{i}") for i in range(4)]
        for scope in (*forgotten, *later):
            await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
        assert replica.process is not None
        with frozen(replica.process.pid) as resume, caplog.at_level(logging.INFO, logger=replication.__name__):
            started = time.monotonic()
            await rt.control.forget(project, None, None, False)
            took = time.monotonic() - started
            # One wait for the six sessions; a wait per session would take 6 x 2 s.
            assert wait - 0.1 <= took < len(forgotten) * wait / 2
            sent = waits(primary)
            started = time.monotonic()
            await rt.lifecycle.terminate(*ids(later[0]))
            await rt.control.delete_session(*ids(later[1]))
            assert time.monotonic() - started < wait  # neither waited for the replica that missed the forget
            assert waits(primary) == sent
            unacked = [r for r in caplog.records if "no Redis replica acknowledged" in r.getMessage()]
            assert len(unacked) == 1 and "erase of 6 sessions" in unacked[0].getMessage()

            resume()
            await anyio.sleep(pause)
            await rt.lifecycle.terminate(*ids(later[2]))  # past the pause, a close waits again, and is acknowledged
            assert waits(primary) == sent + 1
            assert any("acknowledges closes again" in r.getMessage() for r in caplog.records)
            await rt.lifecycle.terminate(*ids(later[3]))
            assert waits(primary) == sent + 2
