"""An import allows a key's expiry past its own clock's now + the longest TTL by a margin for the clocks' difference
(a day): a key set with the longest TTL just before the export, on a machine whose clock is a few seconds ahead of
the importing one, was refused as past the longest TTL. An expiry beyond the margin still is ``invalid_argument``
naming the line, nothing written. In working memory and in a checkpoint's state, on every store."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.working import MAX_TTL_SECONDS
from mcp_memory.stores.transfer import Selection
from tests.conftest import FakeClock
from tests.transfer_helpers import (
    Records,
    assert_nothing_written,
    export_to,
    first,
    line_of,
    records,
    refused,
    resealed,
)

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

BEHIND = 5.0
"""Seconds the importing machine's clock is behind the exporting one's."""
MARGIN = 86_400
"""The margin docs/export-format.md allows for the clocks' difference: a day."""


async def test_a_key_set_with_the_longest_ttl_imports_where_the_clock_is_a_few_seconds_behind(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    scope = Scope(project, agent, "s1")
    exporting = FakeClock()
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, clock=exporting) as rt:
        await rt.lifecycle.spawn(project, agent, "s1")
        await rt.working.set(scope, "longest", "v", ttl_seconds=MAX_TTL_SECONDS)
        await rt.lifecycle.pause(project, agent, "s1", checkpoint_id="c1")
        path = await export_to(rt, Selection(project), tmp_path / "export.jsonl")
    expiry = exporting.now + MAX_TTL_SECONDS
    assert first(records(path), "working")["expires_at"] == pytest.approx(expiry, abs=0.01)

    importing = FakeClock(exporting.now - BEHIND)
    async with MemoryRuntime(make_settings(), clock=importing) as rt:
        assert rt.transfer is not None
        await rt.transfer.import_file(path)
        item = await rt.working.get_item(scope, "longest")
        assert item is not None and item.expires_at == pytest.approx(expiry, abs=0.01)
        (checkpoint,) = [
            r
            for r in records(await export_to(rt, Selection(project), tmp_path / "back.jsonl"))
            if r["kind"] == "checkpoint"
        ]
        assert checkpoint["state"]["longest"][1] == pytest.approx(expiry, abs=0.01)


async def test_an_expiry_past_the_longest_ttl_and_the_clock_margin_is_refused(
    make_settings: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, clock=clock) as rt:
        await rt.lifecycle.spawn(project, agent, "s1", initial_state={"k": 1})
        path = await export_to(rt, Selection(project), tmp_path / "export.jsonl")
    beyond = clock.now + MAX_TTL_SECONDS + MARGIN + 60

    def far(recs: Records) -> None:
        first(recs, "working").update(expires_at=beyond, ttl_remaining=beyond - clock.now)

    crafted = resealed(path, tmp_path / "far.jsonl", far)
    async with MemoryRuntime(make_settings(), clock=clock) as rt:
        message = await refused(rt, crafted)
        assert message.startswith(f"line {line_of(crafted, 'working')}: key 'k' expires at {beyond}, past the longest")
        await assert_nothing_written(rt, project)
