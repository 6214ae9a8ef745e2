"""Generated checkpoint ids sort as the checkpoints' recorded creation times do, also when two servers pause the
same session: a pause makes its id and its ``created_at`` from one clock reading (to the microsecond), so the id's
time is the checkpoint's own, not a second reading of the clock after the snapshot. Across servers each server's
clock at its pause decides (here one runs 5 s behind the other: its checkpoints are the older ones, by id and by
time alike). Many pauses within one microsecond of one process still get distinct ids, in pause order. Working memory
in Redis (records on SQLite or Postgres) and SQLite alone."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

Servers = Callable[[Callable[[], float]], MemoryRuntime]


@pytest.fixture(params=["redis+sqlite", "redis+postgres", "sqlite"])
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    """One set of stores for every runtime a test opens (each standing for a server)."""
    async with settings_for(request.param, tmp_path, checkpoint_retention_count=0) as settings:
        yield settings


def id_time(checkpoint_id: str) -> datetime:
    """The millisecond an id's first ten characters encode."""
    ms = 0
    for char in checkpoint_id.removeprefix("ck_")[:10]:
        ms = ms * 32 + _ALPHABET.index(char)
    return datetime.fromtimestamp(ms / 1000, UTC)


async def test_ids_of_two_servers_with_skewed_clocks_sort_as_their_creation_times(settings: Settings) -> None:
    async with (
        MemoryRuntime(settings, clock=lambda: time.time() - 5.0) as behind,
        MemoryRuntime(settings, clock=time.time) as ahead,
    ):
        scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
        ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
        await ahead.lifecycle.spawn(*ids, initial_state={"k": 0})
        made: list[str] = []
        for i in range(6):
            server = ahead if i % 2 == 0 else behind
            await server.working.set(scope, "k", i)
            made.append((await server.lifecycle.pause(*ids)).data["checkpoint_id"])
        listed = await ahead.store.list_checkpoints(scope, 50, None)
    assert sorted(c.checkpoint_id for c in listed) == sorted(made)
    # Newest first by creation time: the ids descending too; the behind server's three are the older ones.
    assert [c.checkpoint_id for c in listed] == sorted(made, reverse=True)
    assert {c.checkpoint_id for c in listed[3:]} == set(made[1::2])
    for c in listed:
        assert id_time(c.checkpoint_id) == c.created_at.replace(microsecond=c.created_at.microsecond // 1000 * 1000)


async def test_pauses_within_one_microsecond_get_distinct_ids_in_pause_order(settings: Settings) -> None:
    frozen = time.time()
    async with MemoryRuntime(settings, clock=lambda: frozen) as rt:
        scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
        ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
        await rt.lifecycle.spawn(*ids, initial_state={"k": 0})
        made = [(await rt.lifecycle.pause(*ids)).data["checkpoint_id"] for _ in range(40)]
        listed = await rt.store.list_checkpoints(scope, 50, None)
    assert made == sorted(made) and len(set(made)) == 40
    assert [c.checkpoint_id for c in listed] == made[::-1]
