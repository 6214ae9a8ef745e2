"""Retention never deletes the checkpoint a pause has just written. A session may hold a checkpoint dated after a new
pause: imported from a machine whose clock runs ahead (imports keep checkpoints as they are), or written before the
clock stepped back. At the bound the new checkpoint is then the oldest; it stays, with the newest, and the session
holds one checkpoint more than the bound until a later pause. On every store kind (Postgres: migration 0015)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.conftest import FakeClock
from tests.transfer_helpers import export_to

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def test_a_pause_behind_an_imported_checkpoint_keeps_what_it_saved(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope, tmp_path: Path
) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    ahead = FakeClock(clock.now + 600)  # the exporting machine's clock, ten minutes ahead
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, clock=ahead) as rt:
        await rt.lifecycle.spawn(p, a, s, initial_state={"x": 1})
        await rt.lifecycle.pause(p, a, s, checkpoint_id="imported")
        exported = await export_to(rt, Selection(p), tmp_path / "export.jsonl")

    async with MemoryRuntime(make_settings(checkpoint_retention_count=1), clock=clock) as rt:
        await rt.transfer.import_file(exported)
        await rt.lifecycle.resume(p, a, s)
        await rt.working.set(scope, "work", "precious")
        clock.advance(1)
        done = await rt.lifecycle.pause(p, a, s, checkpoint_id="mine")
        assert done.data["checkpoint_id"] == "mine"
        listed = [c["checkpoint_id"] for c in await rt.lifecycle.list_checkpoints(p, a, s)]
        assert listed == ["imported", "mine"]  # newest first: the imported one is dated later

        await rt.lifecycle.resume(p, a, s, checkpoint_id="mine")
        assert await rt.working.get(scope, "work") == "precious"

        # A pause dated after both brings the session back to its bound, the newest being kept.
        clock.advance(1200)
        await rt.lifecycle.pause(p, a, s, checkpoint_id="later")
        assert [c["checkpoint_id"] for c in await rt.lifecycle.list_checkpoints(p, a, s)] == ["later"]
