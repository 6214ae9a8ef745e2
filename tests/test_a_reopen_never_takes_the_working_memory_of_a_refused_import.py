"""With working memory in Redis, a re-open of a session Redis lost takes an import's staged state when the import
noted the very record the durable store holds. An import of the session the store already holds (a backup imported
again: same ids, same creation time) is refused (``conflict``); a call that re-opens the session while that import
runs must still get its newest checkpoint, never the file's older working memory. Redis + SQLite and Redis +
Postgres (``two_servers``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mcp_memory import faults
from mcp_memory.errors import Conflict
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio


def ids(scope: Scope) -> tuple[uuid.UUID, uuid.UUID, str]:
    return scope.project_id, scope.agent_instance_id, scope.session_id


@pytest.mark.parametrize("as_project", [False, True], ids=["kept-ids", "as-project"])
async def test_a_session_lost_while_its_own_backup_is_imported_comes_back_with_its_newest_checkpoint(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path, as_project: bool
) -> None:
    importer, server = two_servers
    store = importer.working_store
    assert isinstance(store, RedisWorkingStore) and importer.transfer is not None
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "backed-up")
    await importer.lifecycle.spawn(*ids(scope), initial_state={"a": 1})
    await importer.working.set(scope, "a", 2)
    path = await export_to(importer, Selection(scope.project_id), tmp_path / "backup.jsonl")
    await importer.working.set(scope, "a", 3)
    await importer.lifecycle.pause(*ids(scope))
    m, v, x, _ = store.keys(scope)

    seen: list[object] = []

    async def lose_the_session_and_read_it(point: str) -> None:
        # Redis loses the session (restart, eviction, failover) while the import runs, and a call re-opens it.
        if point in ("import.validated", "import.working_staged"):
            await store.client.delete(m, v, x)
            seen.append(await server.working.get(scope, "a"))

    with faults.on_fault(lose_the_session_and_read_it), pytest.raises(Conflict):
        await importer.transfer.import_file(path, as_project=scope.project_id if as_project else None)
    assert seen and set(seen) == {3}
    assert await importer.working.get(scope, "a") == 3  # what the call re-opened, kept after the refusal
    await store.client.delete(m, v, x)  # and lost again once the import is refused
    assert await server.working.get(scope, "a") == 3
