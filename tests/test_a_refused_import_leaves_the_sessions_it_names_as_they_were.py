"""With working memory in Redis, an import stages every session's working memory before its durable step, which may
still refuse it (``conflict``: the sessions exist already; those it finds there before staging are refused before
anything is staged). A refused import must change nothing in Redis for the sessions that exist: not their keys, not
their notes, and not the pause copy a resume takes instead of the checkpoint's text (stores/redis/copies.py). Redis +
SQLite and Redis + Postgres (``two_servers``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mcp_memory import faults
from mcp_memory.errors import Conflict
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio

RedisKey = tuple[str, str, object, bool]
"""A Redis key as read here: its name, type, content and whether it expires."""


def ids(scope: Scope) -> tuple[uuid.UUID, uuid.UUID, str]:
    return scope.project_id, scope.agent_instance_id, scope.session_id


def redis_store(rt: MemoryRuntime) -> RedisWorkingStore:
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    return store


async def redis_keys_of(rt: MemoryRuntime, scope: Scope) -> list[RedisKey]:
    """Every Redis key under the session's name (its own, its pause copy, a staging's, its notes), with content."""
    store = redis_store(rt)
    client = store.client
    base = store.keys(scope)[0].removesuffix(":m")
    found: list[RedisKey] = []
    for key in sorted([str(k) async for k in client.scan_iter(match=f"{base}:*")]):
        kind = await client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        content: object
        if kind == "hash":
            content = await client.hgetall(key)
        elif kind == "zset":
            content = await client.zrange(key, 0, -1, withscores=True)
        else:
            content = await client.get(key)
        found.append((key, kind, content, await client.pttl(key) > 0))
    return found


@pytest.mark.parametrize("as_project", [False, True], ids=["kept-ids", "as-project"])
async def test_a_refused_import_leaves_the_pause_copy_of_a_session_it_names(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path, as_project: bool
) -> None:
    rt, _ = two_servers
    store = redis_store(rt)
    store.copy_min_keys = 1  # a copy of this small state too (the default leaves states under 250 keys out)
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "paused")
    await rt.lifecycle.spawn(*ids(scope), initial_state={"a": 1, "b": [1, 2]})
    await rt.working.set(scope, "later", "l", ttl_seconds=3600)
    await rt.lifecycle.pause(*ids(scope), checkpoint_id="cp1")
    await rt.working.set(scope, "a", 2)  # live writes after the pause: the copy is still cp1's content
    assert rt.transfer is not None
    path = await export_to(rt, Selection(scope.project_id), tmp_path / "export.jsonl")
    before = await redis_keys_of(rt, scope)
    assert {key.rsplit(":", 1)[1] for key, *_ in before} >= {"cv", "cx", "ct"}
    reached: list[str] = []

    async def note(point: str) -> None:
        reached.append(point)

    # The file's session is the one the store holds: kept ids find the scope occupied, --as-project into its own
    # project finds the session there. Either is refused before its durable commit.
    with faults.on_fault(note), pytest.raises(Conflict):
        await rt.transfer.import_file(path, as_project=scope.project_id if as_project else None)
    assert "import.validated" in reached and "import.durable_committed" not in reached
    assert await redis_keys_of(rt, scope) == before

    # The resume takes the copy (the take script alone, one round trip), which is exactly cp1.
    checkpoint = await rt.store.get_checkpoint(scope, "cp1")
    assert checkpoint is not None
    trips = store.round_trips
    await rt.lifecycle.resume(*ids(scope))
    assert store.round_trips - trips == 1
    assert await store.snapshot(scope, rt.clock()) == checkpoint.live_items(rt.clock())
