"""Contract of :class:`~mcp_memory.stores.ports.WorkingStore`, run against every adapter.

Only the ports' methods are used (``DurableStore.create_session`` because a session is born in the durable
store, and ``record_terminate`` and ``get_session`` once, for ``unseal`` after terminate), so an adapter joins by
adding a fixture param in ``tests/conftest.py``. Times are passed as
``now``: TTL is driven by passing a later ``now``, never by sleeping.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

import anyio
import pytest

from mcp_memory.errors import Conflict, NotFound, TooLarge
from mcp_memory.models import Item, Scope
from mcp_memory.stores.ports import EventRecord, Incarnation, Limits, WorkingStore
from tests.conftest import StorePair, new_scope

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
TOKEN = "terminate-a"
"""The owner of the seals of these tests (a terminate's token)."""
LEASE = 60.0
LIMITS = Limits(max_keys=100)


def item(value: object, expires_at: float | None = None) -> Item:
    """An item holding ``value`` as compact JSON text."""
    return Item(json.dumps(value, separators=(",", ":")), expires_at)


async def sealed_as_terminate_does(stores: StorePair, scope: Scope, token: str, now: float) -> None:
    """Seal as terminate does: the durable record first, then working memory (one call where they are one store).
    A working store's own seal whose token no longer holds the durable seal is stale (see ``WorkingStore.seal``)."""
    if stores.working is not stores.durable:
        await stores.durable.seal(scope, token, now, LEASE)
    await stores.working.seal(scope, token, now, LEASE)


async def create(stores: StorePair, scope: Scope, now: float = T0) -> None:
    """Create the session in the durable store only (``open`` is left to the test)."""
    await stores.durable.create_session(scope, None, {}, now, EventRecord("spawn", now, 0.0, "ok"))


async def opened(
    stores: StorePair,
    scope: Scope | None = None,
    items: Mapping[str, Item] | None = None,
    limits: Limits = LIMITS,
    now: float = T0,
) -> Scope:
    """A created and opened session (a fresh scope unless one is given)."""
    scope = scope or new_scope()
    await create(stores, scope, now)
    await stores.working.open(scope, items or {}, now, limits)
    return scope


async def test_adapter_satisfies_the_protocol(stores: StorePair) -> None:
    assert isinstance(stores.working, WorkingStore)


# -- open, set, get, delete, list_keys ----------------------------------------------------------------------
async def test_open_writes_initial_items_and_returns_count(stores: StorePair) -> None:
    scope = new_scope()
    await create(stores, scope)
    items = {"a": item(1), "b": item({"x": [1, 2]}), "c": item("s", T0 + 60)}
    assert await stores.working.open(scope, items, T0, LIMITS) == 3
    assert await stores.working.snapshot(scope, T0) == items


async def test_open_skips_items_already_expired(stores: StorePair) -> None:
    scope = new_scope()
    await create(stores, scope)
    items = {"live": item(1), "dead": item(2, T0), "dying": item(3, T0 - 1)}
    assert await stores.working.open(scope, items, T0, LIMITS) == 1
    assert await stores.working.list_keys(scope, "", T0) == ["live"]


async def test_open_over_the_limit_is_too_large_and_writes_nothing(stores: StorePair) -> None:
    scope = new_scope()
    await create(stores, scope)
    with pytest.raises(TooLarge):
        await stores.working.open(scope, {f"k{i}": item(i) for i in range(4)}, T0, Limits(max_keys=3))
    assert await stores.working.snapshot(scope, T0) == {}


async def test_set_get_roundtrip_keeps_json_text_and_expiry(stores: StorePair) -> None:
    scope = await opened(stores)
    # Stores move JSON text; they must not normalise it (spacing, key order, escapes, number forms).
    raw = '{"z": 1,  "a":[1.0, 2e3, "\\u00e9", "é"], "n":null}'
    await stores.working.set(scope, "k", Item(raw, T0 + 10.5), T0, LIMITS)
    got = await stores.working.get(scope, "k", T0)
    assert got == Item(raw, T0 + 10.5)
    assert got is not None and got.value == raw


async def test_set_replaces_value_and_expiry(stores: StorePair) -> None:
    scope = await opened(stores)
    await stores.working.set(scope, "k", item(1, T0 + 5), T0, LIMITS)
    await stores.working.set(scope, "k", item(2), T0, LIMITS)
    assert await stores.working.get(scope, "k", T0 + 100) == item(2)
    await stores.working.set(scope, "k", item(3, T0 + 5), T0, LIMITS)
    assert await stores.working.get(scope, "k", T0 + 100) is None


async def test_get_missing_key_is_none(stores: StorePair) -> None:
    scope = await opened(stores, items={"a": item(1)})
    assert await stores.working.get(scope, "b", T0) is None


async def test_delete(stores: StorePair) -> None:
    scope = await opened(stores, items={"a": item(1), "b": item(2)})
    assert await stores.working.delete(scope, "a", T0) is True
    assert await stores.working.get(scope, "a", T0) is None
    assert await stores.working.delete(scope, "a", T0) is False
    assert await stores.working.delete(scope, "never", T0) is False
    assert await stores.working.list_keys(scope, "", T0) == ["b"]


async def test_list_keys_sorted_by_code_point_with_prefix(stores: StorePair) -> None:
    keys = ["b", "a", "B", "a.b", "a_c", "ab", "a%", "é", "e", "Z", "a", "user:2", "user:10", "user:1", "~"]
    scope = await opened(stores, items={k: item(k) for k in keys})
    assert await stores.working.list_keys(scope, "", T0) == sorted(set(keys))
    assert await stores.working.list_keys(scope, "user:", T0) == ["user:1", "user:10", "user:2"]
    # Prefixes are literal: no LIKE/GLOB wildcards, and case-sensitive.
    assert await stores.working.list_keys(scope, "a_", T0) == ["a_c"]
    assert await stores.working.list_keys(scope, "a%", T0) == ["a%"]
    assert await stores.working.list_keys(scope, "A", T0) == []
    assert await stores.working.list_keys(scope, "a", T0) == ["a", "a%", "a.b", "a_c", "ab"]
    assert await stores.working.list_keys(scope, "nope", T0) == []
    assert await stores.working.list_keys(scope, "é", T0) == ["é"]


async def test_keys_with_special_characters(stores: StorePair) -> None:
    # Characters that mean something to LIKE, GLOB, Redis SCAN MATCH or Redis Cluster hash tags.
    keys = ["a*", "a*b", "ab", "a?", "a[b]", "{tag}x", "{tag}", "%", "_", "\\x", "a b", "line\nbreak", "ü/😀"]
    scope = await opened(stores, items={k: item(k) for k in keys})
    assert await stores.working.list_keys(scope, "", T0) == sorted(keys)
    assert await stores.working.list_keys(scope, "a*", T0) == ["a*", "a*b"]
    assert await stores.working.list_keys(scope, "a?", T0) == ["a?"]
    assert await stores.working.list_keys(scope, "a[", T0) == ["a[b]"]
    assert await stores.working.list_keys(scope, "{tag}", T0) == ["{tag}", "{tag}x"]
    assert await stores.working.list_keys(scope, "\\", T0) == ["\\x"]
    for k in keys:
        assert await stores.working.get(scope, k, T0) == item(k)
    assert await stores.working.delete(scope, "a*", T0) is True
    assert await stores.working.list_keys(scope, "a*", T0) == ["a*b"]


async def test_large_value_travels_unchanged(stores: StorePair) -> None:
    scope = await opened(stores)
    raw = json.dumps({"blob": "é" * 500_000, "n": list(range(1000))}, ensure_ascii=False)
    await stores.working.set(scope, "big", Item(raw), T0, LIMITS)
    got = await stores.working.get(scope, "big", T0)
    assert got is not None and got.value == raw
    assert (await stores.working.snapshot(scope, T0))["big"].value == raw


# -- unknown sessions ---------------------------------------------------------------------------------------
async def test_writes_to_an_unknown_session_are_not_found(stores: StorePair) -> None:
    scope = new_scope()
    with pytest.raises(NotFound):
        await stores.working.set(scope, "k", item(1), T0, LIMITS)
    with pytest.raises(NotFound):
        await stores.working.delete(scope, "k", T0)
    with pytest.raises(NotFound):
        await stores.working.restore(scope, {"k": item(1)}, True, T0, LIMITS)
    with pytest.raises(NotFound):
        await stores.working.restore(scope, {"k": item(1)}, False, T0, LIMITS)


async def test_reads_of_an_unknown_session_see_nothing(stores: StorePair) -> None:
    scope = new_scope()
    assert await stores.working.get(scope, "k", T0) is None
    assert await stores.working.list_keys(scope, "", T0) == []
    assert await stores.working.snapshot(scope, T0) == {}
    assert await stores.working.clear(scope, T0) == 0


# -- seal -----------------------------------------------------------------------------------------------
async def test_sealed_session_refuses_writes_but_reads(stores: StorePair) -> None:
    items = {"a": item(1), "b": item(2)}
    scope = await opened(stores, items=items)
    await sealed_as_terminate_does(stores, scope, TOKEN, T0)
    with pytest.raises(Conflict):
        await stores.working.set(scope, "c", item(3), T0, LIMITS)
    with pytest.raises(Conflict):
        await stores.working.set(scope, "a", item(9), T0, LIMITS)
    with pytest.raises(Conflict):
        await stores.working.delete(scope, "a", T0)
    with pytest.raises(Conflict):
        await stores.working.restore(scope, {"z": item(0)}, True, T0, LIMITS)
    with pytest.raises(Conflict):
        await stores.working.restore(scope, {"z": item(0)}, False, T0, LIMITS)
    assert await stores.working.get(scope, "a", T0) == item(1)
    assert await stores.working.snapshot(scope, T0) == items
    assert await stores.working.list_keys(scope, "", T0) == ["a", "b"]


async def test_clear_works_on_a_sealed_session(stores: StorePair) -> None:
    # terminate seals, records, and only then clears working memory.
    scope = await opened(stores, items={"a": item(1), "b": item(2)})
    await stores.working.seal(scope, TOKEN, T0, LEASE)
    assert await stores.working.clear(scope, T0) == 2
    assert await stores.working.snapshot(scope, T0) == {}


async def test_unseal_makes_the_session_writable_again(stores: StorePair) -> None:
    scope = await opened(stores, items={"a": item(1)})
    await stores.working.seal(scope, TOKEN, T0, LEASE)
    await stores.working.unseal(scope, TOKEN)
    await stores.working.set(scope, "b", item(2), T0, LIMITS)
    assert await stores.working.delete(scope, "a", T0) is True
    assert await stores.working.restore(scope, {"c": item(3)}, False, T0, LIMITS) == 1
    assert await stores.working.list_keys(scope, "", T0) == ["b", "c"]


async def test_a_seal_belongs_to_its_token_until_its_lease_runs_out(stores: StorePair) -> None:
    # Two terminates (of two processes) of one session: the second is refused while the first holds the seal, and a
    # failed first one's unseal cannot undo a seal the second has taken over once the first's lease ran out.
    scope = await opened(stores, items={"a": item(1)})
    await sealed_as_terminate_does(stores, scope, TOKEN, T0)
    await stores.working.seal(scope, TOKEN, T0 + 1, LEASE)  # the same terminate again: idempotent
    with pytest.raises(Conflict, match="already in progress"):
        await stores.working.seal(scope, "terminate-b", T0 + LEASE - 1, LEASE)
    await stores.working.unseal(scope, "terminate-b")  # not its seal: no-op
    with pytest.raises(Conflict):
        await stores.working.set(scope, "b", item(2), T0, LIMITS)
    await sealed_as_terminate_does(
        stores, scope, "terminate-b", T0 + LEASE + 1
    )  # the first's lease ran out: taken over
    await stores.working.unseal(scope, TOKEN)  # the first one's late unseal: no longer its seal
    with pytest.raises(Conflict):
        await stores.working.set(scope, "b", item(2), T0, LIMITS)
    with pytest.raises(Conflict, match="already in progress"):
        await stores.working.seal(scope, TOKEN, T0 + LEASE + 2, LEASE)
    await stores.working.unseal(scope, "terminate-b")
    await stores.working.set(scope, "b", item(2), T0, LIMITS)
    assert await stores.working.snapshot(scope, T0) == {"a": item(1), "b": item(2)}


async def test_seal_is_per_session(stores: StorePair) -> None:
    sealed = await opened(stores)
    other = await opened(stores, Scope(sealed.project_id, sealed.agent_instance_id, "other"))
    await stores.working.seal(sealed, TOKEN, T0, LEASE)
    await stores.working.set(other, "k", item(1), T0, LIMITS)
    assert await stores.working.get(other, "k", T0) == item(1)


async def test_unseal_is_a_no_op_once_terminated(stores: StorePair) -> None:
    # A terminate that lost a race unseals in its cleanup; that must not reopen a session another
    # terminate has finished.
    scope = await opened(stores, items={"a": item(1)})
    await stores.working.seal(scope, TOKEN, T0, LEASE)
    await stores.durable.record_terminate(scope, None, None, {}, EventRecord("terminate", T0, 0.0, "ok"))
    await stores.working.unseal(scope, TOKEN)
    with pytest.raises(Conflict):
        await stores.working.set(scope, "b", item(2), T0, LIMITS)
    assert await stores.working.clear(scope, T0) == 1


async def test_marked_terminated_stays_closed_whatever_unseal_or_seal_come_later(stores: StorePair) -> None:
    # terminate's last step once recorded. A failed terminate of another process may unseal the session just
    # before or just after it (having read the record as not yet terminated): either way it stays closed.
    kept = await opened(stores, items={"a": item(1), "b": item(2)})
    cleared = await opened(stores, items={"a": item(1)})
    recorded: dict[Scope, Incarnation] = {}
    for scope in (kept, cleared):
        info = await stores.durable.get_session(scope)
        assert info is not None
        recorded[scope] = Incarnation(info.created_at, TOKEN)  # the session the record is of, as terminate names it
        # Sealed as terminate seals it, naming the session it read: once the seal is gone, that tells the session
        # the record is of from one spawned again under its id (the session ``open`` made notes none).
        assert await stores.working.seal(scope, TOKEN, T0, LEASE, recorded[scope])
        await stores.durable.record_terminate(scope, None, None, {}, EventRecord("terminate", T0, 0.0, "ok"))
        await stores.working.unseal(scope, TOKEN)  # the late unseal before the mark: the mark overrides it
    assert await stores.working.mark_terminated(kept, T0, False, recorded[kept]) == 0
    assert await stores.working.mark_terminated(cleared, T0, True, recorded[cleared]) == 1
    for scope in (kept, cleared):
        # And after the mark: the failed terminate's unseal, another terminate's seal and its unseal.
        for late in ("unseal", "seal", "unseal-b"):
            if late == "unseal":
                await stores.working.unseal(scope, TOKEN)
            elif late == "seal":
                assert not await stores.working.seal(scope, "terminate-b", T0 + 1, LEASE)  # terminated: no seal
            else:
                await stores.working.unseal(scope, "terminate-b")
            with pytest.raises(Conflict):
                await stores.working.set(scope, "c", item(3), T0, LIMITS)
            with pytest.raises(Conflict):
                await stores.working.delete(scope, "a", T0)
            with pytest.raises(Conflict):
                await stores.working.restore(scope, {"z": item(0)}, True, T0, LIMITS)
    # Without clear the items stay readable; with clear they are gone. Marking again is harmless.
    assert await stores.working.snapshot(kept, T0) == {"a": item(1), "b": item(2)}
    assert await stores.working.list_keys(cleared, "", T0) == []
    assert await stores.working.mark_terminated(cleared, T0, True, recorded[cleared]) == 0
    assert await stores.working.mark_terminated(kept, T0, True, recorded[kept]) == 2
    assert await stores.working.snapshot(kept, T0) == {}


# -- TTL ------------------------------------------------------------------------------------------------
async def test_expired_items_do_not_exist_for_reads(stores: StorePair) -> None:
    items = {"forever": item(0), "short": item(1, T0 + 10), "long": item(2, T0 + 100)}
    scope = await opened(stores, items=items)
    assert await stores.working.get(scope, "short", T0 + 9.999) == item(1, T0 + 10)
    # expires_at <= now means expired: the boundary itself is expired.
    for now in (T0 + 10, T0 + 50):
        assert await stores.working.get(scope, "short", now) is None
        assert await stores.working.list_keys(scope, "", now) == ["forever", "long"]
        assert await stores.working.list_keys(scope, "sh", now) == []
        assert await stores.working.snapshot(scope, now) == {"forever": item(0), "long": item(2, T0 + 100)}
    assert await stores.working.snapshot(scope, T0 + 100) == {"forever": item(0)}


async def test_delete_of_an_expired_key_returns_false(stores: StorePair) -> None:
    scope = await opened(stores, items={"k": item(1, T0 + 10)})
    assert await stores.working.delete(scope, "k", T0 + 10) is False
    assert await stores.working.get(scope, "k", T0) is None  # and it is gone, not revived by an earlier now


async def test_set_over_an_expired_key_creates_it_afresh(stores: StorePair) -> None:
    scope = await opened(stores, items={"k": item(1, T0 + 10)})
    await stores.working.set(scope, "k", item(2), T0 + 20, LIMITS)
    assert await stores.working.get(scope, "k", T0 + 20) == item(2)


async def test_expired_items_do_not_count_towards_the_limit(stores: StorePair) -> None:
    limits = Limits(max_keys=3)
    scope = await opened(stores, items={"a": item(1, T0 + 10), "b": item(2, T0 + 10), "c": item(3)}, limits=limits)
    with pytest.raises(TooLarge):
        await stores.working.set(scope, "d", item(4), T0, limits)
    later = T0 + 10
    await stores.working.set(scope, "d", item(4), later, limits)
    await stores.working.set(scope, "e", item(5), later, limits)
    with pytest.raises(TooLarge):
        await stores.working.set(scope, "f", item(6), later, limits)
    assert await stores.working.list_keys(scope, "", later) == ["c", "d", "e"]


async def test_clear_counts_only_live_keys(stores: StorePair) -> None:
    scope = await opened(stores, items={"a": item(1, T0 + 10), "b": item(2), "c": item(3)})
    assert await stores.working.clear(scope, T0 + 10) == 2
    assert await stores.working.snapshot(scope, T0) == {}


async def test_restore_skips_expired_items(stores: StorePair) -> None:
    scope = await opened(stores, items={"old": item(0)})
    items = {"live": item(1, T0 + 100), "dead": item(2, T0 + 5), "boundary": item(3, T0 + 10)}
    assert await stores.working.restore(scope, items, True, T0 + 10, LIMITS) == 1
    assert await stores.working.snapshot(scope, T0) == {"live": item(1, T0 + 100)}
    assert await stores.working.restore(scope, items, False, T0 + 10, LIMITS) == 1
    assert await stores.working.snapshot(scope, T0) == {"live": item(1, T0 + 100)}


async def test_restore_merge_does_not_count_expired_keys(stores: StorePair) -> None:
    limits = Limits(max_keys=3)
    scope = await opened(stores, items={"a": item(1, T0 + 10), "b": item(2, T0 + 10), "c": item(3)}, limits=limits)
    later = T0 + 10
    assert await stores.working.restore(scope, {"d": item(4), "e": item(5)}, False, later, limits) == 2
    assert await stores.working.list_keys(scope, "", later) == ["c", "d", "e"]


async def test_expired_items_given_to_open_or_restore_do_not_count_towards_the_limit(
    stores: StorePair,
) -> None:
    limits = Limits(max_keys=2)
    items = {"a": item(1), "b": item(2), "gone": item(3, T0)}
    scope = new_scope()
    await create(stores, scope)
    assert await stores.working.open(scope, items, T0, limits) == 2
    assert await stores.working.restore(scope, items, True, T0, limits) == 2
    assert await stores.working.list_keys(scope, "", T0) == ["a", "b"]


# -- limits ---------------------------------------------------------------------------------------------
async def test_new_key_beyond_the_limit_is_too_large_and_writes_nothing(stores: StorePair) -> None:
    limits = Limits(max_keys=3)
    items = {"a": item(1), "b": item(2), "c": item(3)}
    scope = await opened(stores, items=items, limits=limits)
    with pytest.raises(TooLarge):
        await stores.working.set(scope, "d", item(4), T0, limits)
    assert await stores.working.snapshot(scope, T0) == items


async def test_overwriting_at_the_limit_is_fine(stores: StorePair) -> None:
    limits = Limits(max_keys=3)
    scope = await opened(stores, items={"a": item(1), "b": item(2), "c": item(3)}, limits=limits)
    await stores.working.set(scope, "b", item(20), T0, limits)
    assert await stores.working.get(scope, "b", T0) == item(20)
    # After a delete there is room again.
    assert await stores.working.delete(scope, "a", T0) is True
    await stores.working.set(scope, "d", item(4), T0, limits)
    assert await stores.working.list_keys(scope, "", T0) == ["b", "c", "d"]


async def test_limit_is_the_one_passed_with_each_write(stores: StorePair) -> None:
    scope = await opened(stores, items={"a": item(1), "b": item(2)})
    with pytest.raises(TooLarge):
        await stores.working.set(scope, "c", item(3), T0, Limits(max_keys=2))
    await stores.working.set(scope, "c", item(3), T0, Limits(max_keys=3))
    assert await stores.working.list_keys(scope, "", T0) == ["a", "b", "c"]


async def test_concurrent_new_keys_never_exceed_the_limit(stores: StorePair) -> None:
    limits = Limits(max_keys=5)
    scope = await opened(stores, items={f"k{i}": item(i) for i in range(3)}, limits=limits)
    outcomes: list[str] = []

    async def writer(n: int) -> None:
        try:
            await stores.working.set(scope, f"new{n}", item(n), T0, limits)
            outcomes.append("ok")
        except TooLarge:
            outcomes.append("too_large")

    async with anyio.create_task_group() as tg:
        for n in range(12):
            tg.start_soon(writer, n)
    assert sorted(outcomes) == ["ok"] * 2 + ["too_large"] * 10
    assert len(await stores.working.list_keys(scope, "", T0)) == 5


# -- restore and clear ------------------------------------------------------------------------------------
async def test_restore_with_clear_replaces_everything(stores: StorePair) -> None:
    scope = await opened(stores, items={"a": item(1), "b": item(2)})
    new = {"b": item(20, T0 + 50), "c": item(30)}
    assert await stores.working.restore(scope, new, True, T0, LIMITS) == 2
    assert await stores.working.snapshot(scope, T0) == new


async def test_restore_with_clear_of_nothing_empties_the_session(stores: StorePair) -> None:
    scope = await opened(stores, items={"a": item(1), "b": item(2)})
    assert await stores.working.restore(scope, {}, True, T0, LIMITS) == 0
    assert await stores.working.snapshot(scope, T0) == {}


async def test_restore_without_clear_merges(stores: StorePair) -> None:
    scope = await opened(stores, items={"a": item(1), "b": item(2)})
    assert await stores.working.restore(scope, {"b": item(20), "c": item(30)}, False, T0, LIMITS) == 2
    assert await stores.working.snapshot(scope, T0) == {"a": item(1), "b": item(20), "c": item(30)}


async def test_restore_with_clear_up_to_the_limit(stores: StorePair) -> None:
    limits = Limits(max_keys=3)
    scope = await opened(stores, items={"a": item(1), "b": item(2), "c": item(3)}, limits=limits)
    new = {"x": item(1), "y": item(2), "z": item(3)}
    assert await stores.working.restore(scope, new, True, T0, limits) == 3
    assert await stores.working.snapshot(scope, T0) == new


async def test_restore_with_clear_over_the_limit_is_too_large_and_writes_nothing(stores: StorePair) -> None:
    limits = Limits(max_keys=3)
    items = {"a": item(1)}
    scope = await opened(stores, items=items, limits=limits)
    with pytest.raises(TooLarge):
        await stores.working.restore(scope, {f"k{i}": item(i) for i in range(4)}, True, T0, limits)
    assert await stores.working.snapshot(scope, T0) == items


async def test_restore_merge_over_the_limit_is_too_large_and_writes_nothing(stores: StorePair) -> None:
    limits = Limits(max_keys=3)
    items = {"a": item(1), "b": item(2)}
    scope = await opened(stores, items=items, limits=limits)
    with pytest.raises(TooLarge):
        await stores.working.restore(scope, {"b": item(20), "c": item(3), "d": item(4)}, False, T0, limits)
    assert await stores.working.snapshot(scope, T0) == items
    # Overlapping keys do not count twice: this merge ends at exactly 3 keys.
    assert await stores.working.restore(scope, {"b": item(20), "c": item(3)}, False, T0, limits) == 2
    assert await stores.working.snapshot(scope, T0) == {"a": item(1), "b": item(20), "c": item(3)}


async def test_clear_returns_live_count_and_empties_the_session(stores: StorePair) -> None:
    scope = await opened(stores, items={"a": item(1), "b": item(2), "c": item(3)})
    assert await stores.working.clear(scope, T0) == 3
    assert await stores.working.snapshot(scope, T0) == {}
    assert await stores.working.list_keys(scope, "", T0) == []
    assert await stores.working.clear(scope, T0) == 0
    # The session stays open: it can be written again.
    await stores.working.set(scope, "d", item(4), T0, LIMITS)
    assert await stores.working.list_keys(scope, "", T0) == ["d"]


async def test_large_restore_and_snapshot(stores: StorePair) -> None:
    items = {f"key:{i:05d}": item({"i": i, "pad": "x" * 50}) for i in range(2_000)}
    limits = Limits(max_keys=2_000)
    scope = await opened(stores, limits=limits)
    assert await stores.working.restore(scope, items, True, T0, limits) == 2_000
    assert await stores.working.snapshot(scope, T0) == items
    assert await stores.working.clear(scope, T0) == 2_000


# -- isolation ------------------------------------------------------------------------------------------
async def test_sessions_are_isolated(stores: StorePair) -> None:
    home = await opened(stores, items={"a": item(1), "shared": item("home")})
    other_project = Scope(uuid.uuid4(), home.agent_instance_id, home.session_id)
    other_agent = Scope(home.project_id, uuid.uuid4(), home.session_id)
    other_session = Scope(home.project_id, home.agent_instance_id, home.session_id + "x")
    for other in (other_project, other_agent, other_session):
        assert await stores.working.get(other, "a", T0) is None
        assert await stores.working.list_keys(other, "", T0) == []
        assert await stores.working.snapshot(other, T0) == {}
        assert await stores.working.clear(other, T0) == 0
        # Never opened: writes cannot reach the home session through it.
        with pytest.raises(NotFound):
            await stores.working.set(other, "a", item(2), T0, LIMITS)
        with pytest.raises(NotFound):
            await stores.working.delete(other, "a", T0)
        with pytest.raises(NotFound):
            await stores.working.restore(other, {"a": item(2)}, True, T0, LIMITS)
    assert await stores.working.snapshot(home, T0) == {"a": item(1), "shared": item("home")}

    # Once opened, each has its own keys; clearing, sealing, restoring one leaves the others alone.
    for n, other in enumerate((other_project, other_agent, other_session)):
        await opened(stores, other, items={"shared": item(n)})
    await stores.working.restore(other_project, {"z": item(0)}, True, T0, LIMITS)
    assert await stores.working.clear(other_agent, T0) == 1
    await stores.working.seal(other_session, TOKEN, T0, LEASE)
    await stores.working.set(home, "b", item(3), T0, LIMITS)
    assert await stores.working.snapshot(home, T0) == {"a": item(1), "shared": item("home"), "b": item(3)}
    assert await stores.working.snapshot(other_project, T0) == {"z": item(0)}
    assert await stores.working.snapshot(other_session, T0) == {"shared": item(2)}


async def test_limit_counts_only_the_sessions_own_keys(stores: StorePair) -> None:
    limits = Limits(max_keys=2)
    first = await opened(stores, items={"a": item(1), "b": item(2)}, limits=limits)
    second = await opened(stores, Scope(first.project_id, first.agent_instance_id, "s2"), limits=limits)
    await stores.working.set(second, "a", item(1), T0, limits)
    await stores.working.set(second, "b", item(2), T0, limits)
    assert await stores.working.list_keys(second, "", T0) == ["a", "b"]


# -- atomicity under real concurrency -------------------------------------------------------------------------
ROUNDS = 4
BIG = 1_000
BIG_LIMITS = Limits(max_keys=2 * BIG)


def _state(tag: str) -> dict[str, Item]:
    return {f"{tag}:{i:04d}": item({"tag": tag, "i": i}) for i in range(BIG)}


async def test_snapshot_during_restore_sees_all_old_or_all_new(stores: StorePair) -> None:
    states = {"old": _state("old"), "new": _state("new")}
    scope = await opened(stores, limits=BIG_LIMITS)
    await stores.working.restore(scope, states["old"], True, T0, BIG_LIMITS)
    current = "old"
    snapshots_taken = 0
    for _ in range(ROUNDS):
        target = "new" if current == "old" else "old"
        done = anyio.Event()
        seen: list[str] = []

        async def restorer(target: str = target, done: anyio.Event = done) -> None:
            await stores.working.restore(scope, states[target], True, T0, BIG_LIMITS)
            done.set()

        async def reader(done: anyio.Event = done, seen: list[str] = seen) -> None:
            while True:
                finished = done.is_set()
                snap = await stores.working.snapshot(scope, T0)
                label = next((name for name, state in states.items() if snap == state), None)
                seen.append(label or f"MIXED({len(snap)} keys, {sorted({k[:3] for k in snap})})")
                if finished:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(reader)
            tg.start_soon(restorer)
        assert set(seen) <= {current, target}, seen
        assert seen[-1] == target  # read after the restore completed
        snapshots_taken += len(seen)
        current = target
    assert snapshots_taken > 2 * ROUNDS


async def test_reads_during_restore_are_consistent(stores: StorePair) -> None:
    def state(version: int) -> dict[str, Item]:
        # Same keys in both states, so that a restore with clear briefly deletes every one of them.
        return {f"k:{i:04d}": item(version) for i in range(BIG)}

    states = {1: state(1), 2: state(2)}
    first, last = "k:0000", f"k:{BIG - 1:04d}"
    scope = await opened(stores, limits=BIG_LIMITS)
    await stores.working.restore(scope, states[1], True, T0, BIG_LIMITS)
    current = 1
    for _ in range(ROUNDS):
        target = 3 - current
        done = anyio.Event()
        pairs: list[tuple[Item | None, Item | None]] = []

        async def restorer(target: int = target, done: anyio.Event = done) -> None:
            await stores.working.restore(scope, states[target], True, T0, BIG_LIMITS)
            done.set()

        async def reader(
            a: str, b: str, done: anyio.Event = done, pairs: list[tuple[Item | None, Item | None]] = pairs
        ) -> None:
            while True:
                finished = done.is_set()
                pairs.append((await stores.working.get(scope, a, T0), await stores.working.get(scope, b, T0)))
                if finished:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader, first, last)
            tg.start_soon(reader, last, first)
            tg.start_soon(restorer)
        old, new = item(current), item(target)
        for x, y in pairs:
            # Never missing (the clear is invisible), never a third value, and never the new state
            # followed by the old one (a read after a read of the restored state cannot go back).
            assert x in (old, new) and y in (old, new), (x, y)
            assert not (x == new and y == old), (x, y)
        assert pairs[-1] == (new, new)
        current = target
