"""Review 3: probes for 5f88217 (Redis spawn window / durable seal) and the sqlfts merge (per-project BM25).

Each test failed on the reviewed code and documents one defect; a strict xfail marks one not fixed yet.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, Unavailable
from mcp_memory.models import Scope, SessionStatus
from mcp_memory.runtime import MemoryRuntime
from mcp_memory.stores import sqlite as sqlite_store
from tests.conftest import FakeClock, new_scope
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.anyio


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (never the shared one)."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


# -- 1. Redis: a failed terminate's unseal re-opens a session another server has just terminated ----------------
async def test_failed_terminate_does_not_reopen_a_session_another_server_terminated(
    db_url: str, clock: FakeClock, own_redis: RedisServer
) -> None:
    settings = Settings(database_url=db_url, redis_url=own_redis.url, redis_key_prefix="r3")
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        scope = new_scope()
        await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})

        async def failing_record_terminate(*args: Any, **kwargs: Any) -> Any:
            raise Unavailable("the store is busy; retry later")  # e.g. a timeout on server A

        a.store.record_terminate = failing_record_terminate  # type: ignore[method-assign]
        store = a.working_store
        real_eval = store._eval
        done: list[dict[str, Any]] = []

        async def eval_(name: str, keys: Any, args: Any) -> Any:
            if name == "seal" and args[0] == "o" and not done:
                # A's unseal has checked the durable record (not terminated); server B's terminate (the client's
                # retry, once A's seal has lapsed: it takes the seal over) runs to completion right now, before A's
                # unseal lands in Redis (which leaves alone a seal that is no longer A's, and a terminated session).
                clock.advance(settings.terminate_lease_seconds)
                done.append((await b.lifecycle.terminate(*ids(scope))).data)
            return await real_eval(name, keys, args)

        store._eval = eval_  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await a.lifecycle.terminate(*ids(scope))
        assert done and done[0]["state_items_consolidated"] == 1
        info = await a.store.get_session(scope)
        assert info is not None and info.status == SessionStatus.TERMINATED
        store._eval = real_eval  # type: ignore[method-assign]
        # docs/contract.md: "A terminated session accepts no writes".
        with pytest.raises(Conflict):
            await b.working.set(scope, "late", "written after terminate")


# -- 2. SQLite full text: the 64-word cap is not a cap on terms ---------------------------------------------------
def test_query_term_cap_bounds_fts_terms() -> None:
    """Fixed: the cap applies to distinct terms after tokenizing (the query's first 64)."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    sqlite_store._create_tokenizer(db)
    query = "_".join(f"w{i}x" for i in range(600))  # one Python word, 3,000 characters (MAX_QUERY is 4,000)
    terms = sqlite_store._query_terms(db, query)
    assert len(terms) <= sqlite_store._MAX_QUERY_WORDS
    assert list(terms)[:3] == ["w0x", "w1x", "w2x"]  # the first ones


# -- 3. Redis two-step resume in the window between terminate's durable seal and its Redis seal ------------------
async def test_resume_between_durable_seal_and_redis_seal_is_conflict(
    db_url: str, clock: FakeClock, own_redis: RedisServer
) -> None:
    settings = Settings(database_url=db_url, redis_url=own_redis.url, redis_key_prefix="r3b")
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        scope = new_scope()
        await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
        await a.lifecycle.pause(*ids(scope), checkpoint_id="c1")
        await a.working.set(scope, "k", 2)
        store = a.working_store
        real_seal = store.seal
        outcome: list[Any] = []

        async def seal(s: Scope, *args: Any) -> None:
            # Server A's terminate has sealed the durable record; server B's resume comes now.
            try:
                outcome.append(await b.lifecycle.resume(*ids(scope), checkpoint_id="c1"))
            except Conflict as exc:
                outcome.append(exc)
            await real_seal(s, *args)

        store.seal = seal  # type: ignore[method-assign]
        await a.lifecycle.terminate(*ids(scope))
        assert len(outcome) == 1
        assert isinstance(outcome[0], Conflict), f"resume of a session being terminated returned {outcome[0]!r}"
