"""With working memory in Redis, an import commits its durable records and then switches each session's staged
working memory in. A call of another server that touches an imported session in between finds it missing in Redis
and re-opens it from the durable store: it must see the imported working memory (not only the newest checkpoint),
and what it writes, acknowledged, must still be there after the switch. An import that stops right after its
durable commit (its switch never comes) leaves its sessions to be re-opened with their imported working memory.
Redis + SQLite and Redis + Postgres (``two_servers``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio

IMPORTED = {"checkpointed": 1, "after_the_pause": 2}
"""The exported session's working memory; its newest checkpoint holds only the first key."""


class Stopped(Exception):
    """Stands for an import process that died at a fault point."""


def ids(scope: Scope) -> tuple[uuid.UUID, uuid.UUID, str]:
    return scope.project_id, scope.agent_instance_id, scope.session_id


async def exported_session(tmp_path: Path, scope: Scope, *, sealed: bool = False) -> Path:
    """An export of the running session ``scope`` whose working memory is :data:`IMPORTED`, newer than its checkpoint
    (so that a re-open from the checkpoint can be told from the imported working memory); ``sealed``: by a terminate
    that was cut off."""
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(*ids(scope), initial_state={"checkpointed": 1})
        await rt.lifecycle.pause(*ids(scope))
        await rt.lifecycle.resume(*ids(scope), checkpoint_id=None)
        await rt.working.set(scope, "after_the_pause", 2)
        if sealed:
            await rt.store.seal(scope, "a-terminate-that-never-ended", rt.clock(), 60.0)
        selection = Selection(scope.project_id, scope.agent_instance_id, scope.session_id)
        return await export_to(rt, selection, tmp_path / "session.jsonl")


async def contents(rt: MemoryRuntime, scope: Scope) -> dict[str, object]:
    return {key: await rt.working.get(scope, key) for key in await rt.working.list_keys(scope)}


async def staging_left(rt: MemoryRuntime, scope: Scope) -> list[str]:
    """The Redis keys of imports staged for ``scope`` (its staged states, and its note of them)."""
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    base = store.keys(scope)[0].removesuffix(":m")
    return sorted([str(key) async for key in store.client.scan_iter(match=f"{base}:im*")])


async def test_a_write_between_an_imports_durable_commit_and_its_switch_is_kept(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path
) -> None:
    importer, server = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "imported")
    path = await exported_session(tmp_path, scope)
    seen: list[dict[str, object]] = []

    async def call_in_the_window(point: str) -> None:
        if point == "import.durable_committed":
            seen.append(await contents(server, scope))
            await server.working.set(scope, "acknowledged", "written before the switch")

    assert importer.transfer is not None
    with faults.on_fault(call_in_the_window):
        report = await importer.transfer.import_file(path)
    assert seen == [IMPORTED]
    assert (report.working_sessions_written, report.working_sessions) == (1, 1)
    expected = {**IMPORTED, "acknowledged": "written before the switch"}
    assert await contents(importer, scope) == await contents(server, scope) == expected
    assert await staging_left(importer, scope) == []
    await server.working.set(scope, "later", 3)  # open, as imported
    await server.lifecycle.pause(*ids(scope))
    assert (await importer.lifecycle.resume(*ids(scope), checkpoint_id=None)).data["items_restored"] == 4


async def test_a_session_whose_import_stopped_after_its_durable_commit_comes_back_with_its_imported_memory(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path
) -> None:
    """The switch never comes (the process died); the staged state it left is the session's, whose durable record
    the import committed: the first call takes it, rather than falling back to the newest checkpoint."""
    importer, server = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "imported")
    path = await exported_session(tmp_path, scope)

    async def die_after_the_commit(point: str) -> None:
        if point == "import.durable_committed":
            raise Stopped

    assert importer.transfer is not None
    with faults.on_fault(die_after_the_commit), pytest.raises(Stopped):
        await importer.transfer.import_file(path)
    await server.working.set(scope, "acknowledged", 3)
    assert await contents(importer, scope) == {**IMPORTED, "acknowledged": 3}


async def test_a_write_in_the_window_is_kept_while_another_import_of_the_same_file_is_staged(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path
) -> None:
    """The same export imported twice at once: the second stages first and is refused only later (``conflict``),
    so the call in the first's window meets two staged states of the record it reads, and takes the second's (staged
    first); the first's switch must still leave the session with what the call wrote."""
    importer, server = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "imported")
    path = await exported_session(tmp_path, scope)
    second_staged, second_goes_on = anyio.Event(), anyio.Event()
    refused: list[Conflict] = []

    async def hold_the_second_and_call_in_the_first_window(point: str) -> None:
        if point == "import.working_staged" and not second_staged.is_set():
            second_staged.set()
            await second_goes_on.wait()
        elif point == "import.durable_committed":
            await server.working.set(scope, "acknowledged", "written before the switch")

    async def second_import() -> None:
        assert server.transfer is not None
        with pytest.raises(Conflict) as caught:
            await server.transfer.import_file(path)
        refused.append(caught.value)

    assert importer.transfer is not None
    with faults.on_fault(hold_the_second_and_call_in_the_first_window):
        async with anyio.create_task_group() as tg:
            tg.start_soon(second_import)
            with anyio.fail_after(10):
                await second_staged.wait()
            report = await importer.transfer.import_file(path)
            second_goes_on.set()
    assert len(refused) == 1
    assert (report.working_sessions_written, report.working_sessions) == (1, 1)
    assert await contents(importer, scope) == {**IMPORTED, "acknowledged": "written before the switch"}
    assert await staging_left(importer, scope) == []


async def test_a_session_imported_sealed_stays_sealed_when_a_call_reopens_it_before_the_switch(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path
) -> None:
    importer, server = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "imported")
    path = await exported_session(tmp_path, scope, sealed=True)
    refused: list[bool] = []

    async def write_in_the_window(point: str) -> None:
        if point == "import.durable_committed":
            with pytest.raises(Conflict):
                await server.working.set(scope, "refused", 1)
            refused.append(True)

    assert importer.transfer is not None
    with faults.on_fault(write_in_the_window):
        await importer.transfer.import_file(path)
    assert refused == [True]
    assert await contents(importer, scope) == IMPORTED
    with pytest.raises(Conflict):
        await server.working.set(scope, "refused", 1)
    await server.lifecycle.terminate(*ids(scope))
