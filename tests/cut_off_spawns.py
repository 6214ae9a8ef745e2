"""What a spawn cut off by a crash leaves (working memory in Redis: :mod:`mcp_memory.services.staged_spawn`), made at
the store level, and what the tests of its removal look at: the session's Redis keys, its marker, the durable rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import redis

from mcp_memory.models import Item, Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.ports import EventRecord, Limits
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.redis_servers import shared_redis_url


def ids(scope: Scope) -> tuple[Any, Any, str]:
    return scope.project_id, scope.agent_instance_id, scope.session_id


async def cut_off_spawn(rt: MemoryRuntime, scope: Scope, items: Mapping[str, Any]) -> str:
    """What a server killed right after a spawn's staging leaves: the durable store's incomplete session, held by the
    spawn's token and lease, and (Redis) the initial state ``items`` staged under that token. Returns the token."""
    token = uuid.uuid4().hex
    now = rt.clock()
    lease = rt.settings.spawn_lease_seconds
    await rt.store.begin_spawn(scope, None, {}, now, EventRecord("spawn", now, 0.0, "ok"), token, lease)
    if isinstance(rt.working_store, RedisWorkingStore):
        staged = {k: Item(json.dumps(v)) for k, v in items.items()}
        await rt.working_store.stage(scope, staged, now, Limits(max_keys=1000), token)
    return token


def redis_keys(rt: MemoryRuntime, scope: Scope) -> dict[str, int]:
    """The session's own Redis keys that exist, each with its TTL (-1: none); {} without Redis."""
    if not isinstance(rt.working_store, RedisWorkingStore):
        return {}
    admin = redis.Redis.from_url(shared_redis_url())
    try:
        return {k: admin.ttl(k) for k in rt.working_store.keys(scope) if admin.exists(k)}
    finally:
        admin.close()


def marker(rt: MemoryRuntime, scope: Scope) -> str | None:
    """The session's marker in Redis (``p:<token>`` while a spawn's state is staged, ``o`` once open), or None."""
    assert isinstance(rt.working_store, RedisWorkingStore)
    admin = redis.Redis.from_url(shared_redis_url())
    try:
        value = admin.get(rt.working_store.keys(scope)[0])
        return None if value is None else value.decode()
    finally:
        admin.close()


async def rows(rt: MemoryRuntime) -> int:
    """Sessions in the durable store, incomplete ones included (``doctor``'s count)."""
    return int((await rt.store.ping())["sessions"])


__all__ = ["cut_off_spawn", "ids", "marker", "redis_keys", "rows"]
