"""Contract: every durable store counts, without reading an episode, the episodes a model's vector search misses:
those without a vector, and those whose vector another (or an unrecorded) model made. ``mcp-memory doctor`` and
``reembed`` report these counts; they are across every project, so a shared store is measured by its change."""

from __future__ import annotations

import uuid

import pytest

from mcp_memory.stores.ports import VectorBacklog
from tests.conftest import StorePair
from tests.contract.test_durable_store import T0, embed, episode

pytestmark = pytest.mark.anyio

OLD, NEW = "old-model@256", "new-model@256"


async def test_missing_and_other_model_vectors_are_counted(stores: StorePair) -> None:
    before = await stores.durable.vector_backlog(NEW)
    before_old = await stores.durable.vector_backlog(OLD)
    project = uuid.uuid4()
    await stores.durable.add_episode(episode(project, "no vector yet", created=T0), None, NEW)
    await stores.durable.add_episode(episode(project, "no vector either", created=T0 + 1), None)
    await stores.durable.add_episode(episode(project, "vector of the old model", created=T0 + 2), embed("x"), OLD)
    await stores.durable.add_episode(episode(project, "vector of an unrecorded model", created=T0 + 3), embed("x"))
    await stores.durable.add_episode(episode(project, "vector of the new model", created=T0 + 4), embed("x"), NEW)
    after = await stores.durable.vector_backlog(NEW)
    assert after == VectorBacklog(missing=before.missing + 2, other_model=before.other_model + 2)
    # Seen from the old model, the new model's vector is another model's, and the unrecorded one still is.
    old = await stores.durable.vector_backlog(OLD)
    assert old == VectorBacklog(missing=before_old.missing + 2, other_model=before_old.other_model + 2)
