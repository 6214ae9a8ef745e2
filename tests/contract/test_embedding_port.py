"""Contract: every durable store keeps which model made each vector, compares a query only with vectors of
its model, and lists/replaces vectors that are missing or of another model (``reembed``).

Stores may be shared between tests (fresh ids per test), so the cross-project work lists are filtered to
this test's episodes.
"""

from __future__ import annotations

import uuid

import pytest

from mcp_memory.models import Episode
from mcp_memory.stores.ports import EpisodeFilter
from tests.conftest import StorePair
from tests.contract.test_durable_store import T0, embed, episode

pytestmark = pytest.mark.anyio

OLD, NEW = "old-model@256", "new-model@256"


async def missing(stores: StorePair, mine: set[uuid.UUID], model: str | None = None) -> list[uuid.UUID]:
    listed = await stores.durable.episodes_missing_embedding(10_000, model)
    return [ep.episode_id for ep in listed if ep.episode_id in mine]


async def test_the_model_is_stored_and_search_compares_only_its_vectors(stores: StorePair) -> None:
    project = uuid.uuid4()
    text = "rotate the database credentials"
    old = episode(project, text, created=T0)
    new = episode(project, text, created=T0 + 1)
    await stores.durable.add_episode(old, embed(text), OLD)
    await stores.durable.add_episode(new, embed(text), NEW)
    found = await stores.durable.search_episodes(
        project, "zzzz", embed(text), EpisodeFilter(), 10, T0 + 5, mode="vector", embedding_model=NEW
    )
    assert [s.episode_id for s in found] == [new.episode_id]
    # Without a model named, every vector of the query's dimension counts (the port's older behaviour).
    found = await stores.durable.search_episodes(
        project, "zzzz", embed(text), EpisodeFilter(), 10, T0 + 5, mode="vector"
    )
    assert {s.episode_id for s in found} == {old.episode_id, new.episode_id}
    # Full-text search sees both whatever their vectors.
    found = await stores.durable.search_episodes(
        project, text, embed(text), EpisodeFilter(), 10, T0 + 5, embedding_model=NEW
    )
    assert {s.episode_id for s in found} == {old.episode_id, new.episode_id}


async def test_missing_and_stale_vectors_are_listed_oldest_first(stores: StorePair) -> None:
    project = uuid.uuid4()
    bare = episode(project, "no vector yet", created=T0)
    stale = episode(project, "vector of the old model", created=T0 + 1)
    unknown = episode(project, "vector of an unrecorded model", created=T0 + 2)
    current = episode(project, "vector of the new model", created=T0 + 3)
    bare2 = episode(project, "no vector either", created=T0 + 4)
    await stores.durable.add_episode(bare, None, NEW)  # no vector: the model name is not kept
    await stores.durable.add_episode(stale, embed("x"), OLD)
    await stores.durable.add_episode(unknown, embed("x"))
    await stores.durable.add_episode(current, embed("x"), NEW)
    await stores.durable.add_episode(bare2, None)
    mine = {e.episode_id for e in (bare, stale, unknown, current, bare2)}
    assert await missing(stores, mine) == [bare.episode_id, bare2.episode_id]
    assert await missing(stores, mine, NEW) == [bare.episode_id, stale.episode_id, unknown.episode_id, bare2.episode_id]
    got = await stores.durable.get_episode(project, bare.episode_id)
    assert got is not None and not got.embedded


async def test_set_episode_embedding_fills_missing_and_replaces_other_models(stores: StorePair) -> None:
    project = uuid.uuid4()
    bare = episode(project, "no vector yet", created=T0)
    stale = episode(project, "old vector", created=T0 + 1)
    await stores.durable.add_episode(bare, None)
    await stores.durable.add_episode(stale, embed("old"), OLD)
    mine = {bare.episode_id, stale.episode_id}

    assert await stores.durable.set_episode_embedding(project, bare.episode_id, embed("no vector yet"), NEW)
    assert not await stores.durable.set_episode_embedding(project, bare.episode_id, embed("again"), NEW)
    assert await stores.durable.set_episode_embedding(project, stale.episode_id, embed("old vector"), NEW)
    assert await missing(stores, mine, NEW) == []
    # Unknown episode, or another project's: nothing written.
    assert not await stores.durable.set_episode_embedding(project, uuid.uuid4(), embed("x"), NEW)
    assert not await stores.durable.set_episode_embedding(uuid.uuid4(), bare.episode_id, embed("x"), NEW)

    got: Episode | None = await stores.durable.get_episode(project, bare.episode_id)
    assert got is not None and got.embedded
    found = await stores.durable.search_episodes(
        project, "zzzz", embed("no vector yet"), EpisodeFilter(), 10, T0 + 5, mode="vector", embedding_model=NEW
    )
    assert found[0].episode_id == bare.episode_id and {s.episode_id for s in found} == mine


async def test_terminate_stores_the_model_of_its_episode(stores: StorePair) -> None:
    from tests.contract.test_durable_store import create, event

    scope = await create(stores)
    ep = episode(scope.project_id, "terminated session", session_id=scope.session_id)
    result = {"episode_id": str(ep.episode_id)}
    await stores.durable.record_terminate(
        scope, ep, embed("terminated session"), result, event("terminate", T0 + 1), NEW
    )
    found = await stores.durable.search_episodes(
        scope.project_id,
        "zzzz",
        embed("terminated session"),
        EpisodeFilter(),
        5,
        T0 + 2,
        mode="vector",
        embedding_model=NEW,
    )
    assert [s.episode_id for s in found] == [ep.episode_id]
    assert await missing(stores, {ep.episode_id}, NEW) == []
