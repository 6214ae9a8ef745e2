"""``terminate``'s metadata reaches the episode whole: every key the caller gives is kept beside the consolidated
``state_keys``, and metadata that names ``state_keys`` itself (the episode's list of consolidated keys) is
``invalid_argument`` with nothing written, instead of being overwritten silently. On every backend."""

from __future__ import annotations

import uuid

import pytest

from mcp_memory.errors import InvalidArgument
from mcp_memory.models import Scope, SessionStatus
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


def new_scope() -> Scope:
    return Scope(uuid.uuid4(), uuid.uuid4(), "s")


def sid(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


async def test_caller_metadata_is_kept_beside_the_consolidated_state_keys(runtime: MemoryRuntime) -> None:
    scope = new_scope()
    await runtime.lifecycle.spawn(*sid(scope), initial_state={"goal": "ship", "step": 3})
    mine = {"ticket": "T-1", "state": "review", "keys": ["x"]}
    result = await runtime.lifecycle.terminate(*sid(scope), metadata=mine)
    episode = await runtime.store.get_episode(scope.project_id, uuid.UUID(result.data["episode_id"]))
    assert episode is not None and episode.metadata == {**mine, "state_keys": ["goal", "step"]}


@pytest.mark.parametrize("consolidate", [True, False])
async def test_metadata_naming_state_keys_is_refused_and_nothing_is_written(
    runtime: MemoryRuntime, consolidate: bool
) -> None:
    scope = new_scope()
    await runtime.lifecycle.spawn(*sid(scope), initial_state={"goal": "ship"})
    with pytest.raises(InvalidArgument, match="state_keys"):
        await runtime.lifecycle.terminate(
            *sid(scope), metadata={"state_keys": ["mine"], "ticket": "T-1"}, consolidate_to_episodic=consolidate
        )
    session = await runtime.store.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING
    assert await runtime.working.state(scope) == {"goal": "ship"}
    assert await runtime.store.recent_episodes([scope.project_id], 10) == []
    assert [e.event_type for e in await runtime.store.list_events(scope, 100)] == ["spawn"]
    # The same session terminates once the metadata names the list otherwise.
    done = await runtime.lifecycle.terminate(*sid(scope), metadata={"my_state_keys": ["mine"]})
    assert done.data["items_cleared"] == 1
