"""With working memory in Redis, the last step of a terminate (and of an import of a terminated session) marks the
session terminated there, after the durable record says so. Another server may delete the session in between and
make its id a new session: by a spawn, by an import, or by a server of an earlier release (whose sessions do not
note which durable session they are, ``:i``). The late close must leave each of those open with what it holds; and
a session of an earlier release is still closed by its own terminate. The terminate, whose session is gone, answers
``conflict``. Redis + SQLite."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import redis

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, Respawned
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.conftest import FakeClock
from tests.held_back import HeldBack
from tests.transfer_helpers import export_to

pytestmark = [pytest.mark.anyio, pytest.mark.backends("redis")]


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


async def terminate_respawned(rt: MemoryRuntime, scope: Scope) -> None:
    """``rt`` terminates the session, which another server deletes and makes anew before the terminate's last steps:
    its answer is ``conflict``."""
    with pytest.raises(Respawned):
        await rt.lifecycle.terminate(*ids(scope))


def as_an_earlier_release_left_it(rt: MemoryRuntime, scope: Scope) -> None:
    """The session in Redis as a spawn of a release before ``:i`` made it: the same, without its ``:i``."""
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore) and rt.settings.redis_url is not None
    with redis.Redis.from_url(rt.settings.redis_url) as admin:
        assert admin.delete(store.keys(scope)[3]) == 1


async def exported_session(tmp_path: Path, scope: Scope, *, terminated: bool) -> Path:
    """An export of the one session ``scope`` holding ``{"imported": 1}`` (terminated keeping it, if asked)."""
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(*ids(scope), initial_state={"imported": 1})
        if terminated:
            await rt.lifecycle.terminate(*ids(scope), cleanup_working=False)
        selection = Selection(scope.project_id, scope.agent_instance_id, scope.session_id)
        return await export_to(rt, selection, tmp_path / "session.jsonl")


async def test_the_close_of_an_imported_terminated_session_leaves_its_successor_open(
    runtime: MemoryRuntime, settings: Settings, clock: FakeClock, scope: Scope, tmp_path: Path
) -> None:
    """The import switches the terminated session in, then closes it as terminate does; between the two another
    server deletes it and spawns its id again."""
    path = await exported_session(tmp_path, scope, terminated=True)
    async with MemoryRuntime(settings, clock=clock) as other:

        async def respawn_after_the_switch(point: str) -> None:
            if point == "import.switched":
                await other.control.delete_session(*ids(scope))
                await other.lifecycle.spawn(*ids(scope), initial_state={"fresh": 1})
                await other.working.set(scope, "acknowledged", "written by the other server")

        assert runtime.transfer is not None
        with faults.on_fault(respawn_after_the_switch):
            await runtime.transfer.import_file(path)
        await other.working.set(scope, "later", "still writable")
        assert await runtime.working.list_keys(scope) == ["acknowledged", "fresh", "later"]


async def test_a_late_close_leaves_a_session_imported_meanwhile_open(
    settings: Settings, clock: FakeClock, scope: Scope, tmp_path: Path
) -> None:
    path = await exported_session(tmp_path, scope, terminated=False)
    async with MemoryRuntime(settings, clock=clock) as rt_a, MemoryRuntime(settings, clock=clock) as rt_b:
        await rt_a.lifecycle.spawn(*ids(scope), initial_state={"old": 1})
        held = HeldBack()
        held.hold(rt_a.working_store)
        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate_respawned, rt_a, scope)
            await held.reached()
            await rt_b.control.delete_session(*ids(scope), keep_episodes=False)
            assert rt_b.transfer is not None
            await rt_b.transfer.import_file(path)
            await rt_b.working.set(scope, "acknowledged", "written by B")
            held.go_on.set()
        await rt_b.working.set(scope, "later", "still writable")
        assert await rt_a.working.list_keys(scope) == ["acknowledged", "imported", "later"]


async def test_a_late_close_leaves_a_session_an_earlier_release_spawned_meanwhile_open(
    settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    async with MemoryRuntime(settings, clock=clock) as rt_a, MemoryRuntime(settings, clock=clock) as rt_b:
        await rt_a.lifecycle.spawn(*ids(scope), initial_state={"old": 1})
        held = HeldBack()
        held.hold(rt_a.working_store)
        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate_respawned, rt_a, scope)
            await held.reached()
            await rt_b.control.delete_session(*ids(scope))
            clock.advance(1)
            await rt_b.lifecycle.spawn(*ids(scope), initial_state={"fresh": 1})
            as_an_earlier_release_left_it(rt_b, scope)
            await rt_b.working.set(scope, "acknowledged", "written by B")
            held.go_on.set()
        await rt_b.working.set(scope, "later", "still writable")
        assert await rt_a.working.list_keys(scope) == ["acknowledged", "fresh", "later"]


async def test_a_session_of_an_earlier_release_is_closed_by_its_terminate_whatever_unseals_it(
    runtime: MemoryRuntime, scope: Scope
) -> None:
    """Its terminate's seal notes which session it is: the close knows it for its own even once the seal is gone
    (here, the worst case: a late unseal under the recording terminate's own token, just before the close)."""
    rt = runtime
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    await rt.lifecycle.spawn(*ids(scope), initial_state={"k": 1})
    as_an_earlier_release_left_it(rt, scope)
    real_mark = store.mark_terminated

    async def unsealed_first(*args: object, **kwargs: object) -> int:
        with redis.Redis.from_url(rt.settings.redis_url or "", decode_responses=True) as admin:
            owner = admin.get(store.keys(scope)[0]).split(":")[1]
        await store._eval("seal", store.keys(scope), ["o", owner])
        return await real_mark(*args, **kwargs)  # type: ignore[arg-type]

    store.mark_terminated = unsealed_first  # type: ignore[method-assign]
    result = await rt.lifecycle.terminate(*ids(scope))
    assert result.data["items_cleared"] == 1
    assert await rt.working.list_keys(scope) == []
    with pytest.raises(Conflict, match="is terminated"):
        await rt.working.set(scope, "late", 1)
