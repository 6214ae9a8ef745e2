"""Contract: each pause bounds its session's lifecycle events in the pause's own transaction (the newest N, and/or
those younger than an age), never pruning the successful spawn and terminate events nor the newest one, on every
store pair (SQLite, Redis + SQLite, Postgres, Redis + Postgres)."""

from __future__ import annotations

import pytest

from mcp_memory.models import CheckpointInfo, Item, Scope
from mcp_memory.stores.ports import Retention, SameStoreLifecycle
from tests.conftest import StorePair, new_scope
from tests.contract.test_checkpoint_retention_and_session_deletion import ids, pause
from tests.contract.test_durable_store import T0, create, event, info

pytestmark = pytest.mark.anyio


async def events_of(stores: StorePair, scope: Scope) -> list[tuple[str, float, str]]:
    return [(e.event_type, e.at, e.outcome) for e in await stores.durable.list_events(scope, 100_000)]


async def test_a_pause_keeps_the_newest_n_events_and_the_spawn(stores: StorePair) -> None:
    scope = await create(stores)
    sibling = await create(stores)
    await stores.durable.record_event(scope, event("spawn", T0 + 0.1, "conflict"))  # a failure: prunable
    for s in (scope, sibling):
        await pause(stores, s, "c0", T0 + 1)
    sibling_before = await events_of(stores, sibling)
    keep3 = Retention(events_keep_last=3)
    for i in range(1, 8):
        await stores.durable.record_resume(scope, event("resume", T0 + i + 0.5))
        await pause(stores, scope, f"c{i}", T0 + i + 1, keep3)
    assert await events_of(stores, scope) == [
        ("spawn", T0, "ok"),
        ("pause", T0 + 7, "ok"),
        ("resume", T0 + 7.5, "ok"),
        ("pause", T0 + 8, "ok"),
    ]
    # Events are bounded per session: the sibling's are untouched, and no checkpoint went with them.
    assert await events_of(stores, sibling) == sibling_before
    assert len(await ids(stores, scope)) == 8


async def test_a_pause_prunes_events_by_age_but_never_the_terminate_or_the_newest(stores: StorePair) -> None:
    scope = await create(stores)
    await pause(stores, scope, "c0", T0 + 10)
    await stores.durable.record_event(scope, event("terminate", T0 + 20))  # protected, however old
    await stores.durable.record_event(scope, event("terminate", T0 + 30, "conflict"))  # a failure: prunable
    await pause(stores, scope, "c1", T0 + 100)
    await pause(stores, scope, "c2", T0 + 130, Retention(events_max_age_seconds=60))
    assert await events_of(stores, scope) == [
        ("spawn", T0, "ok"),
        ("terminate", T0 + 20, "ok"),
        ("pause", T0 + 100, "ok"),
        ("pause", T0 + 130, "ok"),
    ]
    # The pause's own event is never pruned, however small the bound.
    await pause(stores, scope, "c3", T0 + 1000, Retention(events_keep_last=1, events_max_age_seconds=0.001))
    assert await events_of(stores, scope) == [
        ("spawn", T0, "ok"),
        ("terminate", T0 + 20, "ok"),
        ("pause", T0 + 1000, "ok"),
    ]


async def test_without_event_bounds_every_event_stays(stores: StorePair) -> None:
    scope = await create(stores)
    for i in range(5):
        await pause(stores, scope, f"c{i}", T0 + i + 1, Retention(keep_last=1))
    assert [e[0] for e in await events_of(stores, scope)] == ["spawn"] + ["pause"] * 5


async def test_a_thousand_pauses_leave_exactly_n_checkpoints_and_at_most_n_events(stores: StorePair) -> None:
    """The bound by rows, on every store (the SQLite file's size is measured over MCP in
    tests/test_bounded_checkpoints_and_deletions_over_mcp.py)."""
    scope = await create(stores)
    retention = Retention(keep_last=10, events_keep_last=10)
    await pause(stores, scope, "kept", T0, retention, keep=True)
    for i in range(1, 1001):
        await pause(stores, scope, f"c{i:04}", T0 + i, retention)
        if i in (500, 1000):
            assert await ids(stores, scope) == [f"c{j:04}" for j in range(i, i - 10, -1)] + ["kept"]
            events = await events_of(stores, scope)
            assert events == [("spawn", T0, "ok")] + [("pause", T0 + j, "ok") for j in range(i - 9, i + 1)]


async def test_the_one_transaction_pause_bounds_events_too(stores: StorePair) -> None:
    if not isinstance(stores.durable, SameStoreLifecycle) or stores.working is not stores.durable:
        pytest.skip("the one-transaction pause exists where the durable store is the working store too")
    scope = new_scope()
    await stores.open_session(scope, T0, {"k": Item('"v"')})
    for i in range(12):
        draft = CheckpointInfo(
            checkpoint_id=f"c{i:02}", created_at=info("x", T0 + i, {}).created_at, keys_count=0, bytes=0,
            content_hash="",
        )  # fmt: skip
        await stores.durable.pause_session(scope, draft, T0 + i, event("pause", T0 + i), Retention(events_keep_last=2))
    assert [(e.event_type, e.at) for e in await stores.durable.list_events(scope, 100)] == [
        ("spawn", T0),
        ("pause", T0 + 10),
        ("pause", T0 + 11),
    ]
