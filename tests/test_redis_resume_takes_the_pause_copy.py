"""A resume with working memory in Redis takes the pause's server-side copy of exactly the checkpoint it resumes
(stores/redis/copies.py) and restores the checkpoint's text otherwise: the copy never stands for other content.

Pauses here copy states of every size (``copy_min_keys`` 1); the default, which leaves small ones out, is pinned at
the end. Whether the copy was used is seen by changing the copy's values in Redis behind the store's back: a resume that
used it shows the changed value, one that restored the text shows the checkpoint's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis

from mcp_memory.config import Settings
from mcp_memory.errors import MemoryServiceError
from mcp_memory.json_values import encode_value
from mcp_memory.models import Item, Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.records import Limits
from mcp_memory.stores.redis.scripts import COPY_MIN_KEYS, incarnation
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import RedisServer, delete_keys, shared_redis_url, unique_prefix
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio


@pytest.fixture
def prefix() -> Iterator[str]:
    name = unique_prefix()
    yield name
    delete_keys(shared_redis_url(), name)


@pytest.fixture
def admin() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(shared_redis_url(), decode_responses=True)
    yield client
    client.close()


@asynccontextmanager
async def copying_runtime(db_url: str, redis_url: str, clock: FakeClock, prefix: str) -> AsyncIterator[MemoryRuntime]:
    settings = Settings(database_url=db_url, redis_url=redis_url, redis_key_prefix=prefix)
    async with MemoryRuntime(settings, clock=clock) as runtime:
        # Copies of states of any size here (the small sessions below are copied too; the default is pinned apart).
        store(runtime).copy_min_keys = 1
        yield runtime


@pytest.fixture
async def rt(db_url: str, clock: FakeClock, prefix: str) -> AsyncIterator[MemoryRuntime]:
    async with copying_runtime(db_url, shared_redis_url(), clock, prefix) as runtime:
        yield runtime


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def store(rt: MemoryRuntime) -> RedisWorkingStore:
    working = rt.working_store
    assert isinstance(working, RedisWorkingStore)
    return working


def copy_keys(prefix: str, admin: redis.Redis) -> list[str]:
    """Every pause copy key under ``prefix`` (SCAN)."""
    return sorted(
        k for k in admin.scan_iter(match=f"{prefix}:*", count=1000) if k.rsplit(":", 1)[1] in {"cv", "cx", "ct"}
    )


def tamper(rt: MemoryRuntime, admin: redis.Redis, scope: Scope, key: str = "a") -> None:
    """Change one value of the copy behind the store's back (the copy must exist)."""
    cv = store(rt).copy_keys(scope)[0]
    assert admin.hexists(cv, key)
    admin.hset(cv, key, encode_value("from the copy"))


async def paused(rt: MemoryRuntime, scope: Scope, checkpoint_id: str = "cp1") -> None:
    """A session with plain and TTL keys, paused as ``checkpoint_id``, then changed."""
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1, "b": [1, 2]})
    await rt.working.set(scope, "soon", "s", ttl_seconds=60)
    await rt.working.set(scope, "later", "l", ttl_seconds=3600)
    await rt.lifecycle.pause(*ids(scope), checkpoint_id=checkpoint_id)
    await rt.working.set(scope, "a", 2)
    await rt.working.set(scope, "new", 3)
    await rt.working.delete(scope, "b")


async def test_a_resume_through_the_copy_restores_exactly_the_checkpoint(
    rt: MemoryRuntime, admin: redis.Redis, clock: FakeClock, prefix: str
) -> None:
    scope = new_scope()
    await paused(rt, scope)
    checkpoint = await rt.store.get_checkpoint(scope, "cp1")
    assert checkpoint is not None
    assert len(copy_keys(prefix, admin)) == 3  # values, expiries, tag
    clock.advance(120)  # "soon" has expired since the pause: not restored, as from the text
    before = store(rt).round_trips
    result = await rt.lifecycle.resume(*ids(scope))
    assert store(rt).round_trips - before == 1  # the take script, nothing else
    assert result.data["items_restored"] == 3
    assert await store(rt).snapshot(scope, clock()) == checkpoint.live_items(clock())
    assert len(copy_keys(prefix, admin)) == 3  # kept, for another resume of cp1
    # Its live keys have the expiry a restore gives them: none while a key without TTL is there.
    v, x = store(rt).keys(scope)[1:3]
    assert admin.pttl(v) == -1 and admin.pttl(x) == -1


async def test_a_second_resume_of_the_same_checkpoint_takes_the_copy_again(
    rt: MemoryRuntime, admin: redis.Redis, clock: FakeClock
) -> None:
    scope = new_scope()
    await paused(rt, scope)
    checkpoint = await rt.store.get_checkpoint(scope, "cp1")
    assert checkpoint is not None
    await rt.lifecycle.resume(*ids(scope))
    await rt.working.set(scope, "a", 5)  # live writes after the resume do not touch the copy
    await rt.working.delete(scope, "later")
    before = store(rt).round_trips
    await rt.lifecycle.resume(*ids(scope))
    assert store(rt).round_trips - before == 1
    assert await store(rt).snapshot(scope, clock()) == checkpoint.live_items(clock())
    # Without it (Redis lost it), the same resume restores the text, one round trip more.
    admin.delete(*store(rt).copy_keys(scope))
    await rt.working.set(scope, "a", 6)
    before = store(rt).round_trips
    await rt.lifecycle.resume(*ids(scope))
    assert store(rt).round_trips - before == 2  # take (no copy), then the restore of the text
    assert await store(rt).snapshot(scope, clock()) == checkpoint.live_items(clock())


async def test_the_copy_is_used_only_for_the_checkpoint_that_names_its_snapshot(
    rt: MemoryRuntime, admin: redis.Redis
) -> None:
    scope = new_scope()
    await paused(rt, scope)
    tag = store(rt).copy_keys(scope)[2]
    # Control: an intact tag, and the resume takes the copy (the changed value shows).
    tamper(rt, admin, scope)
    await rt.lifecycle.resume(*ids(scope))
    assert await rt.working.get(scope, "a") == "from the copy"
    await rt.working.set(scope, "a", 1)
    await rt.lifecycle.pause(*ids(scope), checkpoint_id="cp-other-nonce")
    tamper(rt, admin, scope)
    admin.hset(tag, "nonce", "another snapshot's")
    await rt.lifecycle.resume(*ids(scope), checkpoint_id="cp-other-nonce")
    assert await rt.working.get(scope, "a") == 1  # the checkpoint's text
    # A copy of the newest checkpoint is not taken for an older one.
    await rt.lifecycle.pause(*ids(scope), checkpoint_id="cp2")
    tamper(rt, admin, scope)
    await rt.lifecycle.resume(*ids(scope), checkpoint_id="cp1")
    assert await rt.working.get(scope, "a") == 1
    assert await rt.working.get(scope, "b") == [1, 2]


async def test_a_checkpoint_that_names_no_snapshot_is_restored_from_its_text(
    rt: MemoryRuntime, admin: redis.Redis, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint recorded without a snapshot's name (by an earlier release, or imported) never takes a copy, and
    its state comes with its first read (one durable read: there is no copy to try first)."""
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
    await rt.lifecycle.pause(*ids(scope), checkpoint_id="cp1")
    with sqlite3.connect(db_url.removeprefix("sqlite+aiosqlite:///")) as db:
        db.execute("UPDATE checkpoints SET snapshot = NULL")
    tamper(rt, admin, scope)
    reads: list[str | None] = []
    read = rt.store.get_packed_checkpoint

    async def counted(scope: Scope, checkpoint_id: str | None, state_below: int | None = None) -> object:
        reads.append(checkpoint_id)
        return await read(scope, checkpoint_id, state_below)

    monkeypatch.setattr(rt.store, "get_packed_checkpoint", counted)
    await rt.lifecycle.resume(*ids(scope))
    assert await rt.working.get(scope, "a") == 1
    assert reads == [None]


async def test_the_copy_of_a_pause_whose_durable_write_fails_is_never_taken(
    rt: MemoryRuntime, admin: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
    await rt.lifecycle.pause(*ids(scope), checkpoint_id="cp1")
    await rt.working.set(scope, "a", 2)
    recorded = await rt.store.get_packed_checkpoint(scope, "cp1")
    assert recorded is not None and recorded.snapshot == admin.hget(store(rt).copy_keys(scope)[2], "nonce")
    # A second pause of the same id is refused durably (conflict) after its snapshot replaced the copy.
    with pytest.raises(MemoryServiceError):
        await rt.lifecycle.pause(*ids(scope), checkpoint_id="cp1")
    assert admin.hget(store(rt).copy_keys(scope)[2], "nonce") != recorded.snapshot
    await rt.lifecycle.resume(*ids(scope), checkpoint_id="cp1")
    assert await rt.working.get(scope, "a") == 1  # cp1's content, not the refused pause's copy (a == 2)


async def test_a_copy_is_taken_only_under_its_own_snapshots_nonce(rt: MemoryRuntime) -> None:
    """Two pauses of one checkpoint id from two processes: each snapshot has its own nonce, and the one the durable
    record names is the only one whose copy a resume takes; a later snapshot replaces an earlier one's copy."""
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
    redis_store, now = store(rt), rt.lifecycle._ctx.clock()
    _, copied = await redis_store.snapshot_for_pause(scope, now, "nonce-1")
    assert copied
    await rt.working.set(scope, "a", 2)
    await redis_store.snapshot_for_pause(scope, now, "nonce-2")
    await rt.working.set(scope, "a", 3)
    assert await redis_store.take_copy(scope, "nonce-1", now, rt.working.limits) is None
    assert await rt.working.get(scope, "a") == 3  # nothing changed
    taken = await redis_store.take_copy(scope, "nonce-2", now, rt.working.limits)
    assert taken is not None and taken.items == 1
    assert await rt.working.get(scope, "a") == 2  # the second snapshot's state


async def test_a_resume_without_clear_merges_from_the_text(rt: MemoryRuntime, admin: redis.Redis) -> None:
    scope = new_scope()
    await paused(rt, scope)
    tamper(rt, admin, scope)
    await rt.lifecycle.resume(*ids(scope), clear_current=False)
    assert await rt.working.get(scope, "a") == 1
    assert await rt.working.get(scope, "new") == 3  # merged


@pytest.mark.parametrize("lost", ["copy", "expiries", "tag"])
async def test_a_resume_restores_the_text_when_redis_lost_the_copy(
    rt: MemoryRuntime, admin: redis.Redis, clock: FakeClock, lost: str
) -> None:
    scope = new_scope()
    await paused(rt, scope)
    checkpoint = await rt.store.get_checkpoint(scope, "cp1")
    assert checkpoint is not None
    cv, cx, ct = store(rt).copy_keys(scope)
    tamper(rt, admin, scope)
    admin.delete({"copy": cv, "expiries": cx, "tag": ct}[lost])  # e.g. evicted: one key of three
    if lost == "copy":
        admin.hset(cv, "only", encode_value(1))  # not the count the tag names either
    await rt.lifecycle.resume(*ids(scope))
    assert await store(rt).snapshot(scope, clock()) == checkpoint.live_items(clock())


async def test_a_resume_restores_the_checkpoint_when_redis_forgot_its_scripts(
    db_url: str, clock: FakeClock, prefix: str, tmp_path: Path
) -> None:
    # A Redis of its own: flushing the shared one's scripts would cost the tests running beside it round trips they
    # count.
    server = RedisServer(tmp_path / "redis").start()
    try:
        async with copying_runtime(db_url, server.url, clock, prefix) as rt:
            scope = new_scope()
            await paused(rt, scope)
            checkpoint = await rt.store.get_checkpoint(scope, "cp1")
            assert checkpoint is not None
            admin = server.client()
            admin.script_flush()  # the take script is loaded again; the copy is still good
            admin.close()
            await rt.lifecycle.resume(*ids(scope))
            assert await store(rt).snapshot(scope, clock()) == checkpoint.live_items(clock())
    finally:
        server.stop()


async def test_a_sealed_session_is_not_resumed_through_its_copy(rt: MemoryRuntime, admin: redis.Redis) -> None:
    scope = new_scope()
    await paused(rt, scope)
    now = rt.lifecycle._ctx.clock()
    await store(rt).seal(scope, "t1", now, 30)
    checkpoint = await rt.store.get_packed_checkpoint(scope, "cp1")
    assert checkpoint is not None and checkpoint.snapshot is not None
    taken = await store(rt).take_copy(scope, checkpoint.snapshot, now, rt.working.limits)
    assert taken is None
    assert len(admin.hgetall(store(rt).copy_keys(scope)[0])) == 4  # left as it was


async def test_a_copy_over_the_key_limit_is_not_taken(rt: MemoryRuntime) -> None:
    scope = new_scope()
    await paused(rt, scope)
    checkpoint = await rt.store.get_packed_checkpoint(scope, "cp1")
    assert checkpoint is not None and checkpoint.snapshot is not None
    now = rt.lifecycle._ctx.clock()
    taken = await store(rt).take_copy(scope, checkpoint.snapshot, now, Limits(max_keys=3))
    assert taken is None  # four keys in the copy
    assert await rt.working.get(scope, "new") == 3  # nothing changed
    taken = await store(rt).take_copy(scope, checkpoint.snapshot, now, Limits(max_keys=4))
    assert taken is not None and taken.items == 4


# -- every path that changes checkpoints or drops working memory drops the copy ------------------------------
async def test_deleting_the_checkpoint_drops_the_copy(rt: MemoryRuntime, admin: redis.Redis, prefix: str) -> None:
    scope = new_scope()
    await paused(rt, scope)
    await rt.control.delete_checkpoint(*ids(scope), "cp1")
    assert copy_keys(prefix, admin) == []


@pytest.mark.parametrize("cleanup", [True, False])
async def test_terminate_drops_the_copy(rt: MemoryRuntime, admin: redis.Redis, prefix: str, cleanup: bool) -> None:
    scope = new_scope()
    await paused(rt, scope)
    await rt.lifecycle.terminate(*ids(scope), cleanup_working=cleanup)
    assert copy_keys(prefix, admin) == []


async def test_clearing_working_memory_drops_the_copy(rt: MemoryRuntime, admin: redis.Redis, prefix: str) -> None:
    scope = new_scope()
    await paused(rt, scope)
    await store(rt).clear(scope, rt.lifecycle._ctx.clock())
    assert copy_keys(prefix, admin) == []


async def test_deleting_the_session_drops_the_copy(rt: MemoryRuntime, admin: redis.Redis, prefix: str) -> None:
    scope = new_scope()
    await paused(rt, scope)
    await rt.control.delete_session(*ids(scope))
    assert copy_keys(prefix, admin) == []


async def test_erasing_the_session_drops_the_copy(rt: MemoryRuntime, admin: redis.Redis, prefix: str) -> None:
    scope = new_scope()
    await paused(rt, scope)
    await store(rt).erase_session(scope, rt.lifecycle._ctx.clock())
    assert copy_keys(prefix, admin) == []


async def test_forget_drops_the_copies(rt: MemoryRuntime, admin: redis.Redis, prefix: str) -> None:
    scope = new_scope()
    await paused(rt, scope)
    await paused(rt, Scope(scope.project_id, scope.agent_instance_id, "s2"))
    assert len(copy_keys(prefix, admin)) == 6
    await rt.control.forget(scope.project_id, None, None, dry_run=True)
    assert len(copy_keys(prefix, admin)) == 6
    await rt.control.forget(scope.project_id, None, None, dry_run=False)
    assert copy_keys(prefix, admin) == []


async def test_a_discarded_spawn_drops_the_copy(rt: MemoryRuntime, admin: redis.Redis, prefix: str) -> None:
    scope = new_scope()
    await paused(rt, scope)
    info = await rt.store.get_session(scope)
    assert info is not None
    admin.set(store(rt).keys(scope)[3], incarnation(info))  # as a re-open from this durable session leaves it
    await store(rt).forget(scope, info)
    assert copy_keys(prefix, admin) == []


async def test_an_import_over_leftover_keys_drops_the_copy(
    rt: MemoryRuntime, admin: redis.Redis, clock: FakeClock, prefix: str, tmp_path: Path
) -> None:
    """The session's durable records went but Redis kept its keys and a copy claiming to be cp1's (worst case: the
    tag carries the nonce cp1's record named, over other content); an import then brings cp1 back: the imported cp1
    names no snapshot (so nothing takes the copy before the switch), the switch drops the copy, and the resume
    restores cp1's content."""
    scope = new_scope()
    await paused(rt, scope)
    checkpoint = await rt.store.get_packed_checkpoint(scope, "cp1")
    assert checkpoint is not None and checkpoint.snapshot is not None
    assert rt.transfer is not None
    path = await export_to(rt, Selection(scope.project_id), tmp_path / "export.jsonl")
    await rt.working.set(scope, "a", "leftover")
    await rt.lifecycle.pause(*ids(scope), checkpoint_id="cp9")
    await rt.store.delete_session(scope, False, clock())  # durably only: Redis keeps the copy (of cp9)
    admin.hset(store(rt).copy_keys(scope)[2], "nonce", checkpoint.snapshot)
    await rt.transfer.import_file(path)
    assert copy_keys(prefix, admin) == []
    imported = await rt.store.get_packed_checkpoint(scope, "cp1")
    assert imported is not None and imported.snapshot is None
    await rt.lifecycle.resume(*ids(scope), checkpoint_id="cp1")
    assert await rt.working.get(scope, "a") == 1


async def test_a_switch_drops_a_copy_made_after_the_staging(rt: MemoryRuntime, admin: redis.Redis, prefix: str) -> None:
    scope = new_scope()
    await paused(rt, scope)
    redis_store, now = store(rt), rt.lifecycle._ctx.clock()
    await redis_store.stage_import(scope, {"z": Item(encode_value(1))}, now, rt.working.limits, "tok")
    await redis_store.snapshot_for_pause(scope, now, "late")
    assert len(copy_keys(prefix, admin)) == 3
    await redis_store.switch_import([scope], "tok", now)
    assert copy_keys(prefix, admin) == []
    assert await rt.working.list_keys(scope) == ["z"]


async def test_the_copy_expires_with_the_session_keys(rt: MemoryRuntime, admin: redis.Redis) -> None:
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope))
    await rt.working.set(scope, "t", 1, ttl_seconds=60)  # every key has a TTL: the session's keys expire
    await rt.lifecycle.pause(*ids(scope))
    v = store(rt).keys(scope)[1]
    for key in store(rt).copy_keys(scope):
        assert 0 < admin.pttl(key) <= admin.pttl(v) + 1000  # (read one after the other)
    await rt.working.set(scope, "plain", 1)  # the live keys no longer expire; the copy still does (a day at most)
    await rt.lifecycle.pause(*ids(scope))
    for key in store(rt).copy_keys(scope):
        assert 0 < admin.pttl(key) <= 86_400_000


async def test_copy_keys_share_the_session_hash_slot(rt: MemoryRuntime) -> None:
    keys = store(rt).all_keys(new_scope())
    assert len(keys) == 10  # its four, the copy's three, its order, the imports staged for it and its re-open claims
    assert len({k[k.index("{") : k.index("}") + 1] for k in keys}) == 1


@pytest.mark.parametrize("keys", [COPY_MIN_KEYS - 1, COPY_MIN_KEYS])
async def test_by_default_only_states_of_copy_min_keys_or_more_are_copied(
    rt: MemoryRuntime, admin: redis.Redis, clock: FakeClock, prefix: str, keys: int
) -> None:
    """Below COPY_MIN_KEYS (250) keys a copy would save a resume too little for the memory it takes: a pause makes
    no copy, and the resume reads the state with the checkpoint and restores it. Either way a pause is one round trip
    and so is the resume."""
    assert COPY_MIN_KEYS == 250
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={f"k{i}": i for i in range(keys)})
    store(rt).copy_min_keys = 1
    await rt.lifecycle.pause(*ids(scope), checkpoint_id="first")  # copied
    store(rt).copy_min_keys = COPY_MIN_KEYS
    await rt.working.set(scope, "k0", "changed")
    before = store(rt).round_trips
    await rt.lifecycle.pause(*ids(scope), checkpoint_id="cp")
    copied = keys >= COPY_MIN_KEYS
    assert store(rt).round_trips - before == 1
    assert len(copy_keys(prefix, admin)) == (2 if copied else 0)  # values and tag (no TTLs); an earlier copy goes
    checkpoint = await rt.store.get_checkpoint(scope, "cp")
    assert checkpoint is not None
    await rt.working.set(scope, "k0", "again")
    before = store(rt).round_trips
    await rt.lifecycle.resume(*ids(scope))
    assert store(rt).round_trips - before == 1
    assert await store(rt).snapshot(scope, clock()) == checkpoint.live_items(clock())


async def test_a_refused_pause_of_a_terminated_session_makes_no_copy(
    rt: MemoryRuntime, admin: redis.Redis, prefix: str
) -> None:
    scope = new_scope()
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
    await rt.lifecycle.terminate(*ids(scope), cleanup_working=False)  # its items stay in Redis
    with pytest.raises(MemoryServiceError):
        await rt.lifecycle.pause(*ids(scope))
    assert copy_keys(prefix, admin) == []
