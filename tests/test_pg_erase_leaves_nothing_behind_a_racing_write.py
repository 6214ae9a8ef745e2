"""On Postgres as both stores, a session removed by ``delete_session`` or by the operator's ``forget`` leaves no row
behind a write that races it. The removal locks the sessions' rows before it deletes anything; a ``memory_set``,
``pause`` or ``resume`` (from this server or another one) locks the session's row first, so it waits for the removal
and then answers ``not_found``. Before, a write landing between the removal's delete of ``working_items`` and its
delete of ``sessions`` committed: its working-memory row stayed for good with no session to reach it through (no
foreign key ties ``working_items`` to a session), and a pause's checkpoint made the removal fail as ``internal``. The
order is forced with the fault point ``erase.rows_deleted`` (mcp_memory.faults)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import anyio
import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import MemoryServiceError, NotFound
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests import pg_servers

pytestmark = pytest.mark.anyio

ORPHANS = "SELECT " + " + ".join(
    f"(SELECT count(*) FROM {table} r WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.session_pk))"
    for table in ("working_items", "checkpoints", "events")
)
WAITING = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"

Write = Callable[[MemoryRuntime, Scope], Awaitable[object]]


async def memory_set(rt: MemoryRuntime, scope: Scope) -> object:
    return await rt.working.set(scope, "late", "pii-2")


async def pause(rt: MemoryRuntime, scope: Scope) -> object:
    return await rt.lifecycle.pause(str(scope.project_id), str(scope.agent_instance_id), scope.session_id)


async def resume(rt: MemoryRuntime, scope: Scope) -> object:
    return await rt.lifecycle.resume(str(scope.project_id), str(scope.agent_instance_id), scope.session_id)


async def delete_session(rt: MemoryRuntime, scope: Scope) -> object:
    return await rt.control.delete_session(str(scope.project_id), str(scope.agent_instance_id), scope.session_id)


async def forget(rt: MemoryRuntime, scope: Scope) -> object:
    return await rt.control.forget(scope.project_id, None, None, dry_run=False)


@pytest.mark.parametrize("remove", [delete_session, forget], ids=["delete_session", "forget"])
@pytest.mark.parametrize("write", [memory_set, pause, resume], ids=["memory_set", "pause", "resume"])
async def test_a_write_racing_a_removal_waits_and_finds_no_session(write: Write, remove: Write) -> None:
    url = pg_servers.database_url(await pg_servers.migrated_database())
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    # Two servers on one database: the write comes from the other one, which shares no lock in Python.
    async with MemoryRuntime(Settings(database_url=url)) as rt, MemoryRuntime(Settings(database_url=url)) as other:
        await rt.lifecycle.spawn(*ids, initial_state={"secret": "pii-1"})
        await rt.lifecycle.pause(*ids)
        answers: list[str] = []
        written = anyio.Event()

        async def racing_write() -> None:
            try:
                await write(other, scope)
                answers.append("ok")
            except NotFound:
                answers.append("not_found")
            except MemoryServiceError as exc:
                answers.append(exc.code)
            written.set()

        async def between(point: str) -> None:
            """In the removal's transaction, after its rows went: the write runs until it is done or waits for a
            lock (what a removal that locked the sessions first makes it do)."""
            if point != "erase.rows_deleted":
                return
            tg.start_soon(racing_write)
            with anyio.fail_after(20):
                while not written.is_set() and await pg_servers.first_column(url, WAITING) == {"0"}:  # noqa: ASYNC110
                    await anyio.sleep(0.01)  # polls the server's lock table: no event to wait for

        with faults.on_fault(between), anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                await remove(rt, scope)
        assert answers == ["not_found"]
        assert await pg_servers.first_column(url, ORPHANS) == {"0"}
