"""With working memory in Redis, each import staging a session notes its token in the session's hash ``:im`` and
sets the whole hash's expiry to its own staging's. So an import staged later, for the same session, keeps the note of
one staged earlier alive after that one's staged keys have expired (or Redis evicted them). If the earlier import
committed its durable records and stopped before its switch, a call that then finds the session missing read the
note as a staged state to take, found none, and answered ``unavailable`` on every call until the hash expired, up to
a day later. A note whose staged state is gone is dropped, and the call re-opens the session from its newest
checkpoint, as Redis re-opens a session it lost. Redis + SQLite and Redis + Postgres (``two_servers``)."""

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
from mcp_memory.stores.redis import staging
from mcp_memory.stores.redis.scripts import STAGING_TTL_MS
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to
from tests.waiting import until

pytestmark = pytest.mark.anyio

SHORT_STAGING_MS = 2_000
"""The first import's staging expiry: long enough for the second import to stage meanwhile, short enough to wait."""


class Stopped(Exception):
    """Stands for an import process that died at a fault point."""


async def exported_session(tmp_path: Path, scope: Scope) -> Path:
    """An export of the running session ``scope``, whose newest checkpoint holds ``checkpointed`` only and whose
    working memory holds ``after_the_pause`` too."""
    ids = (scope.project_id, scope.agent_instance_id, scope.session_id)
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(*ids, initial_state={"checkpointed": 1})
        await rt.lifecycle.pause(*ids)
        await rt.lifecycle.resume(*ids, checkpoint_id=None)
        await rt.working.set(scope, "after_the_pause", 2)
        return await export_to(rt, Selection(*ids), tmp_path / "session.jsonl")


async def test_a_call_reopens_a_session_whose_imports_staging_expired_under_a_note_a_later_staging_kept(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    importer, server = two_servers
    store = importer.working_store
    assert isinstance(store, RedisWorkingStore) and importer.transfer is not None
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "imported")
    path = await exported_session(tmp_path, scope)
    notes = store.imports_key(scope)
    staged_markers = f"{store.keys(scope)[0].removesuffix(':m')}:import:*:m"
    first_staged, second_staged, second_goes_on = anyio.Event(), anyio.Event(), anyio.Event()
    refused: list[Conflict] = []

    async def second_import() -> None:
        assert server.transfer is not None
        with pytest.raises(Conflict) as caught:
            await server.transfer.import_file(path)
        refused.append(caught.value)

    monkeypatch.setattr(staging, "STAGING_TTL_MS", SHORT_STAGING_MS)
    async with anyio.create_task_group() as tg:

        async def first_stages_then_second_then_first_commits_and_dies(point: str) -> None:
            if point == "import.working_staged" and not first_staged.is_set():
                # The same file imported again while the first is between its staging and its durable step: both
                # find the session absent, the second stages it too (with the full expiry) and waits.
                first_staged.set()
                monkeypatch.setattr(staging, "STAGING_TTL_MS", STAGING_TTL_MS)
                tg.start_soon(second_import)
                with anyio.fail_after(10):
                    await second_staged.wait()
            elif point == "import.working_staged":
                assert await store.client.hlen(notes) == 2  # the first's note and staged state still there
                second_staged.set()
                await second_goes_on.wait()
            elif point == "import.durable_committed":
                raise Stopped  # the first committed its durable records; its switch never comes

        with faults.on_fault(first_stages_then_second_then_first_commits_and_dies), pytest.raises(Stopped):
            await importer.transfer.import_file(path)
        second_goes_on.set()  # the second is refused (the session is there now) and drops its staging
    assert len(refused) == 1

    async def staged_state_expired() -> bool:
        return not [key async for key in store.client.scan_iter(match=staged_markers)]

    await until(staged_state_expired, within=SHORT_STAGING_MS / 1000 + 10)
    assert await store.client.hlen(notes) == 1  # the first's note, kept by the second staging's expiry

    assert await server.working.list_keys(scope) == ["checkpointed"]  # re-opened from the newest checkpoint
    assert await server.working.get(scope, "checkpointed") == 1
    assert await store.client.exists(notes) == 0
