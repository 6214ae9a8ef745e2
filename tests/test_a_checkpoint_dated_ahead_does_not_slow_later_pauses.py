"""A one-transaction pause (SQLite or Postgres holding working memory) is dated again under the store's lock when
another process's pause, dated after it, wrote its checkpoint while it waited: one more clock reading on SQLite, three
more statements on Postgres. A checkpoint dated far ahead (imported from a machine whose clock runs ahead, or
written before the clock stepped back) is not such a pause: a second reading would not date this pause after it
either, so later pauses stay on their one-stamp path (before, every pause took the slower one until the clock caught
up)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services import strategies
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.conftest import FakeClock
from tests.transfer_helpers import export_to

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "postgres")]


async def test_pauses_behind_a_checkpoint_dated_an_hour_ahead_are_stamped_once(
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    scope: Scope,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, clock=FakeClock(clock.now + 3600)) as rt:
        await rt.lifecycle.spawn(p, a, s, initial_state={"x": 1})
        await rt.lifecycle.pause(p, a, s, checkpoint_id="from-ahead")
        exported = await export_to(rt, Selection(p), tmp_path / "export.jsonl")

    stamps: list[str] = []
    stamp = strategies.checkpoint_id_and_time

    def counted(given_id: str | None, taken: float) -> tuple[str, datetime]:
        made = stamp(given_id, taken)
        stamps.append(made[0])
        return made

    monkeypatch.setattr(strategies, "checkpoint_id_and_time", counted)
    async with MemoryRuntime(make_settings(), clock=clock) as rt:
        assert rt.transfer is not None
        await rt.transfer.import_file(exported)
        await rt.lifecycle.resume(p, a, s)
        for i in range(3):
            await rt.working.set(scope, "n", i)
            clock.advance(1)
            await rt.lifecycle.pause(p, a, s, checkpoint_id=f"mine-{i}")
        assert stamps == ["mine-0", "mine-1", "mine-2"]  # one stamp each, none again under the lock
        listed = await rt.store.list_checkpoints(scope, 10, None)
        assert listed[0].checkpoint_id == "from-ahead"  # still the newest by its time, as imported
