"""What only the Redis working store has to show: round trips that do not grow with keys, a real Cluster,
Redis going away and coming back (with and without its data), memory reclaim, sessions Redis lost.

Private ``redis-server`` processes (started here, on free loopback ports, killed afterwards) are used where a
test stops Redis, counts its commands or needs a cluster; the rest runs on the shared test Redis under a
unique key prefix.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from mcp import Client

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import ConfigurationError, Conflict, NotFound, Unavailable
from mcp_memory.models import Item, Scope
from mcp_memory.server import create_server
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.connection import check_redis_settings, connect
from mcp_memory.stores.redis.scripts import RECLAIM_MARGIN_MS, TOMBSTONE_MS, incarnation
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, made_sqlite_file, new_scope
from tests.redis_servers import (
    RedisClusterServers,
    RedisServer,
    SentinelServer,
    delete_keys,
    free_port,
    shared_redis_url,
    unique_prefix,
)

pytestmark = pytest.mark.anyio

# The commands our Lua scripts run; any other command (but INFO, which the test sends) is a round trip.
# docs/configuration.md and config/redis.conf list them for an ACL user (tests/test_the_documented_redis_acl_...).
SCRIPT_COMMANDS = {
    "get", "set", "exists", "del", "hget", "hset", "hdel", "hlen", "hexists", "hkeys", "hgetall",
    "zadd", "zrem", "zscore", "zrange", "zrangebyscore", "zcard", "zcount", "pexpire", "persist",
    "rename", "copy", "pttl", "hmget", "setrange", "time",
}  # fmt: skip


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def shared_runtime(db_url: str, clock: FakeClock) -> AsyncIterator[MemoryRuntime]:
    prefix = unique_prefix()
    settings = Settings(database_url=db_url, redis_url=shared_redis_url(), redis_key_prefix=prefix)
    try:
        async with MemoryRuntime(settings, clock=clock) as rt:
            yield rt
    finally:
        delete_keys(shared_redis_url(), prefix)


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def redis_store(rt: MemoryRuntime) -> RedisWorkingStore:
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    return store


# -- round trips ---------------------------------------------------------------------------------------------
def top_level_requests(stats: dict[str, Any]) -> dict[str, int]:
    """Calls per command from ``INFO commandstats``, without the commands scripts run and INFO itself."""
    out = {}
    for name, row in stats.items():
        command = name.removeprefix("cmdstat_")
        if command not in SCRIPT_COMMANDS and command != "info":
            out[command] = int(row["calls"])
    return out


async def test_round_trips_per_lifecycle_call_do_not_grow_with_keys(
    private_redis: RedisServer, db_url: str, clock: FakeClock
) -> None:
    admin = private_redis.client()
    settings = Settings(database_url=db_url, redis_url=private_redis.url, max_keys_per_session=10_000)
    measured: dict[int, dict[str, tuple[int, int]]] = {}
    async with MemoryRuntime(settings, clock=clock) as rt:
        store = redis_store(rt)
        for n in (10, 10_000):
            scope = new_scope(f"s{n}")
            state = {f"key-{i:05d}": "v" * 90 for i in range(n)}
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "spawn": partial(rt.lifecycle.spawn, *ids(scope), initial_state=state),
                "memory_set": partial(rt.working.set, scope, "key-00000", {"changed": True}),
                "pause": partial(rt.lifecycle.pause, *ids(scope)),
                "resume": partial(rt.lifecycle.resume, *ids(scope)),
                "terminate": partial(rt.lifecycle.terminate, *ids(scope)),
            }
            measured[n] = {}
            for name, call in calls.items():
                client_before = store.round_trips
                server_before = top_level_requests(admin.info("commandstats"))
                await call()
                server_after = top_level_requests(admin.info("commandstats"))
                server = sum(server_after.values()) - sum(server_before.values())
                measured[n][name] = (store.round_trips - client_before, server)
            assert await rt.working.list_keys(scope) == []  # terminate cleared it: the calls did their work
    admin.close()
    # (client-side count, server-side count): the same for 10 and 10,000 keys, and what the design says (spawn:
    # stage the initial state, then commit it once the durable session is complete; see services/staged_spawn.py;
    # pause: the snapshot, which also copies a state of 250 keys or more, named in the checkpoint's record, see
    # stores/redis/copies.py; resume: the copy taken, or the small state restored).
    expected = {"spawn": (2, 2), "memory_set": (1, 1), "pause": (1, 1), "resume": (1, 1), "terminate": (3, 3)}
    assert measured[10] == expected, measured
    assert measured[10_000] == expected, measured


async def test_a_forgotten_script_is_sent_again(private_redis: RedisServer, db_url: str) -> None:
    settings = Settings(database_url=db_url, redis_url=private_redis.url)
    async with MemoryRuntime(settings) as rt:
        scope = new_scope()
        await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
        admin = private_redis.client()
        admin.script_flush()
        admin.close()
        before = redis_store(rt).round_trips
        assert await rt.working.get(scope, "a") == 1
        # EVALSHA -> NOSCRIPT, then SCRIPT LOAD and EVALSHA again (redis-py's script object)
        assert redis_store(rt).round_trips - before == 3
        before = redis_store(rt).round_trips
        assert await rt.working.get(scope, "a") == 1
        assert redis_store(rt).round_trips - before == 1


# -- Cluster -------------------------------------------------------------------------------------------------
async def test_lifecycle_on_a_three_node_cluster(tmp_path: Path, db_url: str) -> None:
    cluster = RedisClusterServers(tmp_path / "cluster").start()
    try:
        settings = Settings(database_url=db_url, redis_url=cluster.url, redis_cluster=True)
        async with MemoryRuntime(settings) as rt:
            report = await rt.check()
            assert report["working"]["reachable"] is True
            assert report["working"]["mode"] == "cluster" and report["working"]["cluster_state"] == "ok"
            assert report["working"]["version"] and report["working"]["nodes"] == 3
            store = redis_store(rt)
            nodes: set[str] = set()
            for n in range(8):
                scope = new_scope(f"cluster-{n}")
                state = {f"k{i}": {"i": i} for i in range(50)}
                await rt.lifecycle.spawn(*ids(scope), initial_state=state)
                node = store.client.get_node_from_key(store.keys(scope)[1])
                nodes.add(node.name)
                # The values really are on that node, all three keys of the session in one slot.
                direct_client = redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True)
                assert direct_client.hlen(store.keys(scope)[1]) == 50
                assert len({direct_client.cluster("keyslot", k) for k in store.keys(scope)}) == 1
                direct_client.close()

                await rt.working.set(scope, "k0", "changed", ttl_seconds=600)
                paused = await rt.lifecycle.pause(*ids(scope))
                assert paused.data["items_saved"] == 50
                await rt.working.set(scope, "extra", 1)
                resumed = await rt.lifecycle.resume(*ids(scope))
                assert resumed.data["items_restored"] == 50
                assert await rt.working.get(scope, "k0") == "changed"
                assert "extra" not in await rt.working.list_keys(scope)
                done = await rt.lifecycle.terminate(*ids(scope))
                assert done.data["state_items_consolidated"] == 50 and done.data["items_cleared"] == 50
                assert await rt.working.list_keys(scope) == []
            assert len(nodes) >= 2, nodes
    finally:
        cluster.stop()


# -- Redis going away ------------------------------------------------------------------------------------------
async def call(c: Client, tool: str, **arguments: Any) -> tuple[bool, dict[str, Any] | str, float]:
    started = time.monotonic()
    result = await c.call_tool(tool, arguments)
    elapsed = time.monotonic() - started
    if result.is_error:
        return False, result.content[0].text, elapsed  # type: ignore[union-attr]
    assert result.structured_content is not None
    return True, result.structured_content, elapsed


async def ok(c: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    good, data, _ = await call(c, tool, **arguments)
    assert good, f"{tool}: {data}"
    assert isinstance(data, dict)
    return data


async def fails(c: Client, tool: str, code: str, **arguments: Any) -> str:
    good, text, _ = await call(c, tool, **arguments)
    assert not good and isinstance(text, str) and text.startswith(f"{code}: "), text
    return text


@pytest.mark.parametrize("keeps_data", [True, False], ids=["appendonly", "no-persistence"])
async def test_redis_stopping_mid_session_is_unavailable_then_recovers(
    tmp_path: Path, db_url: str, keeps_data: bool
) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=keeps_data).start()
    settings = Settings(database_url=db_url, redis_url=server.url, redis_timeout_seconds=0.5, redis_retries=1)
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    s1 = {"project_id": p, "agent_instance_id": a, "session_id": "s1"}
    s2 = {"project_id": p, "agent_instance_id": a, "session_id": "s2"}
    s3 = {"project_id": p, "agent_instance_id": a, "session_id": "s3"}
    done = {"project_id": p, "agent_instance_id": a, "session_id": "done"}
    try:
        app = create_server(settings)
        async with Client(app) as c:
            await ok(c, "spawn", **s1, initial_state={"goal": "ship", "step": 1})
            checkpoint = await ok(c, "pause", **s1)
            await ok(c, "memory_set", **s1, key="step", value=2)
            await ok(c, "spawn", **s3, initial_state={"plan": "a"})
            await ok(c, "pause", **s3)
            await ok(c, "memory_set", **s3, key="plan", value="b")
            await ok(c, "spawn", **done, initial_state={"x": 1})
            await ok(c, "terminate", **done, cleanup_working=False)

            server.stop()
            for tool, args in (
                ("memory_get", {**s1, "key": "step"}),
                ("memory_set", {**s1, "key": "step", "value": 3}),
                ("memory_delete", {**s1, "key": "step"}),
                ("memory_list", s1),
                ("pause", s1),
                ("resume", s1),
                ("terminate", s1),
                ("spawn", {**s2, "initial_state": {"a": 1}}),
            ):
                good, text, elapsed = await call(c, tool, **args)
                assert not good and isinstance(text, str), (tool, text)
                assert text.startswith("unavailable: ") and "Redis" in text and "Traceback" not in text, text
                assert elapsed < 3.0, (tool, elapsed)  # promptly: no hang
            # Every failed lifecycle call is recorded as such (terminate fails at its first step, the seal).
            events = await app.runtime.store.list_events(Scope.parse(p, a, "s1"), 100)
            failed = {e.event_type for e in events if e.outcome == "unavailable"}
            assert failed == {"pause", "resume", "terminate"}, events
            # The durable side of the failed calls is consistent: no checkpoint, no half-spawned session.
            assert len((await ok(c, "list_checkpoints", **s1))["checkpoints"]) == 1
            await fails(c, "list_checkpoints", "not_found", **s2)

            server.start()
            # The next call succeeds; what it sees depends on whether Redis kept its data.
            if keeps_data:
                assert (await ok(c, "memory_get", **s1, key="step"))["value"] == 2
                assert (await ok(c, "memory_get", **s3, key="plan"))["value"] == "b"
            else:
                # Redis forgot: resume restores the durable checkpoint into it...
                resumed = await ok(c, "resume", **s1)
                assert resumed["checkpoint_id"] == checkpoint["checkpoint_id"] and resumed["items_restored"] == 2
                assert (await ok(c, "memory_get", **s1, key="step"))["value"] == 1
                # ...and any other call re-opens a lost session from its newest checkpoint.
                await ok(c, "memory_set", **s3, key="other", value=True)
                assert (await ok(c, "memory_list", **s3))["keys"] == ["other", "plan"]
                assert (await ok(c, "memory_get", **s3, key="plan"))["value"] == "a"
            # A terminated session stays closed either way; a new session spawns.
            await fails(c, "memory_set", "conflict", **done, key="y", value=2)
            await ok(c, "spawn", **s2, initial_state={"a": 1})
            await ok(c, "memory_set", **s1, key="step", value=4)
            paused = await ok(c, "pause", **s1)
            assert paused["items_saved"] == 2
            finished = await ok(c, "terminate", **s1)
            assert finished["state_items_consolidated"] == 2
    finally:
        server.stop()


async def test_a_redis_that_accepts_but_never_answers_is_unavailable_promptly(db_url: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", free_port()))
        listener.listen(16)  # connections complete in the backlog, but nothing is ever read or answered
        port = listener.getsockname()[1]
        settings = Settings(
            database_url=db_url, redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout_seconds=0.2, redis_retries=1
        )
        async with MemoryRuntime(settings) as rt:
            scope = new_scope()
            started = time.monotonic()
            with pytest.raises(Unavailable, match="Redis"):
                await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
            assert time.monotonic() - started < 3.0
            assert await rt.store.get_session(scope) is None  # spawn left nothing behind
            report = await rt.check()
            assert report["working"]["reachable"] is False


# -- sessions Redis lost ---------------------------------------------------------------------------------------
async def test_a_lost_session_is_reopened_from_the_durable_store(shared_runtime: MemoryRuntime) -> None:
    rt = shared_runtime
    store = redis_store(rt)

    def lose(scope: Scope) -> None:
        """What a restart without persistence (or an eviction) does to one session."""
        admin = redis.Redis.from_url(shared_redis_url())
        admin.delete(*store.keys(scope))
        admin.close()

    # Running, paused once, changed since: re-opened with the newest checkpoint.
    paused = new_scope("paused")
    await rt.lifecycle.spawn(*ids(paused), initial_state={"a": 1, "b": 2})
    await rt.lifecycle.pause(*ids(paused))
    await rt.working.set(paused, "a", 10)
    lose(paused)
    assert await rt.working.get(paused, "a") == 1
    assert await rt.working.list_keys(paused) == ["a", "b"]

    # Never paused: re-opened empty, and writable.
    fresh = new_scope("fresh")
    await rt.lifecycle.spawn(*ids(fresh), initial_state={"a": 1})
    lose(fresh)
    await rt.working.set(fresh, "z", 26)
    assert await rt.working.list_keys(fresh) == ["z"]

    # A pause of a lost session checkpoints what a resume would give, never a silent empty state.
    lose(paused)
    again = await rt.lifecycle.pause(*ids(paused))
    assert again.data["items_saved"] == 2
    # A terminate of a lost session consolidates its newest checkpoint.
    lose(paused)
    finished = await rt.lifecycle.terminate(*ids(paused))
    assert finished.data["state_items_consolidated"] == 2

    # Terminated stays terminated; unknown stays unknown.
    kept = new_scope("kept")
    await rt.lifecycle.spawn(*ids(kept), initial_state={"a": 1})
    await rt.lifecycle.terminate(*ids(kept), cleanup_working=False)
    with pytest.raises(Conflict, match="is terminated"):
        await rt.working.set(kept, "b", 2)  # Redis still has it (sealed)
    lose(kept)
    with pytest.raises(Conflict, match="is terminated"):
        await rt.working.set(kept, "b", 2)
    assert await rt.working.list_keys(kept) == []
    with pytest.raises(NotFound):
        await rt.working.set(new_scope(), "a", 1)


def lose(store: RedisWorkingStore, scope: Scope) -> None:
    """What a restart of Redis without persistence (or an eviction) does to one session."""
    admin = redis.Redis.from_url(shared_redis_url())
    admin.delete(*store.keys(scope))
    admin.close()


async def test_a_write_landing_while_spawn_is_under_way_is_not_found(shared_runtime: MemoryRuntime) -> None:
    """spawn creates the session durably (incomplete), then stages its initial state in Redis, then completes it.
    A write in between finds no session (`not_found`, nothing written): the session exists once spawn completes,
    with exactly its initial state."""
    rt = shared_runtime
    scope = new_scope()
    refused: list[str] = []

    async def write_mid_spawn(point: str) -> None:
        if point in ("spawn.begun", "spawn.staged"):
            with pytest.raises(NotFound):
                await rt.working.set(scope, "early", "written before spawn returned")
            with pytest.raises(NotFound):
                await rt.working.list_keys(scope)
            refused.append(point)

    with faults.on_fault(write_mid_spawn):
        await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1, "early": "initial"})
    assert refused == ["spawn.begun", "spawn.staged"]
    assert await rt.working.state(scope) == {"a": 1, "early": "initial"}
    await rt.lifecycle.pause(*ids(scope))
    assert (await rt.lifecycle.terminate(*ids(scope))).data["state_items_consolidated"] == 2


async def test_a_spawn_that_cannot_stage_in_redis_leaves_nothing(shared_runtime: MemoryRuntime) -> None:
    """Redis times out as spawn stages its initial state: spawn undoes its durable record and its staged state,
    so no session is left behind (writes `not_found`) and a retry of spawn succeeds at once, clean."""
    rt = shared_runtime
    scope = new_scope()

    async def redis_fails(point: str) -> None:
        if point == "spawn.staged":
            raise Unavailable("Redis is not reachable or not answering (TimeoutError); retry later")

    with faults.on_fault(redis_fails), pytest.raises(Unavailable):
        await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1, "b": 2})
    assert await rt.store.get_session(scope) is None
    with pytest.raises(NotFound):
        await rt.working.set(scope, "late", 1)
    with pytest.raises(NotFound):  # an unknown session
        await rt.working.list_keys(scope)
    with redis.Redis.from_url(shared_redis_url()) as admin:
        assert admin.exists(*redis_store(rt).keys(scope)) == 0  # the staged state went too
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
    assert await rt.working.state(scope) == {"a": 1}


async def test_a_terminate_landing_while_spawn_is_under_way_is_not_found(db_url: str, clock: FakeClock) -> None:
    """Another server terminates the session while spawn is between its steps: the session does not exist yet
    (`not_found`, nothing recorded), and the spawn completes, running, with its initial state."""
    prefix = unique_prefix()
    settings = Settings(database_url=db_url, redis_url=shared_redis_url(), redis_key_prefix=prefix)
    try:
        async with MemoryRuntime(settings, clock=clock) as rt, MemoryRuntime(settings, clock=clock) as other:
            scope = new_scope()

            async def terminate_mid_spawn(point: str) -> None:
                if point in ("spawn.begun", "spawn.staged"):
                    with pytest.raises(NotFound):
                        await other.lifecycle.terminate(*ids(scope))

            with faults.on_fault(terminate_mid_spawn):
                await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
            session = await rt.store.get_session(scope)
            assert session is not None and session.status == "running" and not session.sealed
            assert [e.event_type for e in await rt.store.list_events(scope, 10)] == ["spawn"]
            assert await other.working.state(scope) == {"a": 1}
            await other.working.set(scope, "b", 2)
    finally:
        delete_keys(shared_redis_url(), prefix)


async def test_a_session_lost_mid_terminate_is_reopened_sealed(shared_runtime: MemoryRuntime) -> None:
    """Redis loses a session that a terminate has sealed (restart without persistence): the read that re-opens
    it must re-open it sealed, so writes stay refused until the terminate ends, as on every other store."""
    rt = shared_runtime
    store = redis_store(rt)
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
    await rt.lifecycle.pause(*ids(scope))
    snapshot = store.snapshot
    sealed, release = anyio.Event(), anyio.Event()

    async def held_snapshot(s: Scope, now: float) -> dict[str, Item]:
        sealed.set()
        await release.wait()
        return await snapshot(s, now)

    store.snapshot = held_snapshot  # type: ignore[method-assign]
    result: dict[str, Any] = {}

    async def terminate() -> None:
        result.update((await rt.lifecycle.terminate(*ids(scope))).data)

    async with anyio.create_task_group() as tg:
        tg.start_soon(terminate)
        await sealed.wait()
        try:
            lose(store, scope)
            assert await rt.working.get(scope, "a") == 1  # re-opened with its newest checkpoint...
            with pytest.raises(Conflict, match="being terminated"):
                await rt.working.set(scope, "b", 2)  # ...and still sealed
        finally:
            release.set()
    assert result["state_items_consolidated"] == 1
    with pytest.raises(Conflict, match="is terminated"):
        await rt.working.set(scope, "b", 2)


@pytest.mark.parametrize("cleanup", [True, False], ids=["cleared", "kept"])
@pytest.mark.parametrize("lands", ["before the mark", "after the mark"])
async def test_a_late_unseal_does_not_reopen_a_session_another_server_terminated(
    db_url: str, clock: FakeClock, cleanup: bool, lands: str
) -> None:
    """Server A's terminate fails before recording and unseals: its Redis unseal read the durable record as not
    terminated, then server B's terminate (the client's retry) recorded it. Whether A's unseal lands in Redis
    before or after B's last step, and whether B clears working memory or keeps it, the session stays closed."""
    prefix = unique_prefix()
    settings = Settings(database_url=db_url, redis_url=shared_redis_url(), redis_key_prefix=prefix)
    try:
        async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
            scope = new_scope()
            await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})

            async def failing_record_terminate(*args: Any, **kwargs: Any) -> Any:
                raise Unavailable("the store is busy; retry later")

            a.store.record_terminate = failing_record_terminate  # type: ignore[method-assign]
            store, real_eval, record_terminate = redis_store(a), redis_store(a)._eval, b.store.record_terminate
            unsealed: list[Any] = []

            a_unseal: list[Any] = []  # A's unseal, with A's token

            async def unseal_now() -> None:
                unsealed.append(await real_eval("seal", store.keys(scope), a_unseal))

            async def b_record_terminate(*args: Any, **kwargs: Any) -> Any:
                stored = await record_terminate(*args, **kwargs)
                if lands == "before the mark":
                    await unseal_now()
                return stored

            b.store.record_terminate = b_record_terminate  # type: ignore[method-assign]

            async def eval_(name: str, keys: Any, args: Any) -> Any:
                if name == "seal" and args[0] == "o" and not unsealed:  # A's unseal, after its durable read
                    a_unseal.extend(args)
                    clock.advance(settings.terminate_lease_seconds)  # B takes over A's seal once it has lapsed
                    await b.lifecycle.terminate(*ids(scope), cleanup_working=cleanup)
                    if not unsealed:
                        await unseal_now()
                    return unsealed[0]
                return await real_eval(name, keys, args)

            store._eval = eval_  # type: ignore[method-assign]
            with pytest.raises(Unavailable):
                await a.lifecycle.terminate(*ids(scope))
            store._eval = real_eval  # type: ignore[method-assign]
            assert unsealed
            for rt in (a, b):
                with pytest.raises(Conflict, match="is terminated"):
                    await rt.working.set(scope, "late", 1)
                with pytest.raises(Conflict, match="is terminated"):
                    await rt.working.delete(scope, "k")
                assert await rt.working.state(scope) == ({} if cleanup else {"k": 1})
            with pytest.raises(Conflict, match="terminated"):
                await b.lifecycle.resume(*ids(scope))
            with redis.Redis.from_url(shared_redis_url(), decode_responses=True) as admin:
                m = store.keys(scope)[0]
                assert admin.get(m) == "t"
                assert (0 < admin.pttl(m) <= TOMBSTONE_MS) if cleanup else admin.pttl(m) == -1
    finally:
        delete_keys(shared_redis_url(), prefix)


async def test_terminate_again_marks_a_session_whose_first_terminate_stopped_after_recording(
    shared_runtime: MemoryRuntime,
) -> None:
    """The first terminate recorded the session terminated, then failed to mark Redis (still sealed, so a late
    unseal of another server's failed terminate can reopen it): calling terminate again marks it terminated."""
    rt = shared_runtime
    store = redis_store(rt)
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
    mark_terminated = store.mark_terminated

    async def failing_mark(*args: Any, **kwargs: Any) -> int:
        raise Unavailable("Redis is not reachable or not answering; retry later")

    store.mark_terminated = failing_mark  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        await rt.lifecycle.terminate(*ids(scope), cleanup_working=False)
    store.mark_terminated = mark_terminated  # type: ignore[method-assign]
    with redis.Redis.from_url(shared_redis_url(), decode_responses=True) as admin:
        marker = admin.get(store.keys(scope)[0])
    assert marker.startswith("s:")  # sealed by the first call, its token and lease end after
    owner = marker.split(":")[1]
    # A late unseal (it read the record before it was recorded), as if by the seal's owner: the worst case.
    await store._eval("seal", store.keys(scope), ["o", owner])
    again = await rt.lifecycle.terminate(*ids(scope))
    assert again.data["state_items_consolidated"] == 1 and again.data["items_cleared"] == 0
    with pytest.raises(Conflict, match="is terminated"):
        await rt.working.set(scope, "late", 1)
    assert await rt.working.state(scope) == {"k": 1}  # kept, as the first call asked


async def test_a_resume_that_restores_after_another_servers_durable_seal_is_answered_done(
    db_url: str, clock: FakeClock
) -> None:
    """Server B's resume reads the checkpoint (session not sealed), then server A's terminate seals the durable
    record, then B's restore lands in Redis before A's Redis seal: the restore happened, so the resume answers done
    and is recorded ok (the session is not marked running again); what it restored is in A's snapshot, consolidated
    and cleared."""
    prefix = unique_prefix()
    settings = Settings(database_url=db_url, redis_url=shared_redis_url(), redis_key_prefix=prefix)
    try:
        async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
            scope = new_scope()
            await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
            await a.lifecycle.pause(*ids(scope), checkpoint_id="c1")
            await a.working.set(scope, "k", 2)
            await a.working.set(scope, "more", 3)
            # Resume reads the checkpoint packed (its state as the stored text) from a store that offers it.
            get_checkpoint = b.store.get_packed_checkpoint

            async def read_then_terminate_seals(*args: Any, **kwargs: Any) -> Any:
                checkpoint = await get_checkpoint(*args, **kwargs)
                # A's terminate: the durable seal (its Redis seal comes later).
                await a.store.seal(scope, "terminate-a", clock(), settings.terminate_lease_seconds)
                return checkpoint

            b.store.get_packed_checkpoint = read_then_terminate_seals  # type: ignore[method-assign]
            resumed = await b.lifecycle.resume(*ids(scope), checkpoint_id="c1")
            assert resumed.data["items_restored"] == 1
            events = await a.store.list_events(scope, 100)
            assert [(e.event_type, e.outcome) for e in events][-1] == ("resume", "ok")
            session = await a.store.get_session(scope)
            assert session is not None and session.status == "paused" and session.sealed
            clock.advance(settings.terminate_lease_seconds)  # A's terminate stopped there; its retry takes over
            done = await a.lifecycle.terminate(*ids(scope))
            assert done.data["state_items_consolidated"] == 1  # the restored checkpoint, as A's snapshot saw it
            assert await b.working.list_keys(scope) == []
            with pytest.raises(Conflict, match="is terminated"):
                await b.working.set(scope, "late", 1)
    finally:
        delete_keys(shared_redis_url(), prefix)


# -- memory reclaim ------------------------------------------------------------------------------------------
async def test_redis_memory_is_reclaimed(shared_runtime: MemoryRuntime, clock: FakeClock) -> None:
    rt = shared_runtime
    store = redis_store(rt)
    admin = redis.Redis.from_url(shared_redis_url(), decode_responses=True)
    try:
        scope = new_scope()
        m, v, x, _ = store.keys(scope)
        await rt.lifecycle.spawn(*ids(scope))
        await rt.working.set(scope, "short", 1, ttl_seconds=10)
        await rt.working.set(scope, "long", 2, ttl_seconds=100)
        # Every key has a TTL: Redis itself drops the session's data some time after the last one expires.
        assert 100_000 < admin.pttl(v) <= 100_000 + RECLAIM_MARGIN_MS
        assert admin.pttl(x) == pytest.approx(admin.pttl(v), abs=1000)
        await rt.working.set(scope, "forever", 3)
        assert admin.pttl(v) == -1 and admin.pttl(x) == -1  # one key without TTL: no expiry at all
        await rt.working.delete(scope, "forever")
        assert admin.pttl(v) > 0

        # Expired entries are purged by the next write, not only hidden.
        clock.advance(11)
        await rt.working.set(scope, "other", 4, ttl_seconds=5)
        assert sorted(admin.hkeys(v)) == ["long", "other"]
        assert sorted(admin.zrange(x, 0, -1)) == ["long", "other"]

        # terminate deletes the data; the terminated marker lingers a while, then goes.
        await rt.lifecycle.terminate(*ids(scope))
        assert admin.exists(v, x) == 0
        assert 0 < admin.pttl(m) <= TOMBSTONE_MS
        assert admin.get(m) == "t"  # terminated: a late write is refused by Redis alone
    finally:
        admin.close()


async def test_values_travel_as_stored_text(shared_runtime: MemoryRuntime) -> None:
    rt = shared_runtime
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope))
    raw = '{"z": 1,  "a":[1.0, 2e3, "\\u00e9", "é"]}'
    await redis_store(rt).set(scope, "k", Item(raw, 1e12), rt.clock(), rt.working.limits)
    assert await redis_store(rt).get(scope, "k", rt.clock()) == Item(raw, 1e12)


# -- configuration -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"redis_url": "http://127.0.0.1:6379"}, "not a Redis URL"),
        ({"redis_url": "127.0.0.1:6379"}, "not a Redis URL"),
        ({"redis_url": "redis://127.0.0.1:notaport/0"}, "not a valid URL"),
        ({"redis_url": "unix:///tmp/redis.sock", "redis_cluster": True}, "redis_cluster".upper()),
        ({"redis_url": "redis+sentinel://127.0.0.1:26379", "redis_cluster": False}, "service"),
        ({"redis_url": "redis://127.0.0.1:6379/0", "redis_key_prefix": "a{b}"}, "must not contain"),
    ],
)
def test_bad_redis_settings_are_configuration_errors(db_url: str, overrides: dict[str, Any], message: str) -> None:
    settings = Settings(database_url=db_url, **overrides)
    with pytest.raises(ConfigurationError, match=message.replace("{", r"\{")):
        check_redis_settings(settings)
    with pytest.raises(ConfigurationError):
        MemoryRuntime(settings)


def test_good_redis_urls_are_accepted(db_url: str) -> None:
    for url in (
        "redis://127.0.0.1:6379/0",
        "rediss://user:pw@redis.example.com:6380/1",
        "unix:///var/run/redis.sock",
        "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster",
    ):
        settings = Settings(database_url=db_url, redis_url=url)
        check_redis_settings(settings)
        store = RedisWorkingStore.from_settings(settings)
        assert store.mode == ("sentinel" if "sentinel" in url else "standalone")
        assert "pw" not in store._url


async def test_doctor_reports_redis(tmp_path: Path, private_redis: RedisServer) -> None:
    from tests.test_stdio import run_cli, server_env

    env = server_env(tmp_path, MCP_MEMORY_REDIS_URL=private_redis.url)
    made_sqlite_file(env["MCP_MEMORY_DATABASE_URL"])
    code, out, err = await run_cli("doctor", env=env)
    assert code == 0, err
    working = json.loads(out)["stores"]["working"]
    assert working["reachable"] is True and working["mode"] == "standalone"
    assert working["version"].startswith(("6.", "7.", "8."))

    env = server_env(tmp_path, MCP_MEMORY_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with anyio.fail_after(20):
        code, out, _ = await run_cli("doctor", env=env)
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["stores"]["working"]["reachable"] is False
    assert report["stores"]["working"]["error"].startswith("unavailable: ")


async def test_sentinel(tmp_path: Path, private_redis: RedisServer, db_url: str) -> None:
    sentinel = SentinelServer(tmp_path / "sentinel", private_redis.port)
    sentinel.start()
    try:
        settings = Settings(database_url=db_url, redis_url=sentinel.sentinel_url)
        async with MemoryRuntime(settings) as rt:
            report = (await rt.check())["working"]
            assert report["reachable"] is True and report["mode"] == "sentinel", report
            scope = new_scope()
            await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
            await rt.lifecycle.pause(*ids(scope))
            await rt.working.set(scope, "a", 2)
            await rt.lifecycle.resume(*ids(scope))
            assert await rt.working.get(scope, "a") == 1
        admin = private_redis.client()
        assert admin.hget(redis_store(rt).keys(scope)[1], "a") == "1"  # it went to the monitored primary
        admin.close()
    finally:
        sentinel.stop()


async def test_spawn_starts_clean_in_a_redis_that_outlived_its_durable_store(shared_runtime: MemoryRuntime) -> None:
    rt = shared_runtime
    scope = new_scope()
    m, v, _, _ = redis_store(rt).keys(scope)
    admin = redis.Redis.from_url(shared_redis_url())
    admin.set(m, "s")  # e.g. the SQLite file was replaced, Redis kept an old session of this scope
    admin.hset(v, "stale", "1")
    admin.close()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"fresh": 1})
    assert await rt.working.list_keys(scope) == ["fresh"]
    await rt.working.set(scope, "more", 2)


async def test_spawn_starts_clean_over_a_reopen_of_an_older_session(
    shared_runtime: MemoryRuntime, clock: FakeClock
) -> None:
    """A session Redis re-opened from the durable store, whose durable record was then lost, is stale for a new
    spawn of the same scope (another incarnation): only a re-open of the session being spawned is kept."""
    rt = shared_runtime
    store = redis_store(rt)
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"old": 1})
    lose(store, scope)
    await rt.working.set(scope, "stale", 1)  # re-opened from the durable record (noting which one)
    await rt.store.discard_session(scope)  # e.g. the SQLite file was replaced by an older copy
    clock.advance(5)
    await rt.lifecycle.spawn(*ids(scope), initial_state={"fresh": 1})
    assert await rt.working.list_keys(scope) == ["fresh"]
    fresh = await rt.store.get_session(scope)
    assert fresh is not None
    with redis.Redis.from_url(shared_redis_url(), decode_responses=True) as admin:
        # The note of the older session went with it: the one there is the new session's, noted by its commit.
        assert admin.get(store.keys(scope)[3]) == incarnation(fresh)


async def test_stdio_server_with_redis(tmp_path: Path, private_redis: RedisServer) -> None:
    """``mcp-memory serve`` as a subprocess, configured by environment variables, working memory in Redis."""
    from tests.test_stdio import Session, server_env

    env = server_env(tmp_path, MCP_MEMORY_REDIS_URL=private_redis.url, MCP_MEMORY_REDIS_KEY_PREFIX="stdio")
    s = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "desk"}
    async with Session(env) as srv:
        await srv.ok("spawn", **s, initial_state={"goal": "ship", "n": 1})
        await srv.ok("memory_set", **s, key="n", value=2, ttl_seconds=600)
        paused = await srv.ok("pause", **s, label="before")
        assert paused["items_saved"] == 2
        await srv.ok("memory_delete", **s, key="goal")
        assert (await srv.ok("memory_list", **s))["keys"] == ["n"]
        resumed = await srv.ok("resume", **s)
        assert resumed["items_restored"] == 2
        assert (await srv.ok("memory_get", **s, key="goal"))["value"] == "ship"
        done = await srv.ok("terminate", **s, lessons_learned=["tag first"])
        assert done["state_items_consolidated"] == 2
        refused = await srv.error("memory_set", **s, key="x", value=1)
        assert refused.startswith("conflict: ") and "is terminated and accepts no writes" in refused
    admin = private_redis.client()
    # The tombstone: the terminated marker and the incarnation it closed (a late terminate of an older one leaves it).
    base = f"stdio:{{{s['project_id']}/{s['agent_instance_id']}/desk}}"
    assert sorted(admin.keys("stdio:*")) == [f"{base}:i", f"{base}:m"]
    assert all(0 < admin.pttl(key) <= 86_400_000 for key in (f"{base}:i", f"{base}:m"))
    admin.close()


async def test_a_full_redis_is_unavailable_and_writes_nothing(tmp_path: Path, db_url: str) -> None:
    server = RedisServer(tmp_path / "redis", extra=["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]).start()
    try:
        settings = Settings(database_url=db_url, redis_url=server.url, max_keys_per_session=1000)
        async with MemoryRuntime(settings) as rt:
            scope, big = new_scope("s"), new_scope("big")
            await rt.lifecycle.spawn(*ids(scope), initial_state={f"k{i}": i for i in range(20)})
            await rt.lifecycle.pause(*ids(scope))
            await rt.lifecycle.spawn(*ids(big))
            with pytest.raises(Unavailable, match="out of memory"):
                for i in range(1000):
                    await rt.working.set(big, f"fill{i}", "y" * 100_000)
            # Reads go on; writes are refused whole, never half done.
            assert await rt.working.get(scope, "k1") == 1
            state = await rt.working_store.snapshot(scope, rt.clock())
            with pytest.raises(Unavailable, match="out of memory"):
                await rt.working.set(scope, "new", "z" * 100_000)
            assert await rt.working_store.snapshot(scope, rt.clock()) == state
    finally:
        server.stop()


async def test_a_full_redis_refuses_spawns_restores_and_writes_whole_and_still_takes_pauses(
    tmp_path: Path, db_url: str, clock: FakeClock
) -> None:
    """Redis checks a write against maxmemory only until a script's first write (a DEL, a purge of expired keys):
    each script that grows memory asks first, so a spawn, a resume and a memory_set after a purge are refused whole
    when Redis is full, where they went past maxmemory and left sessions that could not be read. A pause still
    takes its checkpoint (without a copy)."""
    server = RedisServer(tmp_path / "redis", extra=["--maxmemory-policy", "noeviction"]).start()
    admin = server.client()
    try:
        settings = Settings(database_url=db_url, redis_url=server.url)
        async with MemoryRuntime(settings, clock=clock) as rt:
            assert isinstance(rt.working_store, RedisWorkingStore)
            rt.working_store.copy_min_keys = 1  # every pause copies: a resume takes the copy
            scope, late = new_scope("s"), new_scope("late")
            await rt.lifecycle.spawn(*ids(scope), initial_state={f"k{i}": i for i in range(20)})
            await rt.working.set(scope, "brief", 1, ttl_seconds=1)
            paused = await rt.lifecycle.pause(*ids(scope))
            await rt.working.set(scope, "after", 1)
            clock.advance(2)  # "brief" has expired: the next write to the session purges it first
            state = await rt.working_store.snapshot(scope, rt.clock())
            admin.config_set("maxmemory", "1")  # full from now on

            with pytest.raises(Unavailable, match="out of memory"):
                await rt.lifecycle.spawn(*ids(late), initial_state={f"k{i}": "v" * 100 for i in range(50)})
            assert await rt.store.get_session(late) is None
            with pytest.raises(Unavailable, match="out of memory"):
                await rt.working.set(scope, "new", "z" * 1000)
            with pytest.raises(Unavailable, match="out of memory"):  # taking the pause's copy
                await rt.lifecycle.resume(*ids(scope), checkpoint_id=paused.data["checkpoint_id"])
            assert await rt.working_store.snapshot(scope, rt.clock()) == state  # reads go on; nothing changed
            again = await rt.lifecycle.pause(*ids(scope))  # a full Redis makes no copy
            assert again.data["items_saved"] == 21
            with pytest.raises(Unavailable, match="out of memory"):  # restoring from the checkpoint's text
                await rt.lifecycle.resume(*ids(scope), checkpoint_id=again.data["checkpoint_id"])
            admin.config_set("maxmemory", "0")
            assert await rt.working_store.snapshot(scope, rt.clock()) == state
    finally:
        admin.close()
        server.stop()


async def test_a_full_redis_still_lets_a_terminate_free_a_session(
    tmp_path: Path, db_url: str, clock: FakeClock
) -> None:
    """A full Redis (maxmemory reached, noeviction) refuses what grows memory, but a terminate, which frees a
    session's memory, still seals, consolidates and clears it, and a deletion still deletes: an operator or an agent
    can make room by ending sessions."""
    server = RedisServer(tmp_path / "redis", extra=["--maxmemory-policy", "noeviction"]).start()
    admin = server.client()
    try:
        settings = Settings(database_url=db_url, redis_url=server.url)
        async with MemoryRuntime(settings, clock=clock) as rt:
            store = redis_store(rt)
            scope, other = new_scope("s"), new_scope("other")
            await rt.lifecycle.spawn(*ids(scope), initial_state={f"k{i}": "v" * 50 for i in range(20)})
            await rt.lifecycle.spawn(*ids(other), initial_state={"a": 1})
            admin.config_set("maxmemory", "1")  # full from now on
            with pytest.raises(Unavailable, match="out of memory"):
                await rt.working.set(other, "new", "z" * 1000)

            done = await rt.lifecycle.terminate(*ids(scope))
            assert done.data["state_items_consolidated"] == 20
            assert admin.exists(*store.keys(scope)[1:3]) == 0  # its values and expiries are gone
            again = await rt.lifecycle.terminate(*ids(scope))  # idempotent, as ever
            assert again.data["episode_id"] == done.data["episode_id"]
            with pytest.raises(Unavailable, match="out of memory"):
                await rt.working.set(other, "new", "z" * 1000)
            await rt.control.delete_session(*ids(other))  # a deletion frees memory too
            assert await rt.store.get_session(other) is None and admin.exists(*store.keys(other)) == 0
            admin.config_set("maxmemory", "0")
    finally:
        admin.close()
        server.stop()


async def test_a_redis_that_evicts_keys_is_named_at_start_and_by_doctor(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An eviction policy can take one of a session's keys and leave the others, which no call can tell from what
    the session wrote: the server says so at start-up and in the doctor's report; noeviction draws no warning."""
    for policy, warned in (("allkeys-lru", True), ("noeviction", False)):
        server = RedisServer(tmp_path / policy, extra=["--maxmemory", "64mb", "--maxmemory-policy", policy]).start()
        try:
            caplog.clear()
            settings = Settings(database_url=db_url, redis_url=server.url)
            with caplog.at_level(logging.WARNING, logger="mcp_memory.stores.redis.store"):
                async with MemoryRuntime(settings) as rt:
                    facts = (await rt.check())["working"]
            assert facts["maxmemory_policy"] == policy
            assert ("warning" in facts) is warned
            assert any("maxmemory-policy" in r.getMessage() for r in caplog.records) is warned
        finally:
            server.stop()


async def test_a_script_whose_reply_times_out_is_not_sent_again(tmp_path: Path, db_url: str) -> None:
    """A timeout waiting for a reply comes after the script was sent, and Redis runs it to the end: running it again
    would answer as if the first run had not happened (a key deleted twice answers "not found"). Only a failed or
    broken connection is retried."""
    server = RedisServer(tmp_path / "slow").start()
    try:
        settings = Settings(database_url=db_url, redis_url=server.url, redis_timeout_seconds=0.2, redis_retries=2)
        client, _, _ = connect(settings)
        busy = (
            "redis.call('INCR', KEYS[1]) local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] "
            "while true do local u = redis.call('TIME') if u[1] * 1000000 + u[2] - s > 400000 then break end end "
            "return 1"
        )
        with pytest.raises(redis.exceptions.TimeoutError):
            await client.eval(busy, 1, "runs")
        await anyio.sleep(1.0)  # long enough for any second or third run to have finished
        assert await client.get("runs") == "1"
        await client.aclose()
    finally:
        server.stop()


async def test_unix_socket_url(tmp_path: Path, db_url: str) -> None:
    sock = tmp_path / "r.sock"
    server = RedisServer(tmp_path / "redis", extra=["--unixsocket", str(sock), "--unixsocketperm", "700"]).start()
    try:
        settings = Settings(database_url=db_url, redis_url=f"unix://{sock}?db=0")
        async with MemoryRuntime(settings) as rt:
            assert (await rt.check())["working"]["reachable"] is True
            scope = new_scope()
            await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
            await rt.lifecycle.pause(*ids(scope))
            await rt.working.set(scope, "a", 2)
            assert (await rt.lifecycle.resume(*ids(scope))).data["items_restored"] == 1
            assert await rt.working.get(scope, "a") == 1
    finally:
        server.stop()
