"""Review 4: probes for 90058c0 (seal owner token and lease), 724614b (Redis 't' marker) and a512374 (SQLite
schema 5). Each test showed one defect found on the reviewed code (strict xfails until fixed; they pass now)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, Unavailable
from mcp_memory.models import Item, Scope, SessionStatus
from mcp_memory.runtime import MemoryRuntime
from tests.conftest import FakeClock, new_scope

pytestmark = pytest.mark.anyio


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


# -- 1. record_terminate is not fenced by the seal's token ------------------------------------------------------
async def test_terminate_whose_seal_was_taken_over_does_not_lose_an_acknowledged_write(db_url: str) -> None:
    settings = Settings(database_url=db_url)
    lease = settings.terminate_lease_seconds
    clock_a = FakeClock(1_800_000_000.0)
    clock_b = FakeClock(clock_a() + lease + 1)  # server B's clock runs ahead of A's by more than the lease
    scope = new_scope()
    async with MemoryRuntime(settings, clock=clock_a) as a, MemoryRuntime(settings, clock=clock_b) as b:
        await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
        a_snapshotted, go_on = anyio.Event(), anyio.Event()
        snapshot = a.working_store.snapshot

        async def held_snapshot(s: Scope, now: float) -> dict[str, Item]:
            items = await snapshot(s, now)
            a_snapshotted.set()
            with anyio.fail_after(5):
                await go_on.wait()  # e.g. a slow embedding; by A's own clock no time passes
            return items

        async def failing_record_terminate(*args: Any, **kwargs: Any) -> Any:
            raise Unavailable("injected: B's store call times out")

        a.working_store.snapshot = held_snapshot  # type: ignore[method-assign]
        b.store.record_terminate = failing_record_terminate  # type: ignore[method-assign]
        outcome: list[Any] = []

        async def terminate_a() -> None:
            try:
                outcome.append((await a.lifecycle.terminate(*ids(scope))).data)
            except Conflict as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate_a)
            with anyio.fail_after(5):
                await a_snapshotted.wait()
            # B sees A's seal as lapsed (its clock), takes it over, fails and unseals its own seal: open again.
            with pytest.raises(Unavailable):
                await b.lifecycle.terminate(*ids(scope))
            written = True
            try:
                await b.working.set(scope, "late", "acknowledged")
            except Conflict:
                written = False
            go_on.set()

        if not written:
            return  # refused: nothing acknowledged, nothing lost
        info = await a.store.get_session(scope)
        assert info is not None
        if info.status == SessionStatus.TERMINATED:
            episode = await a.episodic.get(scope.project_id, info.terminate_result["episode_id"])
            assert "late" in episode.metadata["state_keys"], (
                f"acknowledged write 'late' neither consolidated nor kept: episode has {episode.metadata['state_keys']}"
            )
        else:
            assert await a.working.get(scope, "late") is not None


# -- 2. spawn's compensation discards a session another server has terminated meanwhile -------------------------
@pytest.fixture
def own_redis(tmp_path: Any) -> Any:
    from tests.redis_servers import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


async def test_failed_spawn_does_not_discard_a_session_terminated_meanwhile(
    db_url: str, clock: FakeClock, own_redis: Any
) -> None:
    settings = Settings(database_url=db_url, redis_url=own_redis.url, redis_key_prefix="r4")
    scope = new_scope()
    async with MemoryRuntime(settings, clock=clock) as a, MemoryRuntime(settings, clock=clock) as b:
        open_ = a.working_store.open
        ended: list[dict[str, Any]] = []

        async def open_after_terminate(*args: Any, **kwargs: Any) -> Any:
            # Between the durable create and the Redis open, server B terminates the session (Redis re-opens it
            # from the durable record); then A's open fails (a Redis timeout).
            ended.append((await b.lifecycle.terminate(*ids(scope))).data)
            raise Unavailable("injected: Redis timed out")

        a.working_store.open = open_after_terminate  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
        a.working_store.open = open_  # type: ignore[method-assign]
        assert ended and ended[0]["episode_id"]
        info = await a.store.get_session(scope)
        assert info is not None and info.status == SessionStatus.TERMINATED, "the terminated session's record is gone"
        events = [(e.event_type, e.outcome) for e in await a.store.list_events(scope, 100)]
        assert ("terminate", "ok") in events
