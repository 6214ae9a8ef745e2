"""Contract of the one-transaction pause and resume (``pause_session``, ``resume_session``) on the SQL stores:
retention applied inside the pause as ``record_pause`` applies it (kept checkpoints, the newest, age, concurrent
pauses), and a resume that makes working memory exactly the checkpoint's live state, whichever keys already held
the checkpoint's values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_memory.models import CheckpointInfo, Item, Scope, to_datetime
from mcp_memory.stores.ports import EventRecord, Limits, Retention, SameStoreLifecycle
from tests.conftest import SQL_ADAPTERS, StorePair, make_store, new_scope

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
LIMITS = Limits(max_keys=100)


@pytest.fixture(params=sorted(SQL_ADAPTERS))
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorePair]:
    """One SQL store as both ports."""
    store = await make_store(request.param, tmp_path)
    try:
        yield StorePair(store, store)
    finally:
        await store.close()


@pytest.fixture
def same(stores: StorePair) -> SameStoreLifecycle:
    assert isinstance(stores.durable, SameStoreLifecycle)
    return stores.durable


def ev(event_type: str, when: float, **detail: Any) -> EventRecord:
    return EventRecord(event_type, when, 1.0, "ok", detail)


async def spawned(same: SameStoreLifecycle, items: dict[str, Item] | None = None) -> Scope:
    scope = new_scope()
    await same.spawn_session(scope, None, {}, T0, ev("spawn", T0), items or {"k": Item('"v"')}, LIMITS)
    return scope


async def pause(
    same: SameStoreLifecycle, scope: Scope, cid: str, when: float, retention: Retention, keep: bool = False
) -> CheckpointInfo:
    draft = CheckpointInfo(
        checkpoint_id=cid, created_at=to_datetime(when), keys_count=0, bytes=0, label=None, content_hash="", keep=keep
    )
    return await same.pause_session(scope, draft, when, ev("pause", when), retention)


async def ids(stores: StorePair, scope: Scope) -> list[str]:
    return [c.checkpoint_id for c in await stores.durable.list_checkpoints(scope, 1000, None)]


async def test_keeps_the_newest_n_plus_the_kept_ones(stores: StorePair, same: SameStoreLifecycle) -> None:
    scope = await spawned(same)
    keep3 = Retention(keep_last=3)
    await pause(same, scope, "c00", T0, keep3, keep=True)
    for i in range(1, 10):
        await pause(same, scope, f"c{i:02}", T0 + i, keep3, keep=i == 4)
    assert await ids(stores, scope) == ["c09", "c08", "c07", "c04", "c00"]


async def test_by_age_never_prunes_the_newest(stores: StorePair, same: SameStoreLifecycle) -> None:
    scope = await spawned(same)
    await pause(same, scope, "old-kept", T0, Retention(), keep=True)
    await pause(same, scope, "old", T0 + 1, Retention())
    await pause(same, scope, "young", T0 + 100, Retention())
    await pause(same, scope, "now", T0 + 130, Retention(max_age_seconds=60))
    assert await ids(stores, scope) == ["now", "young", "old-kept"]
    other = await spawned(same)
    await pause(same, other, "a", T0, Retention())
    await pause(same, other, "b", T0 + 1, Retention(keep_last=1, max_age_seconds=0.5))
    assert await ids(stores, other) == ["b"]


async def test_concurrent_pauses_leave_the_newest_n_and_at_most_the_last_pauses_own(
    stores: StorePair, same: SameStoreLifecycle
) -> None:
    scope = await spawned(same)
    retention = Retention(keep_last=3)

    async def one(i: int) -> None:
        await pause(same, scope, f"c{i:03}", T0 + i, retention)

    async with anyio.create_task_group() as tg:
        for i in range(24):
            tg.start_soon(one, i)
    # The newest three, and at most one more: the last pause's own checkpoint, which its prune spares when that pause
    # is dated before the newest (its caller's clock behind another's).
    kept = await ids(stores, scope)
    assert {"c021", "c022", "c023"} <= set(kept) and len(kept) <= 4, kept


async def test_resume_makes_memory_exactly_the_checkpoint(stores: StorePair, same: SameStoreLifecycle) -> None:
    state = {"same": Item('"s"'), "changed": Item('"before"'), "expiry": Item('"e"', T0 + 100), "gone": Item("1")}
    scope = await spawned(same, state)
    await pause(same, scope, "c", T0, Retention())
    # After the pause: one key keeps its value, one changes, one changes only its expiry, one goes, one is new.
    now = T0 + 1
    await stores.working.set(scope, "changed", Item('"after"'), now, LIMITS)
    await stores.working.set(scope, "expiry", Item('"e"', T0 + 500), now, LIMITS)
    await stores.working.delete(scope, "gone", now)
    await stores.working.set(scope, "new", Item("2"), now, LIMITS)
    done = await same.resume_session(scope, None, True, now, LIMITS, ev("resume", now))
    assert done is not None and done[1] == 4
    assert await stores.working.snapshot(scope, now) == state
    # Without clearing: the checkpoint's keys over the others, which stay.
    await stores.working.set(scope, "new", Item("2"), now, LIMITS)
    await stores.working.set(scope, "same", Item('"x"'), now, LIMITS)
    done = await same.resume_session(scope, "c", False, now, LIMITS, ev("resume", now))
    assert done is not None and done[1] == 4
    assert await stores.working.snapshot(scope, now) == {**state, "new": Item("2")}
