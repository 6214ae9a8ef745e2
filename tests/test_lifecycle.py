"""The lifecycle guarantees of docs/contract.md ("Behaviour that must hold"), through the Python API.

Each test is written so that it fails if the guarantee it names is dropped: snapshots that are not atomic,
ids that collide or do not sort, overwritten checkpoints, half-applied resumes, a terminate that clears
before the episode is safe, TTLs that leak into checkpoints or episodes, lifecycle calls not recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import anyio
import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, NotFound, TooLarge, Unavailable
from mcp_memory.models import Item, LifecycleEvent, Scope, SessionStatus
from mcp_memory.services.episodic import EpisodicMemory
from mcp_memory.services.lifecycle import AgentLifecycleManager
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.working import WorkingMemory
from mcp_memory.stores.ports import EventRecord, Retention
from mcp_memory.stores.sqlite.store import SqliteStore
from mcp_memory.summary import DEFAULT_BUDGET
from tests.conftest import FakeClock, new_scope

# Each guarantee holds whatever holds working memory: one SQLite transaction, or Redis beside the SQLite file (the
# two-step path). Tests that wire a deliberately failing store in front of SQLite test the lifecycle manager itself,
# not a store, and run once.
pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis")]
SQLITE_ONLY = pytest.mark.backends("sqlite")


# -- helpers ---------------------------------------------------------------------------------------------
def sid(scope: Scope) -> tuple[str, str, str]:
    """The scope as the string arguments a tool caller would pass."""
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


async def spawn(rt: MemoryRuntime, scope: Scope, state: dict[str, Any] | None = None) -> None:
    await rt.lifecycle.spawn(*sid(scope), initial_state=state)


async def live_state(rt: MemoryRuntime, scope: Scope) -> dict[str, Any]:
    return await rt.working.state(scope)


async def checkpoint_state(rt: MemoryRuntime, scope: Scope, checkpoint_id: str) -> dict[str, Any]:
    data = await rt.store.get_checkpoint(scope, checkpoint_id)
    assert data is not None
    return data.state()


async def all_checkpoint_ids(rt: MemoryRuntime, scope: Scope) -> list[str]:
    return [c["checkpoint_id"] for c in await rt.lifecycle.list_checkpoints(*sid(scope), limit=500)]


async def events(rt: MemoryRuntime, scope: Scope) -> list[Any]:
    return await rt.store.list_events(scope, 10_000)


def key(i: int, prefix: str = "k") -> str:
    return f"{prefix}{i:04d}"


class FlakyStore:
    """Delegates everything to a real store, but makes the named method raise ``Unavailable`` ``times`` times."""

    def __init__(self, real: SqliteStore, fail_on: str, times: int = 1) -> None:
        self._real = real
        self.fail_on = fail_on
        self.remaining = times

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name != self.fail_on:
            return attr

        async def maybe_fail(*args: Any, **kwargs: Any) -> Any:
            if self.remaining > 0:
                self.remaining -= 1
                raise Unavailable(f"injected failure in {name}")
            return await attr(*args, **kwargs)

        return maybe_fail


class Wiring:
    """A MemoryRuntime-like wiring whose working memory goes through a FlakyStore."""

    def __init__(self, real: SqliteStore, proxy: FlakyStore, settings: Settings, clock: FakeClock) -> None:
        self.store = real
        self.proxy = proxy
        self.working = WorkingMemory(proxy, settings, clock)
        self.episodic = EpisodicMemory(real, settings, None, clock)
        self.lifecycle = AgentLifecycleManager(self.working, real, self.episodic, settings, clock=clock)


@pytest.fixture
async def real(settings: Settings) -> AsyncIterator[SqliteStore]:
    """The real SQLite store, on its own (for wiring it behind a FlakyStore)."""
    store = SqliteStore(settings.resolved_database_url())
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def flaky(real: SqliteStore, settings: Settings, clock: FakeClock) -> Callable[[str], Wiring]:
    """``flaky("snapshot")``: a wiring whose working store fails that method once."""
    return lambda method: Wiring(real, FlakyStore(real, method), settings, clock)


# -- pause: atomic snapshot --------------------------------------------------------------------------------
async def test_pause_snapshot_is_atomic_under_concurrent_writes(runtime: MemoryRuntime, scope: Scope) -> None:
    """A writer sets k0000..k0999 in order (and moves a 'last' marker after every 25th key); concurrent pauses
    must capture a prefix of that order, consistent with the marker: never part of a read that straddles
    writes (a list-then-get snapshot would see a marker newer than its keys)."""
    rt = runtime
    await spawn(rt, scope)
    n, every = 1000, 25
    done = anyio.Event()
    checkpoint_ids: list[str] = []

    async def writer() -> None:
        for i in range(n):
            await rt.working.set(scope, key(i), i)
            if i % every == every - 1:
                await rt.working.set(scope, "last", i)
        done.set()

    async def pauser() -> None:
        while not done.is_set():
            r = await rt.lifecycle.pause(*sid(scope), keep_last=0)  # every checkpoint is read back below
            checkpoint_ids.append(r.data["checkpoint_id"])
            await anyio.sleep(0.03)

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        tg.start_soon(pauser)

    assert len(checkpoint_ids) >= 2
    sizes = []
    for cp_id in checkpoint_ids:
        state = await checkpoint_state(rt, scope, cp_id)
        last = state.pop("last", None)
        indices = sorted(int(k[1:]) for k in state)
        # A prefix of the write order: if k_i is in it, every k_j (j < i) is too.
        assert indices == list(range(len(indices))), f"checkpoint {cp_id} is not a prefix of the writes"
        assert all(state[key(i)] == i for i in indices)
        # Consistent with the marker: 'last' = L is written after k_L and before k_(L+every+1).
        top = len(indices) - 1
        if last is None:
            assert top < every
        else:
            assert last <= top <= last + every, f"checkpoint {cp_id}: marker {last} but keys up to {top}"
        sizes.append(len(indices))
    # The pauses really overlapped the writer, and each saw at least what the previous one saw.
    assert any(0 < s < n for s in sizes)
    assert sizes == sorted(sizes)


async def test_pause_during_resume_captures_all_old_or_all_new(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    old = {key(i, "a"): i for i in range(1000)}
    new = {key(i, "b"): -i for i in range(1000)}
    await spawn(rt, scope, old)
    cp_old = (await rt.lifecycle.pause(*sid(scope), checkpoint_id="old")).data["checkpoint_id"]
    await rt.working.store.restore(
        scope, {k: Item(str(v)) for k, v in new.items()}, True, rt.clock(), rt.working.limits
    )
    cp_new = (await rt.lifecycle.pause(*sid(scope), checkpoint_id="new")).data["checkpoint_id"]

    captured: list[str] = []
    for round_ in range(4):
        target = cp_old if round_ % 2 == 0 else cp_new
        resumed = anyio.Event()

        async def do_resume(target: str = target, resumed: anyio.Event = resumed) -> None:
            await rt.lifecycle.resume(*sid(scope), checkpoint_id=target)
            resumed.set()

        async def pauser(resumed: anyio.Event = resumed) -> None:
            extra = 2
            while extra > 0:
                if resumed.is_set():
                    extra -= 1
                captured.append((await rt.lifecycle.pause(*sid(scope))).data["checkpoint_id"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(pauser)
            tg.start_soon(do_resume)

    seen = set()
    for cp_id in captured:
        state = await checkpoint_state(rt, scope, cp_id)
        assert state in (old, new), f"checkpoint {cp_id} mixes the old and the restored state"
        seen.add("old" if state == old else "new")
    assert seen == {"old", "new"}


# -- pause: ids --------------------------------------------------------------------------------------------
@SQLITE_ONLY  # the durable store's ids (working memory stays empty): once is enough
async def test_thousand_pauses_give_distinct_sortable_ids_listed_newest_first(
    runtime: MemoryRuntime, scope: Scope
) -> None:
    rt = runtime  # its clock stands still: the thousand ids are made for one microsecond
    await spawn(rt, scope, {"x": 1})
    created = [(await rt.lifecycle.pause(*sid(scope), keep_last=0)).data["checkpoint_id"] for _ in range(1000)]
    assert len(set(created)) == 1000
    assert sorted(created) == created

    listed: list[str] = []
    before = None
    while True:
        page = await rt.lifecycle.list_checkpoints(*sid(scope), limit=300, before=before)
        if not page:
            break
        assert len(page) <= 300
        listed.extend(c["checkpoint_id"] for c in page)
        before = page[-1]["checkpoint_id"]
    assert listed == created[::-1]
    assert len(await rt.lifecycle.list_checkpoints(*sid(scope))) == 50
    newest = await rt.store.get_checkpoint(scope, None)
    assert newest is not None and newest.info.checkpoint_id == created[-1]


async def test_concurrent_pauses_ids_sort_like_the_listing(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    await spawn(rt, scope, {"x": 1})
    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(rt.lifecycle.pause, *sid(scope))
    listed = await all_checkpoint_ids(rt, scope)
    assert len(set(listed)) == 100
    assert listed == sorted(listed, reverse=True)


async def test_list_checkpoints_before_unknown_id_is_not_found(runtime: MemoryRuntime, scope: Scope) -> None:
    await spawn(runtime, scope)
    await runtime.lifecycle.pause(*sid(scope))
    with pytest.raises(NotFound):
        await runtime.lifecycle.list_checkpoints(*sid(scope), before="nope")


async def test_reused_checkpoint_id_is_conflict_and_old_checkpoint_intact(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    await spawn(rt, scope, {"a": 1, "b": "two"})
    first = await rt.lifecycle.pause(*sid(scope), checkpoint_id="cp-1", label="first")
    before = await rt.store.get_checkpoint(scope, "cp-1")
    assert before is not None

    await rt.working.set(scope, "a", 100)
    await rt.working.set(scope, "c", [3])
    await rt.working.delete(scope, "b")
    with pytest.raises(Conflict):
        await rt.lifecycle.pause(*sid(scope), checkpoint_id="cp-1", label="second")

    after = await rt.store.get_checkpoint(scope, "cp-1")
    assert after is not None
    assert after.items == before.items
    assert after.info == before.info
    assert after.state() == {"a": 1, "b": "two"}
    listed = await rt.lifecycle.list_checkpoints(*sid(scope))
    assert [(c["checkpoint_id"], c["label"]) for c in listed] == [("cp-1", "first")]
    assert listed[0]["created_at"] == first.data["created_at"]
    # The failed pause is recorded as a conflict, not as a pause that happened.
    assert [(e.event_type, e.outcome) for e in await events(rt, scope)][-2:] == [
        ("pause", "ok"),
        ("pause", "conflict"),
    ]


# -- resume ------------------------------------------------------------------------------------------------
async def test_resume_unknown_checkpoint_is_not_found_and_memory_untouched(
    runtime: MemoryRuntime, scope: Scope
) -> None:
    rt = runtime
    await spawn(rt, scope, {"a": 1})
    # No checkpoints at all: the default (newest) does not exist.
    with pytest.raises(NotFound):
        await rt.lifecycle.resume(*sid(scope))
    assert await live_state(rt, scope) == {"a": 1}

    await rt.lifecycle.pause(*sid(scope), checkpoint_id="known")
    await rt.working.set(scope, "b", 2)
    with pytest.raises(NotFound):
        await rt.lifecycle.resume(*sid(scope), checkpoint_id="unknown")
    with pytest.raises(NotFound):
        await rt.lifecycle.resume(*sid(scope), checkpoint_id="unknown", clear_current=False)
    assert await live_state(rt, scope) == {"a": 1, "b": 2}
    session = await rt.store.get_session(scope)
    assert session is not None and session.status == SessionStatus.PAUSED

    evs = [(e.event_type, e.outcome) for e in await events(rt, scope)]
    assert evs == [
        ("spawn", "ok"),
        ("resume", "not_found"),
        ("pause", "ok"),
        ("resume", "not_found"),
        ("resume", "not_found"),
    ]


async def test_resume_unknown_session_is_not_found(runtime: MemoryRuntime, scope: Scope) -> None:
    with pytest.raises(NotFound):
        await runtime.lifecycle.resume(*sid(scope))
    assert await runtime.store.get_session(scope) is None


async def test_resume_restores_exactly_the_checkpoint(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    await spawn(rt, scope, {"a": 1, "b": {"x": [1, 2]}})
    cp1 = (await rt.lifecycle.pause(*sid(scope))).data["checkpoint_id"]
    await rt.working.set(scope, "a", 2)
    await rt.working.set(scope, "c", 3)
    cp2 = (await rt.lifecycle.pause(*sid(scope))).data["checkpoint_id"]
    await rt.working.set(scope, "d", 4)

    r = await rt.lifecycle.resume(*sid(scope), checkpoint_id=cp1)
    assert r.data["checkpoint_id"] == cp1 and r.data["items_restored"] == 2
    assert await live_state(rt, scope) == {"a": 1, "b": {"x": [1, 2]}}
    # Default: the newest checkpoint.
    r = await rt.lifecycle.resume(*sid(scope))
    assert r.data["checkpoint_id"] == cp2
    assert await live_state(rt, scope) == {"a": 2, "b": {"x": [1, 2]}, "c": 3}
    session = await rt.store.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING


async def test_resume_without_clear_current_merges(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    await spawn(rt, scope, {"shared": "old", "only_checkpoint": 1})
    await rt.lifecycle.pause(*sid(scope), checkpoint_id="cp")
    await rt.working.set(scope, "shared", "new")
    await rt.working.set(scope, "only_current", 2)
    await rt.working.delete(scope, "only_checkpoint")

    r = await rt.lifecycle.resume(*sid(scope), checkpoint_id="cp", clear_current=False)
    assert r.data["items_restored"] == 2
    assert await live_state(rt, scope) == {"shared": "old", "only_checkpoint": 1, "only_current": 2}


async def test_checkpoints_of_another_session_are_not_found(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    other = Scope(scope.project_id, scope.agent_instance_id, "other-session")
    await spawn(rt, scope, {"mine": 1})
    await spawn(rt, other, {"theirs": 2})
    await rt.lifecycle.pause(*sid(other), checkpoint_id="shared-name")
    with pytest.raises(NotFound):
        await rt.lifecycle.resume(*sid(scope), checkpoint_id="shared-name")
    with pytest.raises(NotFound):
        await rt.lifecycle.resume(*sid(scope))
    with pytest.raises(NotFound):
        await rt.lifecycle.list_checkpoints(*sid(scope), before="shared-name")
    assert await rt.lifecycle.list_checkpoints(*sid(scope)) == []
    assert await live_state(rt, scope) == {"mine": 1}
    # The same caller-given id is free in another session.
    await rt.lifecycle.pause(*sid(scope), checkpoint_id="shared-name")
    assert await checkpoint_state(rt, scope, "shared-name") == {"mine": 1}
    assert await checkpoint_state(rt, other, "shared-name") == {"theirs": 2}


async def test_resume_over_the_key_limit_restores_nothing(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    async with MemoryRuntime(make_settings(max_keys_per_session=3), clock=clock) as rt:
        await spawn(rt, scope, {"a": 1, "b": 2})
        await rt.lifecycle.pause(*sid(scope), checkpoint_id="cp")
        await rt.working.delete(scope, "a")
        await rt.working.delete(scope, "b")
        await rt.working.set(scope, "c", 3)
        await rt.working.set(scope, "d", 4)
        with pytest.raises(TooLarge):
            await rt.lifecycle.resume(*sid(scope), checkpoint_id="cp", clear_current=False)
        assert await live_state(rt, scope) == {"c": 3, "d": 4}
        r = await rt.lifecycle.resume(*sid(scope), checkpoint_id="cp")
        assert r.data["items_restored"] == 2
        assert await live_state(rt, scope) == {"a": 1, "b": 2}


async def test_resume_is_atomic_for_concurrent_readers(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    old = {key(i, "a"): f"old-{i}" for i in range(1000)}
    new = {key(i, "b"): f"new-{i}" for i in range(1000)}
    await spawn(rt, scope, new)
    await rt.lifecycle.pause(*sid(scope), checkpoint_id="new")
    await rt.working.store.restore(
        scope, {k: Item(f'"{v}"') for k, v in old.items()}, True, rt.clock(), rt.working.limits
    )
    await rt.lifecycle.pause(*sid(scope), checkpoint_id="old")

    reads: list[str] = []
    for target, before_state, after_state in (("new", old, new), ("old", new, old), ("new", old, new)):
        assert await live_state(rt, scope) == before_state
        done = anyio.Event()
        reading = anyio.Event()

        async def reader(
            done: anyio.Event = done,
            reading: anyio.Event = reading,
            a: dict[str, Any] = before_state,
            b: dict[str, Any] = after_state,
        ) -> None:
            extra = 2
            while extra > 0:
                if done.is_set():
                    extra -= 1
                state = await rt.working.state(scope)
                keys = await rt.working.list_keys(scope)
                assert state in (a, b), "a reader saw a mix of the old and the restored state"
                assert keys in (sorted(a), sorted(b))
                reads.append("before" if state == a else "after")
                reading.set()

        async def do_resume(done: anyio.Event = done, reading: anyio.Event = reading, target: str = target) -> None:
            await reading.wait()
            await rt.lifecycle.resume(*sid(scope), checkpoint_id=target)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(reader)
            tg.start_soon(do_resume)
        assert await live_state(rt, scope) == after_state
    assert {"before", "after"} <= set(reads)


# -- terminate ---------------------------------------------------------------------------------------------
async def test_terminate_is_idempotent(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    await spawn(rt, scope, {"plan": "ship it", "n": 3})
    first = await rt.lifecycle.terminate(*sid(scope), task_description="ship", lessons_learned=["test more"])
    episode_id = first.data["episode_id"]
    assert episode_id is not None
    assert first.data["state_items_consolidated"] == 2 and first.data["items_cleared"] == 2
    assert await rt.working.list_keys(scope) == []
    events_after_first = await events(rt, scope)
    session_after_first = await rt.store.get_session(scope)

    second = await rt.lifecycle.terminate(*sid(scope), task_description="other", outcome="failure")
    assert second.data == first.data
    assert await events(rt, scope) == events_after_first
    assert await rt.store.get_session(scope) == session_after_first
    episodes = await rt.store.recent_episodes([scope.project_id], 100)
    assert [str(e.episode_id) for e in episodes] == [episode_id]
    assert episodes[0].lessons_learned == ["test more"]
    assert session_after_first is not None and str(session_after_first.episode_id) == episode_id


async def test_concurrent_terminates_write_one_episode(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    await spawn(rt, scope, {key(i): i for i in range(50)})
    results: list[dict[str, Any]] = []

    async def term() -> None:
        results.append((await rt.lifecycle.terminate(*sid(scope))).data)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(term)
    assert len({r["episode_id"] for r in results}) == 1
    assert len(await rt.store.recent_episodes([scope.project_id], 100)) == 1
    assert [e.event_type for e in await events(rt, scope)] == ["spawn", "terminate"]
    assert await rt.working.list_keys(scope) == []


async def test_terminate_loses_no_concurrent_write(runtime: MemoryRuntime, scope: Scope) -> None:
    """A write racing terminate either lands in the episode or is refused; none is silently cleared."""
    rt = runtime
    await spawn(rt, scope)
    written: list[str] = []
    refused: list[str] = []
    started = anyio.Event()

    async def writer() -> None:
        for i in range(180):
            try:
                await rt.working.set(scope, key(i), i)
            except Conflict:
                refused.append(key(i))
                return
            written.append(key(i))
            if i == 20:
                started.set()

    async def term() -> dict[str, Any]:
        await started.wait()
        return (await rt.lifecycle.terminate(*sid(scope))).data

    result: dict[str, Any] = {}

    async def run_term() -> None:
        result.update(await term())

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        tg.start_soon(run_term)

    episode = await rt.episodic.get(scope.project_id, result["episode_id"])
    consolidated = set(episode.metadata["state_keys"])
    assert set(written) == consolidated
    assert result["state_items_consolidated"] == len(written) == result["items_cleared"]
    assert await rt.working.list_keys(scope) == []


async def test_a_terminate_that_fails_and_unseals_lets_no_write_slip_past_a_concurrent_one(
    runtime: MemoryRuntime, scope: Scope
) -> None:
    """Two terminates of one session; the first fails after sealing and unseals. A write acknowledged while the
    second runs must be in its episode, never cleared unconsolidated: the second must not snapshot a session
    the first has unsealed under it (the session lock runs them one after the other)."""
    rt = runtime
    await spawn(rt, scope, {"a": 1})
    store, lifecycle = rt.working_store, rt.lifecycle
    seal, snapshot, session_lock = store.seal, store.snapshot, lifecycle._ctx.session_lock
    first_sealed = anyio.Event()  # the first terminate has sealed the session: start the second
    second_in = anyio.Event()  # the second is past its seal, or waiting for the first to finish
    first_done = anyio.Event()
    seals = 0
    snapshots = 0
    late: list[str] = []

    async def counted_seal(s: Scope, *args: Any) -> bool:
        nonlocal seals
        seals += 1
        sealed = await seal(s, *args)
        (first_sealed if seals == 1 else second_in).set()
        return sealed

    def spied_lock(s: Scope) -> Any:
        if first_sealed.is_set():
            second_in.set()
        return session_lock(s)

    async def scripted_snapshot(s: Scope, now: float) -> dict[str, Item]:
        nonlocal snapshots
        snapshots += 1
        if snapshots == 1:  # the first terminate fails once the second is under way
            await second_in.wait()
            raise Unavailable("injected failure after sealing")
        await first_done.wait()
        items = await snapshot(s, now)
        try:  # a write between the second's snapshot and its clear
            await rt.working.set(s, "late", 1)
            late.append("acknowledged")
        except Conflict:
            late.append("refused")
        return items

    store.seal = counted_seal  # type: ignore[method-assign]
    store.snapshot = scripted_snapshot  # type: ignore[method-assign]
    lifecycle._ctx.session_lock = spied_lock  # type: ignore[method-assign]
    result: dict[str, Any] = {}

    async def first() -> None:
        with pytest.raises(Unavailable):
            await lifecycle.terminate(*sid(scope))
        first_done.set()

    async def second() -> None:
        result.update((await lifecycle.terminate(*sid(scope))).data)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await first_sealed.wait()
        tg.start_soon(second)

    episode = await rt.episodic.get(scope.project_id, result["episode_id"])
    consolidated = set(episode.metadata["state_keys"])
    assert "a" in consolidated
    assert late == ["refused"] or "late" in consolidated, f"write {late} but the episode has {consolidated}"


async def test_a_pause_or_resume_during_another_process_terminate_is_conflict(
    settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    """Two servers on the same stores: while one terminates a session (sealed, not yet recorded), the other's
    pause, resume and writes are all refused as `conflict`, whichever stores hold working memory."""
    async with MemoryRuntime(settings, clock=clock) as one, MemoryRuntime(settings, clock=clock) as other:
        await spawn(one, scope, {"a": 1})
        await one.lifecycle.pause(*sid(scope), checkpoint_id="c1")
        snapshot = one.working_store.snapshot
        sealed, release = anyio.Event(), anyio.Event()

        async def held_snapshot(s: Scope, now: float) -> dict[str, Item]:
            sealed.set()
            await release.wait()
            return await snapshot(s, now)

        one.working_store.snapshot = held_snapshot  # type: ignore[method-assign]
        result: dict[str, Any] = {}

        async def terminate() -> None:
            result.update((await one.lifecycle.terminate(*sid(scope))).data)

        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate)
            await sealed.wait()
            try:
                with pytest.raises(Conflict, match="being terminated"):
                    await other.lifecycle.pause(*sid(scope), checkpoint_id="c2")
                with pytest.raises(Conflict, match="being terminated"):
                    await other.lifecycle.resume(*sid(scope), checkpoint_id="c1")
                with pytest.raises(Conflict, match="being terminated"):
                    await other.working.set(scope, "b", 2)
            finally:
                release.set()

        assert result["state_items_consolidated"] == 1
        assert await all_checkpoint_ids(one, scope) == ["c1"]
        session = await one.store.get_session(scope)
        assert session is not None and session.status == SessionStatus.TERMINATED


async def test_two_servers_terminating_one_session_lose_no_acknowledged_write(
    settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    """Two servers on the same stores terminate one session. The first fails after sealing (its record_terminate
    fails) and unseals while the second is between its snapshot and its mark; then a write comes. Whichever way
    it goes (the second refused as `conflict` while the first holds the seal, or the write refused), no
    acknowledged write is lost: it is consolidated by the terminate that ends the session, exactly once."""
    async with MemoryRuntime(settings, clock=clock) as one, MemoryRuntime(settings, clock=clock) as other:
        await spawn(one, scope, {"a": 1})
        a_recording, a_failed, b_progress, write_done = (anyio.Event() for _ in range(4))
        snapshot = other.working_store.snapshot

        async def failing_record_terminate(*args: Any, **kwargs: Any) -> Any:
            a_recording.set()
            with anyio.fail_after(10):
                await b_progress.wait()  # the second is past its snapshot (or was refused)
            raise Unavailable("injected failure after sealing")

        async def held_snapshot(s: Scope, now: float) -> dict[str, Item]:
            items = await snapshot(s, now)
            b_progress.set()
            with anyio.fail_after(10):
                await write_done.wait()  # the first unseals and a write comes, before the second records
            return items

        one.store.record_terminate = failing_record_terminate  # type: ignore[method-assign]
        other.working_store.snapshot = held_snapshot  # type: ignore[method-assign]
        second: list[Any] = []
        written: list[str] = []

        async def first() -> None:
            with pytest.raises(Unavailable):
                await one.lifecycle.terminate(*sid(scope))
            a_failed.set()

        async def second_terminate() -> None:
            try:
                second.append((await other.lifecycle.terminate(*sid(scope))).data)
            except Conflict as exc:
                second.append(exc)
            finally:
                b_progress.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await a_recording.wait()
            tg.start_soon(second_terminate)
            with anyio.fail_after(10):
                await a_failed.wait()
            try:
                await other.working.set(scope, "late", 1)
                written.append("late")
            except Conflict:
                pass
            write_done.set()

        other.working_store.snapshot = snapshot  # type: ignore[method-assign]
        events = [(e.event_type, e.outcome) for e in await one.store.list_events(scope, 100)]
        if isinstance(second[0], Conflict):  # refused while the first held the seal: recorded, and retried
            assert "already in progress" in second[0].message
            assert events.count(("terminate", "conflict")) == 1
            second[0] = (await other.lifecycle.terminate(*sid(scope))).data
        result = second[0]
        episode = await other.episodic.get(scope.project_id, result["episode_id"])
        consolidated = set(episode.metadata["state_keys"])
        assert {"a", *written} <= consolidated, f"acknowledged {written}, the episode has {consolidated}"
        session = await one.store.get_session(scope)
        assert session is not None and session.status == SessionStatus.TERMINATED
        events = [(e.event_type, e.outcome) for e in await one.store.list_events(scope, 100)]
        assert events.count(("terminate", "ok")) == 1 and ("terminate", "unavailable") in events
        assert len(await one.store.recent_episodes([scope.project_id], 10)) == 1
        with pytest.raises(Conflict, match="is terminated"):
            await one.working.set(scope, "after", 1)


async def test_a_seal_left_by_a_crashed_terminate_is_taken_over_once_its_lease_runs_out(
    settings: Settings, clock: FakeClock, scope: Scope
) -> None:
    """A server seals the session for its terminate and dies. Until the seal's lease runs out, writes and another
    server's terminate are refused (`conflict`, recorded); after, a terminate takes the seal over and finishes."""
    lease = settings.terminate_lease_seconds
    async with MemoryRuntime(settings, clock=clock) as crashed:
        await spawn(crashed, scope, {"a": 1})
        await crashed.lifecycle._strategy.seal(scope, "crashed-terminate", clock(), lease)
    async with MemoryRuntime(settings, clock=clock) as rt:
        with pytest.raises(Conflict, match="being terminated"):
            await rt.working.set(scope, "b", 2)
        clock.advance(lease - 1)
        with pytest.raises(Conflict, match="already in progress"):
            await rt.lifecycle.terminate(*sid(scope))
        events = [(e.event_type, e.outcome) for e in await rt.store.list_events(scope, 100)]
        assert events[-1] == ("terminate", "conflict")
        session = await rt.store.get_session(scope)
        assert session is not None and session.status == SessionStatus.RUNNING and session.sealed  # still its seal
        clock.advance(1)
        result = (await rt.lifecycle.terminate(*sid(scope))).data
        assert result["state_items_consolidated"] == 1
        session = await rt.store.get_session(scope)
        assert session is not None and session.status == SessionStatus.TERMINATED
        with pytest.raises(Conflict, match="is terminated"):
            await rt.working.set(scope, "b", 2)


async def test_a_terminate_that_overran_its_lease_records_nothing(
    runtime: MemoryRuntime, clock: FakeClock, scope: Scope
) -> None:
    """A terminate that finds its seal's lease run out before recording (another may have taken the seal over)
    gives up as `conflict`, recorded, and unseals only its own seal: a retry finishes it."""
    rt = runtime
    await spawn(rt, scope, {"a": 1})
    snapshot = rt.working_store.snapshot

    async def slow_snapshot(s: Scope, now: float) -> dict[str, Item]:
        clock.advance(rt.settings.terminate_lease_seconds)
        return await snapshot(s, now)

    rt.working_store.snapshot = slow_snapshot  # type: ignore[method-assign]
    with pytest.raises(Conflict, match="took longer than its seal's lease"):
        await rt.lifecycle.terminate(*sid(scope))
    rt.working_store.snapshot = snapshot  # type: ignore[method-assign]
    session = await rt.store.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING and not session.sealed
    await rt.working.set(scope, "b", 2)
    assert (await rt.lifecycle.terminate(*sid(scope))).data["state_items_consolidated"] == 2


@SQLITE_ONLY
async def test_terminate_writes_episode_before_clearing(
    flaky: Callable[[str], Wiring], real: SqliteStore, clock: FakeClock, scope: Scope
) -> None:
    w = flaky("mark_terminated")  # the step after recording: mark working memory terminated, and clear it
    hooked: list[LifecycleEvent] = []

    async def on_terminate(event: LifecycleEvent) -> None:
        hooked.append(event)

    w.lifecycle.hooks.on_terminate(on_terminate)
    await w.lifecycle.spawn(*sid(scope), initial_state={"plan": "do it", "step": 4})
    with pytest.raises(Unavailable):
        await w.lifecycle.terminate(*sid(scope), task_description="the task")
    assert hooked == []  # the operation did not finish, so its hooks did not run

    # The episode is safe, the session is terminated, and working memory still holds everything.
    session = await real.get_session(scope)
    assert session is not None and session.status == SessionStatus.TERMINATED
    assert session.episode_id is not None
    episode = await real.get_episode(scope.project_id, session.episode_id)
    assert episode is not None and "plan" in episode.context_summary
    assert await real.list_keys(scope, "", clock()) == ["plan", "step"]
    events_before = await real.list_events(scope, 100)

    retry = await w.lifecycle.terminate(*sid(scope), task_description="the task")
    assert retry.data["episode_id"] == str(session.episode_id)
    assert retry.data["items_cleared"] == 2
    assert await real.list_keys(scope, "", clock()) == []
    assert await real.list_events(scope, 100) == events_before
    assert len(await real.recent_episodes([scope.project_id], 10)) == 1
    # The retry finished the first call's job, hooks included, exactly once.
    assert [e.episode_id for e in hooked] == [session.episode_id]
    await w.lifecycle.terminate(*sid(scope))
    assert len(hooked) == 1


@SQLITE_ONLY
async def test_terminate_failing_before_recording_leaves_session_usable(
    flaky: Callable[[str], Wiring], real: SqliteStore, clock: FakeClock, scope: Scope
) -> None:
    w = flaky("snapshot")
    await w.lifecycle.spawn(*sid(scope), initial_state={"a": 1})
    with pytest.raises(Unavailable):
        await w.lifecycle.terminate(*sid(scope))
    session = await real.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING
    assert session.episode_id is None
    assert await real.recent_episodes([scope.project_id], 10) == []
    # Unsealed again: writes work, and a retried terminate consolidates them.
    await w.working.set(scope, "b", 2)
    result = await w.lifecycle.terminate(*sid(scope))
    assert result.data["state_items_consolidated"] == 2


@SQLITE_ONLY
async def test_failed_terminate_is_recorded(
    flaky: Callable[[str], Wiring], real: SqliteStore, clock: FakeClock, scope: Scope
) -> None:
    w = flaky("snapshot")
    await w.lifecycle.spawn(*sid(scope))
    with pytest.raises(Unavailable):
        await w.lifecycle.terminate(*sid(scope))
    evs = await real.list_events(scope, 100)
    assert [(e.event_type, e.outcome) for e in evs] == [("spawn", "ok"), ("terminate", "unavailable")]


async def test_terminated_session_keeps_checkpoints_and_refuses_writes(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    await spawn(rt, scope, {"a": 1, "b": 2})
    cp = (await rt.lifecycle.pause(*sid(scope), checkpoint_id="cp", label="before end")).data["checkpoint_id"]
    await rt.working.set(scope, "c", 3)
    await rt.lifecycle.terminate(*sid(scope), cleanup_working=False)

    state = await live_state(rt, scope)
    assert state == {"a": 1, "b": 2, "c": 3}
    checkpoints = await rt.lifecycle.list_checkpoints(*sid(scope))
    data = await rt.store.get_checkpoint(scope, cp)
    assert data is not None and data.state() == {"a": 1, "b": 2}
    session = await rt.store.get_session(scope)
    assert session is not None
    n_events = len(await events(rt, scope))

    with pytest.raises(Conflict):
        await rt.lifecycle.resume(*sid(scope), checkpoint_id=cp)
    with pytest.raises(Conflict):
        await rt.lifecycle.resume(*sid(scope))
    with pytest.raises(Conflict):
        await rt.lifecycle.pause(*sid(scope))
    with pytest.raises(Conflict):
        await rt.lifecycle.pause(*sid(scope), checkpoint_id="after")
    with pytest.raises(Conflict):
        await rt.working.set(scope, "a", 99)
    with pytest.raises(Conflict):
        await rt.working.set(scope, "new", 1)
    with pytest.raises(Conflict):
        await rt.working.delete(scope, "a")
    with pytest.raises(Conflict):
        await rt.lifecycle.spawn(*sid(scope), initial_state={"z": 1})

    assert await live_state(rt, scope) == state
    assert await rt.lifecycle.list_checkpoints(*sid(scope)) == checkpoints
    assert await rt.store.get_checkpoint(scope, "after") is None
    assert await rt.store.get_session(scope) == session
    assert len(await rt.store.recent_episodes([scope.project_id], 10)) == 1
    # Only the refusals themselves are recorded; nothing that looks like a transition.
    new_events = (await events(rt, scope))[n_events:]
    assert all(e.outcome == "conflict" for e in new_events)


# -- TTL ---------------------------------------------------------------------------------------------------
async def test_expired_keys_are_never_returned_listed_checkpointed_or_consolidated(
    runtime: MemoryRuntime, clock: FakeClock, scope: Scope
) -> None:
    rt = runtime
    await spawn(rt, scope, {"durable_note": "keep me"})
    await rt.working.set(scope, "ephemeral_token", "secret-value", ttl_seconds=10)
    await rt.working.set(scope, "ephemeral_other", {"x": 1}, ttl_seconds=10)
    await rt.working.set(scope, "long_lived", 5, ttl_seconds=1000)
    assert await rt.working.get(scope, "ephemeral_token") == "secret-value"
    assert (await rt.lifecycle.pause(*sid(scope))).data["items_saved"] == 4

    clock.advance(10)  # expires_at == now counts as expired
    for k in ("ephemeral_token", "ephemeral_other"):
        with pytest.raises(NotFound):
            await rt.working.get(scope, k)
    assert await rt.working.list_keys(scope) == ["durable_note", "long_lived"]
    assert await rt.working.list_keys(scope, prefix="ephemeral") == []
    assert await live_state(rt, scope) == {"durable_note": "keep me", "long_lived": 5}
    assert await rt.working.delete(scope, "ephemeral_other") is False

    p = await rt.lifecycle.pause(*sid(scope))
    assert p.data["items_saved"] == 2
    cp = await rt.store.get_checkpoint(scope, p.data["checkpoint_id"])
    assert cp is not None and set(cp.items) == {"durable_note", "long_lived"}
    assert (await rt.lifecycle.list_checkpoints(*sid(scope), limit=1))[0]["keys_count"] == 2

    t = await rt.lifecycle.terminate(*sid(scope), cleanup_working=False)
    assert t.data["state_items_consolidated"] == 2
    episode = await rt.episodic.get(scope.project_id, t.data["episode_id"])
    assert "ephemeral" not in episode.context_summary
    assert "secret-value" not in episode.context_summary
    assert "durable_note" in episode.context_summary and "long_lived" in episode.context_summary
    assert sorted(episode.metadata["state_keys"]) == ["durable_note", "long_lived"]
    assert "ephemeral" not in episode.outcome_details


async def test_keys_expiring_between_pause_and_resume_are_not_restored(
    runtime: MemoryRuntime, clock: FakeClock, scope: Scope
) -> None:
    rt = runtime
    await spawn(rt, scope, {"stay": 1})
    await rt.working.set(scope, "soon", 2, ttl_seconds=10)
    await rt.working.set(scope, "later", 3, ttl_seconds=100)
    p = await rt.lifecycle.pause(*sid(scope))
    assert p.data["items_saved"] == 3

    clock.advance(50)
    r = await rt.lifecycle.resume(*sid(scope))
    assert r.data["items_restored"] == 2
    assert await rt.working.list_keys(scope) == ["later", "stay"]
    with pytest.raises(NotFound):
        await rt.working.get(scope, "soon")
    # The restored key keeps its original expiry: it has not been given a fresh TTL.
    clock.advance(50)
    assert await rt.working.list_keys(scope) == ["stay"]

    # Merging does not bring expired keys back either.
    await rt.working.set(scope, "x", 0)
    r = await rt.lifecycle.resume(*sid(scope), clear_current=False)
    assert r.data["items_restored"] == 1
    assert await rt.working.list_keys(scope) == ["stay", "x"]


async def test_expired_keys_do_not_count_against_the_key_limit(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    async with MemoryRuntime(make_settings(max_keys_per_session=2), clock=clock) as rt:
        await spawn(rt, scope)
        await rt.working.set(scope, "t1", 1, ttl_seconds=5)
        await rt.working.set(scope, "t2", 2, ttl_seconds=5)
        with pytest.raises(TooLarge):
            await rt.working.set(scope, "t3", 3)
        clock.advance(6)
        await rt.working.set(scope, "a", 1)
        await rt.working.set(scope, "b", 2)
        assert await rt.working.list_keys(scope) == ["a", "b"]


# -- events ------------------------------------------------------------------------------------------------
class TickingClock(FakeClock):
    """Moves on by 5 ms at every reading, so that durations are not zero."""

    def __call__(self) -> float:
        self.now += 0.005
        return self.now


async def test_every_lifecycle_call_records_its_event(make_settings: Callable[..., Settings]) -> None:
    clock = TickingClock()
    scope = new_scope()
    settings = make_settings()
    async with MemoryRuntime(settings, clock=clock) as rt:
        t0 = clock.now
        await spawn(rt, scope, {"a": 1})
        await rt.lifecycle.pause(*sid(scope), checkpoint_id="cp")
        await rt.lifecycle.resume(*sid(scope), checkpoint_id="cp")
        with pytest.raises(NotFound):
            await rt.lifecycle.resume(*sid(scope), checkpoint_id="missing")
        with pytest.raises(Conflict):
            await rt.lifecycle.pause(*sid(scope), checkpoint_id="cp")
        await rt.lifecycle.terminate(*sid(scope))
        t1 = clock.now
    # Durable: a fresh runtime on the same file sees them.
    async with MemoryRuntime(settings, clock=clock) as rt:
        evs = await rt.store.list_events(scope, 100)
    assert [(e.event_type, e.outcome) for e in evs] == [
        ("spawn", "ok"),
        ("pause", "ok"),
        ("resume", "ok"),
        ("resume", "not_found"),
        ("pause", "conflict"),
        ("terminate", "ok"),
    ]
    times = [e.at for e in evs]
    assert times == sorted(times) and t0 < times[0] and times[-1] <= t1
    assert all(e.duration_ms > 0 for e in evs)
    assert evs[1].detail["checkpoint_id"] == "cp"
    assert evs[2].detail["checkpoint_id"] == "cp"
    assert "missing" in evs[3].detail["error"]


async def test_failed_spawn_on_existing_session_is_recorded(runtime: MemoryRuntime, scope: Scope) -> None:
    await spawn(runtime, scope)
    with pytest.raises(Conflict):
        await spawn(runtime, scope)
    assert [(e.event_type, e.outcome) for e in await events(runtime, scope)] == [
        ("spawn", "ok"),
        ("spawn", "conflict"),
    ]


# -- durability --------------------------------------------------------------------------------------------
async def test_checkpoint_survives_restart(make_settings: Callable[..., Settings], clock: FakeClock) -> None:
    scope = new_scope()
    settings = make_settings()
    state = {"plan": ["a", "b"], "n": 1, "nested": {"k": None}}
    async with MemoryRuntime(settings, clock=clock) as rt:
        await spawn(rt, scope, state)
        cp = (await rt.lifecycle.pause(*sid(scope), label="before restart")).data["checkpoint_id"]
        await rt.working.set(scope, "n", 2)

    async with MemoryRuntime(settings, clock=clock) as rt:
        listed = await rt.lifecycle.list_checkpoints(*sid(scope))
        assert [(c["checkpoint_id"], c["label"], c["keys_count"]) for c in listed] == [(cp, "before restart", 3)]
        r = await rt.lifecycle.resume(*sid(scope))
        assert r.data["checkpoint_id"] == cp and r.data["items_restored"] == 3
        assert await live_state(rt, scope) == state
        # Ids made after the restart still sort after the old ones.
        later = (await rt.lifecycle.pause(*sid(scope))).data["checkpoint_id"]
        assert later > cp
        assert [c["checkpoint_id"] for c in await rt.lifecycle.list_checkpoints(*sid(scope))] == [later, cp]


# -- spawn -------------------------------------------------------------------------------------------------
async def test_spawn_on_existing_session_is_conflict(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    await spawn(rt, scope, {"a": 1})
    await rt.working.set(scope, "b", 2)
    with pytest.raises(Conflict):
        await spawn(rt, scope, {"z": 26})
    assert await live_state(rt, scope) == {"a": 1, "b": 2}
    # The same session_id under another agent is another session.
    other = Scope(scope.project_id, uuid.uuid4(), scope.session_id)
    await spawn(rt, other, {"z": 26})
    assert await live_state(rt, other) == {"z": 26}
    assert await live_state(rt, scope) == {"a": 1, "b": 2}


async def test_spawn_over_key_limit_creates_nothing(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    async with MemoryRuntime(make_settings(max_keys_per_session=5, max_value_bytes=100), clock=clock) as rt:
        with pytest.raises(TooLarge):
            await spawn(rt, scope, {f"k{i}": i for i in range(6)})
        assert await rt.store.get_session(scope) is None
        with pytest.raises(TooLarge):
            await spawn(rt, scope, {"big": "x" * 200})
        assert await rt.store.get_session(scope) is None
        # Nothing was left behind: the same session can be spawned properly.
        r = await rt.lifecycle.spawn(*sid(scope), initial_state={f"k{i}": i for i in range(5)})
        assert r.data["initial_items"] == 5


@SQLITE_ONLY
async def test_spawn_failing_to_open_working_memory_leaves_no_session(
    flaky: Callable[[str], Wiring], real: SqliteStore, clock: FakeClock, scope: Scope
) -> None:
    w = flaky("open")
    with pytest.raises(Unavailable):
        await w.lifecycle.spawn(*sid(scope), initial_state={"a": 1})
    assert await real.get_session(scope) is None
    await w.lifecycle.spawn(*sid(scope), initial_state={"a": 1})
    assert await real.list_keys(scope, "", clock()) == ["a"]


# -- the terminate summary ---------------------------------------------------------------------------------
async def test_terminate_summary_names_keys_and_types(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    state = {
        "current_plan": "refactor the parser, then write tests",
        "config_blob": {"retries": 3, "verbose": True},
        "attempt_count": 7,
        "is_done": False,
        "visited_files": ["a.py", "b.py"],
        "padding": "p" * 5000,
    }
    await spawn(rt, scope, state)
    t = await rt.lifecycle.terminate(*sid(scope))
    summary = (await rt.episodic.get(scope.project_id, t.data["episode_id"])).context_summary
    assert summary != str(state)[:1000]
    assert len(summary) <= DEFAULT_BUDGET
    for name in state:
        assert name in summary
    for json_type in ("string", "object", "number", "boolean", "array"):
        assert json_type in summary
    assert "refactor the parser" in summary
    assert "p" * 1000 not in summary  # long values are truncated, not dumped


async def test_terminate_summary_stays_within_budget_for_5000_keys(runtime: MemoryRuntime, scope: Scope) -> None:
    rt = runtime
    state = {f"key_{i:05d}": {"i": i, "text": f"value number {i}"} for i in range(5000)}
    await spawn(rt, scope, state)
    t = await rt.lifecycle.terminate(*sid(scope))
    assert t.data["state_items_consolidated"] == 5000
    episode = await rt.episodic.get(scope.project_id, t.data["episode_id"])
    summary = episode.context_summary
    assert 200 < len(summary) <= DEFAULT_BUDGET
    assert "5000" in summary
    assert "key_" in summary and "object" in summary
    assert summary != str(state)[:1000]
    assert len(episode.metadata["state_keys"]) <= 200


# -- resume, when recording it fails ---------------------------------------------------------------------------------


class _FailingResumeRecord:
    """The real store, except that recording a resume fails (as when the store goes away right then)."""

    def __init__(self, real: SqliteStore) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def record_resume(
        self,
        scope: Scope,
        event: EventRecord,
        retention: Retention | None = None,
        order: int | None = None,
        made_from: datetime | None = None,
    ) -> None:
        raise Unavailable("the store went away")


@SQLITE_ONLY
async def test_a_resume_that_restored_reports_success_even_if_recording_fails(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    settings = make_settings()
    real = SqliteStore(settings.resolved_database_url())
    await real.start()
    try:
        durable: Any = _FailingResumeRecord(real)
        working = WorkingMemory(real, settings, clock)
        lifecycle = AgentLifecycleManager(
            working, durable, EpisodicMemory(real, settings, None, clock), settings, clock=clock
        )
        p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
        await lifecycle.spawn(p, a, s, initial_state={"x": 1})
        await lifecycle.pause(p, a, s)
        await working.set(scope, "x", 2)
        result = await lifecycle.resume(p, a, s)
        assert result.success and result.data["items_restored"] == 1
        assert await working.get(scope, "x") == 1  # what the caller is told matches what happened
    finally:
        await real.close()


# -- events ----------------------------------------------------------------------------------------------------------


async def test_events_carry_duration_and_metadata(runtime: MemoryRuntime, scope: Scope) -> None:
    p, a, s = scope.project_id, scope.agent_instance_id, scope.session_id
    await runtime.lifecycle.spawn(p, a, s, initial_state={f"k{i}": i for i in range(200)})
    await runtime.lifecycle.pause(p, a, s, metadata={"why": "lunch"})
    await runtime.lifecycle.resume(p, a, s, metadata={"why": "back"})
    events = await runtime.store.list_events(scope, 10)
    assert [e.event_type for e in events] == ["spawn", "pause", "resume"]
    assert all(e.duration_ms > 0 for e in events)
    assert events[1].detail["metadata"] == {"why": "lunch"} and events[2].detail["metadata"] == {"why": "back"}
