"""With working memory in Redis, ``delete_session`` erases Redis, deletes the durable record, then erases Redis again
(a call may have re-opened the session in between). If that last erase fails, the call fails with the record already
gone, and the re-opened session is left in Redis, readable and writable: a retried ``delete_session`` finds no durable
session and answers ``not_found``, and must first erase what Redis holds of it, so that "deleted" means gone. It must
leave alone what is not a leftover: a spawn of the session id in progress (its staged state) and an import staging
it (its staged state and its note, which the switch needs). The order is forced with the fault points
(mcp_memory.faults); Redis + SQLite and Redis + Postgres (``two_servers``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from mcp_memory import faults
from mcp_memory.errors import NotFound, Unavailable
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.test_a_session_deleted_before_its_imports_switch_stays_deleted import exported_session, ids, redis_keys_of

pytestmark = pytest.mark.anyio


async def test_a_retried_deletion_erases_a_session_reopened_before_a_failed_one_deleted_its_record(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    rt, other = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    await rt.lifecycle.spawn(*ids(scope), initial_state={"secret": "pii"})
    await rt.lifecycle.pause(*ids(scope))

    async def reopen_then_fail(point: str) -> None:
        if point == "delete.working_erased":  # another server's read re-opens it from its checkpoint (sealed)
            assert await other.working.get(scope, "secret") == "pii"
        elif point == "delete.durable_deleted":  # stands for the second Redis erase failing
            raise Unavailable("Redis stopped answering")

    with faults.on_fault(reopen_then_fail), anyio.fail_after(30), pytest.raises(Unavailable):
        await rt.control.delete_session(*ids(scope))
    assert await rt.store.get_session(scope) is None
    assert await rt.working.get(scope, "secret") == "pii"  # the leftover, before the retry

    with pytest.raises(NotFound):
        await rt.control.delete_session(*ids(scope))
    for read_back in (rt.working.list_keys(scope), rt.working.get(scope, "secret")):
        with pytest.raises(NotFound):
            await read_back
    with pytest.raises(NotFound):
        await rt.working.set(scope, "later", 2)
    assert await redis_keys_of(rt, scope) == []


async def test_a_deletion_of_a_session_being_spawned_leaves_its_staged_state(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    spawner, deleter = two_servers
    store = spawner.working_store
    assert isinstance(store, RedisWorkingStore)
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    staged: list[tuple[object, object]] = []

    async def delete_while_staged(point: str) -> None:
        if point == "spawn.staged":
            with pytest.raises(NotFound):
                await deleter.control.delete_session(*ids(scope))
            m, v = store.keys(scope)[:2]
            staged.append((await store.client.get(m), await store.client.hlen(v)))

    with faults.on_fault(delete_while_staged), anyio.fail_after(30):
        await spawner.lifecycle.spawn(*ids(scope), initial_state={"secret": "pii"})
    assert len(staged) == 1 and staged[0][1] == 1
    marker = staged[0][0]
    assert isinstance(marker, bytes | str) and (marker.decode() if isinstance(marker, bytes) else marker)[:2] == "p:"
    assert await deleter.working.get(scope, "secret") == "pii"


async def test_a_deletion_of_a_session_being_imported_leaves_its_staged_state(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path
) -> None:
    importer, deleter = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "imported")
    path = await exported_session(tmp_path, scope, terminated=False)

    async def delete_while_staged(point: str) -> None:
        if point == "import.working_staged":
            with pytest.raises(NotFound):
                await deleter.control.delete_session(*ids(scope))

    assert importer.transfer is not None
    with faults.on_fault(delete_while_staged), anyio.fail_after(30):
        report = await importer.transfer.import_file(path)
    assert (report.working_sessions_written, report.working_sessions) == (1, 1)
    assert await deleter.working.get(scope, "secret") == "pii"


@pytest.mark.parametrize("spawned_at", ["delete.absent", "delete.leftover_checked"])
async def test_a_spawn_completing_while_a_retried_deletion_looks_at_the_leftover_keeps_its_working_memory(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], spawned_at: str
) -> None:
    """The leftover is erased only if the durable store, read again after Redis was asked, still holds no session,
    and only if its keys still note what Redis answered then: a spawn of the same id that completes after the first
    read (found by the second) or after the second (noting its own incarnation) keeps its initial state."""
    rt, other = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    await rt.lifecycle.spawn(*ids(scope), initial_state={"secret": "pii"})
    await rt.lifecycle.pause(*ids(scope))

    async def reopen_then_fail(point: str) -> None:
        if point == "delete.working_erased":
            assert await other.working.get(scope, "secret") == "pii"
        elif point == "delete.durable_deleted":
            raise Unavailable("Redis stopped answering")

    with faults.on_fault(reopen_then_fail), anyio.fail_after(30), pytest.raises(Unavailable):
        await rt.control.delete_session(*ids(scope))
    assert await rt.working.get(scope, "secret") == "pii"  # the leftover

    async def spawn_meanwhile(point: str) -> None:
        if point == spawned_at:
            await other.lifecycle.spawn(*ids(scope), initial_state={"fresh": "state"})

    with faults.on_fault(spawn_meanwhile), anyio.fail_after(30), pytest.raises(NotFound):
        await rt.control.delete_session(*ids(scope))
    assert await rt.working.get(scope, "fresh") == "state"
    assert await rt.working.list_keys(scope) == ["fresh"]
