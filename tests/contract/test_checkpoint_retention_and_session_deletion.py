"""Contract: checkpoint retention in the pause transaction, ``delete_checkpoint``, ``delete_session`` and the
operator's ``erase``, on every store pair (SQLite, Redis + SQLite, Postgres, Redis + Postgres)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from mcp_memory.errors import Conflict, NotFound
from mcp_memory.models import CheckpointInfo, Item, Scope
from mcp_memory.stores.ports import EpisodeFilter, Removed, Retention, SameStoreLifecycle, WorkingErase
from tests.conftest import StorePair, new_scope
from tests.contract.test_durable_store import LEASE, T0, TOKEN, add, create, episode, event, info

pytestmark = pytest.mark.anyio

ITEMS = {"k": Item('"v"')}


async def pause(
    stores: StorePair,
    scope: Scope,
    checkpoint_id: str,
    when: float,
    retention: Retention | None = None,
    keep: bool = False,
    items: Mapping[str, Item] = ITEMS,
) -> None:
    cp = info(checkpoint_id, when, items).model_copy(update={"keep": keep})
    await stores.durable.record_pause(scope, cp, items, event("pause", when), retention)


async def ids(stores: StorePair, scope: Scope) -> list[str]:
    return [c.checkpoint_id for c in await stores.durable.list_checkpoints(scope, 1000, None)]


async def snapshot_of(stores: StorePair, scope: Scope) -> dict[str, Any]:
    """Everything the stores hold of one session, to compare before and after."""
    session = await stores.durable.get_session(scope)
    checkpoints = await stores.durable.list_checkpoints(scope, 1000, None)
    states = [await stores.durable.get_checkpoint(scope, c.checkpoint_id) for c in checkpoints]
    return {
        "session": session,
        "checkpoints": checkpoints,
        "states": states,
        "events": await stores.durable.list_events(scope, 1000),
        "working": await stores.working.snapshot(scope, T0 + 500),
    }


async def test_retention_keeps_the_newest_n_plus_the_kept_ones(stores: StorePair) -> None:
    scope = await create(stores)
    keep3 = Retention(keep_last=3)
    await pause(stores, scope, "c00", T0, keep3, keep=True)
    for i in range(1, 10):
        await pause(stores, scope, f"c{i:02}", T0 + i, keep3, keep=i == 4)
    assert await ids(stores, scope) == ["c09", "c08", "c07", "c04", "c00"]
    listed = {c.checkpoint_id: c.keep for c in await stores.durable.list_checkpoints(scope, 10, None)}
    assert listed == {"c09": False, "c08": False, "c07": False, "c04": True, "c00": True}


async def test_retention_by_age_never_prunes_the_newest(stores: StorePair) -> None:
    scope = await create(stores)
    await pause(stores, scope, "old-kept", T0, keep=True)
    await pause(stores, scope, "old", T0 + 1)
    await pause(stores, scope, "young", T0 + 100)
    await pause(stores, scope, "now", T0 + 130, Retention(max_age_seconds=60))
    assert await ids(stores, scope) == ["now", "young", "old-kept"]
    # The newest is kept even when it is older than the age (a pause that took its snapshot late).
    other = await create(stores, new_scope("s2"))
    await pause(stores, other, "a", T0)
    await pause(stores, other, "b", T0 + 1, Retention(keep_last=1, max_age_seconds=0.5))
    assert await ids(stores, other) == ["b"]


async def test_no_retention_keeps_everything(stores: StorePair) -> None:
    scope = await create(stores)
    for i in range(5):
        await pause(stores, scope, f"c{i}", T0 + i, Retention())
    assert len(await ids(stores, scope)) == 5


async def test_retention_in_the_one_transaction_pause(stores: StorePair) -> None:
    if not isinstance(stores.durable, SameStoreLifecycle) or stores.working is not stores.durable:
        pytest.skip("the one-transaction pause exists where the durable store is the working store too")
    scope = new_scope()
    await stores.open_session(scope, T0, {"k": Item('"v"')})
    for i in range(12):
        draft = CheckpointInfo(
            checkpoint_id=f"c{i:02}", created_at=info("x", T0 + i, {}).created_at, keys_count=0, bytes=0,
            content_hash="", keep=i == 0,
        )  # fmt: skip
        await stores.durable.pause_session(scope, draft, T0 + i, event("pause", T0 + i), Retention(keep_last=2))
    assert await ids(stores, scope) == ["c11", "c10", "c00"]


async def test_concurrent_pauses_leave_the_newest_n_and_at_most_the_last_pauses_own(stores: StorePair) -> None:
    scope = await create(stores)
    retention = Retention(keep_last=3)

    async def one(i: int) -> None:
        await pause(stores, scope, f"c{i:03}", T0 + i, retention)

    async with anyio.create_task_group() as tg:
        for i in range(24):
            tg.start_soon(one, i)
    # The newest three, and at most one more: the last pause's own checkpoint, which its prune spares when that pause
    # is dated before the newest (its caller's clock behind another's).
    kept = await ids(stores, scope)
    assert {"c021", "c022", "c023"} <= set(kept) and len(kept) <= 4, kept


async def test_delete_checkpoint_removes_only_that_one_and_records_an_event(stores: StorePair) -> None:
    scope = await create(stores)
    other = await create(stores, new_scope("s2"))
    await pause(stores, scope, "a", T0, keep=True)
    await pause(stores, scope, "b", T0 + 1)
    await pause(stores, other, "a", T0)
    before_other = await snapshot_of(stores, other)
    assert await stores.durable.delete_checkpoint(scope, "a", event("delete_checkpoint", T0 + 2, checkpoint_id="a"))
    assert await stores.durable.delete_checkpoint(scope, "b", event("delete_checkpoint", T0 + 3))  # the newest
    assert await ids(stores, scope) == []
    assert [e.event_type for e in await stores.durable.list_events(scope, 10)][-2:] == ["delete_checkpoint"] * 2
    # Unknown, or another session's id (already deleted here): nothing changes.
    events = await stores.durable.list_events(scope, 100)
    assert not await stores.durable.delete_checkpoint(scope, "a", event("delete_checkpoint", T0 + 4))
    assert not await stores.durable.delete_checkpoint(new_scope("nope"), "a", event("delete_checkpoint", T0 + 4))
    assert await stores.durable.list_events(scope, 100) == events
    assert await snapshot_of(stores, other) == before_other


async def _delete_session(stores: StorePair, scope: Scope, keep_episodes: bool = True) -> Removed:
    """What the service does: the Redis keys first (if Redis holds working memory), then the durable records."""
    working = 0
    if isinstance(stores.working, WorkingErase) and stores.working is not stores.durable:
        working = await stores.working.erase_session(scope, T0 + 500)
    removed = await stores.durable.delete_session(scope, keep_episodes, T0 + 500)
    return removed + Removed(working_keys=working)


async def test_delete_session_removes_that_session_only(stores: StorePair) -> None:
    scope = new_scope("doomed")
    sibling = Scope(scope.project_id, scope.agent_instance_id, "sibling")
    for s in (scope, sibling):
        await stores.open_session(s, T0, {"a": Item("1"), "b": Item("2"), "gone": Item("3", T0 + 1)})
        await pause(stores, s, "c1", T0 + 2)
        await pause(stores, s, "c2", T0 + 3)
    kept = await add(stores.durable, episode(scope.project_id, "the doomed session's episode", session_id="doomed",
                                             agent_instance_id=scope.agent_instance_id))  # fmt: skip
    before = await snapshot_of(stores, sibling)
    removed = await _delete_session(stores, scope)
    assert removed == Removed(working_keys=2, checkpoints=2, events=3, episodes=0, sessions=1)
    assert await stores.durable.get_session(scope) is None
    assert await stores.durable.list_events(scope, 100) == []
    assert await stores.durable.get_checkpoint(scope, None) is None
    assert await stores.working.snapshot(scope, T0 + 500) == {}
    with pytest.raises(NotFound):
        await stores.working.set(scope, "x", Item("1"), T0 + 501, stores.limits)
    assert await stores.durable.get_episode(scope.project_id, kept.episode_id) is not None  # kept by default
    assert await snapshot_of(stores, sibling) == before


async def test_delete_session_with_its_episodes_leaves_exact_search_statistics(stores: StorePair) -> None:
    scope = await create(stores)
    project = scope.project_id
    for text in ("deploy the billing service with canaries", "flaky migration test on billing tables"):
        await add(stores.durable, episode(project, text), with_embedding=False)
    query = "billing migration canaries"
    never = await stores.durable.search_episodes(project, query, None, EpisodeFilter(), 5, T0 + 60)
    ep = episode(project, "billing migration rolled back after canaries failed", session_id=scope.session_id,
                 agent_instance_id=scope.agent_instance_id)  # fmt: skip
    await add(stores.durable, ep, with_embedding=False)
    removed = await stores.durable.delete_session(scope, False, T0 + 60)
    assert (removed.episodes, removed.episode_ids) == (1, (ep.episode_id,))  # named, for its subscribers
    after = await stores.durable.search_episodes(project, query, None, EpisodeFilter(), 5, T0 + 60)
    assert [(e.episode_id, e.score) for e in after] == [(e.episode_id, e.score) for e in never]
    assert await stores.durable.get_episode(project, ep.episode_id) is None


async def test_delete_session_unknown_is_not_found_and_sealed_is_conflict(stores: StorePair) -> None:
    with pytest.raises(NotFound):
        await stores.durable.delete_session(new_scope("nobody"), True, T0)
    scope = await create(stores)
    await pause(stores, scope, "c1", T0 + 1)
    await stores.durable.seal(scope, TOKEN, T0 + 2, LEASE)
    before = await snapshot_of(stores, scope)
    with pytest.raises(Conflict):
        await stores.durable.delete_session(scope, True, T0 + 3)
    assert await snapshot_of(stores, scope) == before
    await stores.durable.record_terminate(scope, None, None, {"episode_id": None}, event("terminate", T0 + 4))
    assert (await stores.durable.delete_session(scope, True, T0 + 5)).checkpoints == 1


async def test_delete_session_goes_through_its_own_seal_only(stores: StorePair) -> None:
    # delete_session seals the session itself (keeping terminates out) and passes its token.
    scope = await create(stores)
    await pause(stores, scope, "c1", T0 + 1)
    await stores.durable.seal(scope, TOKEN, T0 + 2, LEASE)
    with pytest.raises(Conflict):
        await stores.durable.delete_session(scope, True, T0 + 3, "another token")
    assert (await stores.durable.delete_session(scope, True, T0 + 3, TOKEN)).checkpoints == 1
    assert await stores.durable.get_session(scope) is None


async def test_delete_session_goes_through_a_seal_whose_lease_lapsed_and_says_when_a_live_one_lapses(
    stores: StorePair,
) -> None:
    # A terminate that crashed after sealing holds the session off only within its lease, as it holds off a
    # terminate (which takes a lapsed seal over), whether or not the deletion sealed the session itself.
    for token in (None, "the deletion's token, lost to a terminate that took the seal over"):
        scope = await create(stores)
        await stores.durable.seal(scope, TOKEN, T0 + 2, LEASE)
        with pytest.raises(Conflict) as raised:
            await stores.durable.delete_session(scope, True, T0 + 2.5, token)
        assert f"its seal lapses within {int(LEASE)} seconds" in raised.value.message
        assert (await stores.durable.delete_session(scope, True, T0 + 2 + LEASE, token)).sessions == 1
        assert await stores.durable.get_session(scope) is None


async def test_erase_dry_run_counts_and_a_real_run_removes_exactly_the_scope(stores: StorePair) -> None:
    project, other_project = uuid.uuid4(), uuid.uuid4()
    agent, other_agent = uuid.uuid4(), uuid.uuid4()
    scopes = [Scope(project, agent, "s1"), Scope(project, agent, "s2"), Scope(project, other_agent, "s1")]
    bystander = Scope(other_project, agent, "s1")
    for s in (*scopes, bystander):
        await stores.open_session(s, T0, {"a": Item("1")})
        await pause(stores, s, "c1", T0 + 1)
        work = episode(s.project_id, f"work of {s.session_id}", agent_instance_id=s.agent_instance_id)
        await add(stores.durable, work.model_copy(update={"session_id": s.session_id}))
    await add(stores.durable, episode(project, "an episode without a session", agent_instance_id=agent))
    before = {s: await snapshot_of(stores, s) for s in (*scopes, bystander)}
    bystander_episodes = await stores.durable.recent_episodes([other_project], 10)

    def durable_only(removed: Removed) -> Removed:
        separate = stores.working is not stores.durable
        return (
            Removed(0, removed.checkpoints, removed.events, removed.episodes, removed.sessions) if separate else removed
        )

    counted = await stores.durable.erase(project, agent, None, T0 + 500, True)
    assert durable_only(counted) == durable_only(Removed(2, 2, 4, 3, 2))
    if isinstance(stores.working, WorkingErase) and stores.working is not stores.durable:
        assert await stores.working.erase(project, agent, None, T0 + 500, True) == (2, 2)
    assert {s: await snapshot_of(stores, s) for s in (*scopes, bystander)} == before  # the dry run changed nothing

    if isinstance(stores.working, WorkingErase) and stores.working is not stores.durable:
        assert await stores.working.erase(project, agent, None, T0 + 500, False) == (2, 2)
    assert await stores.durable.erase(project, agent, None, T0 + 500, False) == counted
    for s in scopes[:2]:
        assert await stores.durable.get_session(s) is None
        assert await stores.working.snapshot(s, T0 + 500) == {}
    assert await snapshot_of(stores, scopes[2]) == before[scopes[2]]  # another agent of the project
    assert [e.agent_instance_id for e in await stores.durable.recent_episodes([project], 10)] == [other_agent]
    # The whole project: the other agent goes too; the other project is untouched.
    whole = await stores.durable.erase(project, None, None, T0 + 500, False)
    assert (whole.sessions, whole.episodes) == (1, 1)
    assert await stores.durable.recent_episodes([project], 10) == []
    assert await snapshot_of(stores, bystander) == before[bystander]
    assert await stores.durable.recent_episodes([other_project], 10) == bystander_episodes
