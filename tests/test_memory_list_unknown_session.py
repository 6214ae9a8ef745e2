"""``memory_list`` of a session that does not exist is ``not_found``, on every pair of stores, and ``memory_get``
says whether the session or the key is missing.

A working store's reads of an unknown session see nothing (its port's contract), so ``WorkingMemory`` asks the
durable store when a listing comes back empty: SQLite, Postgres, and Redis over SQLite or Postgres (where Redis
never held the session, and where it lost one it had) all answer the same. A known session with no keys lists
``[]``, and a terminated one lists what ``memory_get`` would read.
"""

from __future__ import annotations

import pytest
import redis

from mcp_memory.config import Settings
from mcp_memory.errors import NotFound
from mcp_memory.models import Scope
from mcp_memory.services.episodic import EpisodicMemory
from mcp_memory.services.lifecycle import AgentLifecycleManager
from mcp_memory.services.working import WorkingMemory
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, StorePair, new_scope
from tests.redis_servers import shared_redis_url

pytestmark = pytest.mark.anyio


def services(stores: StorePair, settings: Settings, clock: FakeClock) -> tuple[WorkingMemory, AgentLifecycleManager]:
    """Working memory and the lifecycle over ``stores``, wired as the runtime wires them."""
    working = WorkingMemory(stores.working, settings, clock, sessions=stores.durable)
    episodic = EpisodicMemory(stores.durable, settings, None, clock)
    return working, AgentLifecycleManager(working, stores.durable, episodic, settings, clock=clock)


async def test_memory_list_of_unknown_session_is_not_found_on_every_store(
    stores: StorePair, settings: Settings, clock: FakeClock
) -> None:
    working, lifecycle = services(stores, settings, clock)
    unknown = new_scope("never")
    for prefix in (None, "", "k"):
        with pytest.raises(NotFound) as info:
            await working.list_keys(unknown, prefix)
        assert str(info.value).startswith("not_found: ") and "never" in str(info.value)
    # The same agent's other session, and the same session id under another agent, are known to nobody either.
    scope = new_scope("s1")
    p, a = str(scope.project_id), str(scope.agent_instance_id)
    await lifecycle.spawn(p, a, "s1")
    with pytest.raises(NotFound):
        await working.list_keys(Scope(scope.project_id, scope.agent_instance_id, "s2"))
    with pytest.raises(NotFound):
        await working.list_keys(Scope(scope.project_id, new_scope().agent_instance_id, "s1"))
    # A known session with no keys (or none under the prefix) lists nothing, without an error.
    assert await working.list_keys(scope) == []
    await working.set(scope, "k1", 1)
    assert await working.list_keys(scope, "z") == []
    assert await working.list_keys(scope, "k") == ["k1"]


async def test_memory_get_says_whether_the_session_or_the_key_is_missing(
    stores: StorePair, settings: Settings, clock: FakeClock
) -> None:
    working, lifecycle = services(stores, settings, clock)
    with pytest.raises(NotFound, match="session 'never' does not exist"):
        await working.get(new_scope("never"), "k1")
    scope = new_scope("s1")
    await lifecycle.spawn(str(scope.project_id), str(scope.agent_instance_id), "s1", initial_state={"k1": 1})
    with pytest.raises(NotFound, match="key 'k2' does not exist in session 's1'"):
        await working.get(scope, "k2")
    assert await working.get(scope, "k1") == 1


async def test_memory_list_of_terminated_session_reads_like_memory_get(
    stores: StorePair, settings: Settings, clock: FakeClock
) -> None:
    working, lifecycle = services(stores, settings, clock)
    cleared, kept = new_scope("cleared"), new_scope("kept")
    for scope, cleanup in ((cleared, True), (kept, False)):
        p, a, s = str(scope.project_id), str(scope.agent_instance_id), scope.session_id
        await lifecycle.spawn(p, a, s, initial_state={"k": 1})
        await lifecycle.terminate(p, a, s, cleanup_working=cleanup)
    assert await working.list_keys(cleared) == []
    with pytest.raises(NotFound):  # the key, not the session
        await working.get(cleared, "k")
    assert await working.list_keys(kept) == ["k"]
    assert await working.get(kept, "k") == 1


async def test_memory_list_of_session_redis_lost_is_still_known(
    stores: StorePair, settings: Settings, clock: FakeClock
) -> None:
    """Redis that lost a session (restart without persistence, eviction) re-opens it: known, so never not_found."""
    if not isinstance(stores.working, RedisWorkingStore):
        pytest.skip("only Redis can lose a session the durable store holds")
    working, lifecycle = services(stores, settings, clock)
    scope = new_scope("lost")
    await lifecycle.spawn(str(scope.project_id), str(scope.agent_instance_id), "lost")
    admin = redis.Redis.from_url(shared_redis_url())
    try:
        assert admin.delete(*stores.working.keys(scope)) > 0
    finally:
        admin.close()
    assert await working.list_keys(scope) == []
