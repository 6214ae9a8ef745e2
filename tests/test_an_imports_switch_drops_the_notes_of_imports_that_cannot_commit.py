"""With working memory in Redis, each import notes what it stages in the session's hash ``:im``, which a re-open
reads. Once an import has committed a session durably and switched it in, no other import staged for that session
can commit (the durable step refuses it, ``conflict``): the switch drops their notes with its own, so that none is
left for a re-open to take while the refused import winds down. Redis + SQLite and Redis + Postgres
(``two_servers``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from mcp_memory import faults
from mcp_memory.errors import Conflict
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio


async def test_a_switched_session_keeps_no_note_of_another_import_of_it(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path
) -> None:
    importer, other = two_servers
    store = importer.working_store
    assert isinstance(store, RedisWorkingStore) and importer.transfer is not None and other.transfer is not None
    source = Scope(uuid.uuid4(), uuid.uuid4(), "copied")
    await importer.lifecycle.spawn(source.project_id, source.agent_instance_id, source.session_id)
    await importer.working.set(source, "a", 1)
    path = await export_to(importer, Selection(source.project_id), tmp_path / "export.jsonl")
    target = uuid.uuid4()
    imported = Scope(target, source.agent_instance_id, source.session_id)
    second_staged, second_goes_on = anyio.Event(), anyio.Event()
    refused: list[Conflict] = []

    async def hold_the_second_once_staged(point: str) -> None:
        if point == "import.working_staged" and not second_staged.is_set():
            second_staged.set()
            await second_goes_on.wait()

    async def second_import() -> None:
        assert other.transfer is not None
        with pytest.raises(Conflict) as caught:
            await other.transfer.import_file(path, as_project=target)
        refused.append(caught.value)

    # The same file imported twice at once into one project: both find the session absent there, both stage it.
    with faults.on_fault(hold_the_second_once_staged):
        async with anyio.create_task_group() as tg:
            tg.start_soon(second_import)
            with anyio.fail_after(10):
                await second_staged.wait()
            assert await store.client.hlen(store.imports_key(imported)) == 1
            report = await importer.transfer.import_file(path, as_project=target)
            assert await store.client.exists(store.imports_key(imported)) == 0
            second_goes_on.set()
    assert len(refused) == 1
    assert (report.working_sessions_written, report.working_sessions) == (1, 1)
    assert await importer.working.get(imported, "a") == 1
