"""An import into Redis + a SQL store is all or nothing, working memory included: every session's working memory is
staged in Redis apart from the live keys before the durable transaction, and switched in after it in one script.
A failure midway through the staging (a fault point) leaves nothing of the import anywhere, in either store, and
leaves other sessions' working memory untouched; so does a refused import (``conflict``). On real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict
from mcp_memory.models import Item, Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.scripts import RECLAIM_MARGIN_MS, STAGING_TTL_MS
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix
from tests.transfer_helpers import export_to, records

pytestmark = pytest.mark.anyio

AGENT = uuid.uuid4()
SESSIONS = ("s0", "s1", "s2", "s3")


@pytest.fixture
async def exported(tmp_path: Path) -> tuple[uuid.UUID, Path]:
    """A project of four sessions with working memory (one key with a TTL each, one session paused), exported."""
    project = uuid.uuid4()
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(settings) as rt:
        for n, sid in enumerate(SESSIONS):
            await rt.lifecycle.spawn(project, AGENT, sid, initial_state={"n": n})
            await rt.working.set(Scope(project, AGENT, sid), "soon", n, ttl_seconds=3600)
        await rt.lifecycle.pause(project, AGENT, "s3")
        return project, await export_to(rt, Selection(project), tmp_path / "export.jsonl")


@pytest.fixture
def prefix() -> AsyncIterator[str]:
    name = unique_prefix()
    yield name
    delete_keys(shared_redis_url(), name)


@pytest.fixture
async def target(tmp_path: Path, prefix: str) -> AsyncIterator[MemoryRuntime]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'target.db'}",
        redis_url=shared_redis_url(),
        redis_key_prefix=prefix,
    )
    async with MemoryRuntime(settings) as rt:
        yield rt


def redis_keys(prefix: str, project: uuid.UUID) -> list[str]:
    client = redis.Redis.from_url(shared_redis_url())
    try:
        return sorted(k.decode() for k in client.scan_iter(match=f"{prefix}:{{{project}/*", count=1000))
    finally:
        client.close()


async def nothing_of(rt: MemoryRuntime, project: uuid.UUID, prefix: str, tmp_path: Path) -> None:
    kinds = [r["kind"] for r in records(await export_to(rt, Selection(project), tmp_path / f"{uuid.uuid4()}.jsonl"))]
    assert kinds == ["header", "trailer"]
    assert redis_keys(prefix, project) == []


async def test_a_failure_midway_through_the_staging_leaves_nothing_of_the_import(
    exported: tuple[uuid.UUID, Path], target: MemoryRuntime, prefix: str, tmp_path: Path
) -> None:
    project, path = exported
    assert target.transfer is not None
    bystander = Scope(uuid.uuid4(), AGENT, "s0")
    await target.lifecycle.spawn(bystander.project_id, AGENT, "s0", initial_state={"mine": "untouched"})
    staged = 0

    async def fail_at_the_second(point: str) -> None:
        nonlocal staged
        if point == "import.working_staged":
            staged += 1
            if staged == 2:
                raise RuntimeError("injected: the import stops midway")

    with faults.on_fault(fail_at_the_second), pytest.raises(RuntimeError, match="injected"):
        await target.transfer.import_file(path)
    assert staged == 2
    await nothing_of(target, project, prefix, tmp_path)
    assert await target.working.get(bystander, "mine") == "untouched"
    # Nothing was left to conflict with: the same import then goes through whole.
    report = await target.transfer.import_file(path)
    assert (report.working_sessions_written, report.working_sessions) == (4, 4)
    for n, sid in enumerate(SESSIONS):
        scope = Scope(project, AGENT, sid)
        assert await target.working.get(scope, "n") == n and await target.working.get(scope, "soon") == n
    assert not [k for k in redis_keys(prefix, project) if ":import:" in k]


async def test_a_failure_after_the_last_session_is_staged_leaves_nothing_either(
    exported: tuple[uuid.UUID, Path], target: MemoryRuntime, prefix: str, tmp_path: Path
) -> None:
    project, path = exported
    assert target.transfer is not None

    staged = 0

    async def fail_before_the_durable_write(point: str) -> None:
        nonlocal staged
        staged += point == "import.working_staged"
        if staged == len(SESSIONS):
            raise RuntimeError("injected: the last session staged")

    with faults.on_fault(fail_before_the_durable_write), pytest.raises(RuntimeError, match="injected"):
        await target.transfer.import_file(path)
    await nothing_of(target, project, prefix, tmp_path)


async def test_a_refused_import_leaves_live_working_memory_untouched(
    exported: tuple[uuid.UUID, Path], target: MemoryRuntime, prefix: str
) -> None:
    project, path = exported
    assert target.transfer is not None
    await target.transfer.import_file(path)
    scope = Scope(project, AGENT, "s0")
    await target.working.set(scope, "n", "changed since")
    before = redis_keys(prefix, project)
    with pytest.raises(Conflict):
        await target.transfer.import_file(path)  # ids kept, into a scope no longer empty
    assert await target.working.get(scope, "n") == "changed since"
    assert redis_keys(prefix, project) == before


def ttls(prefix: str, project: uuid.UUID) -> dict[str, int]:
    client = redis.Redis.from_url(shared_redis_url())
    try:
        return {k: int(client.pttl(k)) for k in redis_keys(prefix, project)}
    finally:
        client.close()


async def test_staged_keys_left_by_a_crashed_import_expire_by_themselves(target: MemoryRuntime, prefix: str) -> None:
    store = target.working.store
    assert isinstance(store, RedisWorkingStore)
    scope = Scope(uuid.uuid4(), AGENT, "s0")
    now = time.time()
    items = {"n": Item('"kept"'), "soon": Item('"gone"', now + 60)}
    # The import stops here for good (a killed process): no switch, no drop.
    assert await store.stage_import(scope, items, now, target.working.limits, "crashed-token") == 2
    staged = ttls(prefix, scope.project_id)
    # Its staged keys, and the session's note of the imports staged for it (a re-open takes that state).
    assert staged and all(":import:crashed-token:" in k or k.endswith("}:im") for k in staged), staged
    assert all(0 < ms <= STAGING_TTL_MS for ms in staged.values()), staged


async def test_switched_keys_carry_the_expiry_of_their_items_not_the_staging_ttl(
    exported: tuple[uuid.UUID, Path], target: MemoryRuntime, prefix: str
) -> None:
    project, path = exported
    assert target.transfer is not None
    await target.transfer.import_file(path)
    live = ttls(prefix, project)
    assert live and not [k for k in live if ":import:" in k]
    # Every session keeps "n" without a TTL next to "soon" with one: no key of the session expires as a whole.
    assert all(ms == -1 for ms in live.values()), live
    scope = Scope(project, AGENT, "s0")
    await target.working.delete(scope, "n")  # now every key left has a TTL: the hash expires after the latest
    after = ttls(prefix, project)
    assert 0 < max(after.values()) <= (3600 * 1000 + RECLAIM_MARGIN_MS)
