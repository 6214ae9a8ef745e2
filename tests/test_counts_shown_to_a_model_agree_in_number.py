"""Counts in texts a model reads agree with their number: ``1 key`` and ``2 keys``, never ``1 keys``, in a
briefing's checkpoint lines, the episode terminate writes (its outcome details and state summary), the resource
list's checkpoint descriptions, and the state summary's headline, shapes and tail. On every backend."""

from __future__ import annotations

import json
import uuid

import pytest
from mcp import Client

from mcp_memory.models import Item, Scope
from mcp_memory.services.briefing import BriefingRequest, build_briefing
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.summary import summarize_state
from tests.conftest import FakeClock

pytestmark = [pytest.mark.anyio]
EVERY_BACKEND = pytest.mark.backends("sqlite", "redis", "postgres")


def sid(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


@EVERY_BACKEND
async def test_a_briefing_counts_one_key_of_a_checkpoint_as_one_key(runtime: MemoryRuntime, clock: FakeClock) -> None:
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    await runtime.lifecycle.spawn(*sid(scope), initial_state={"goal": "ship"})
    await runtime.lifecycle.pause(*sid(scope), label="one")
    clock.advance(1)
    await runtime.lifecycle.resume(*sid(scope))
    await runtime.working.set(scope, "step", 2)
    await runtime.lifecycle.pause(*sid(scope), label="two")
    request = BriefingRequest(scope.project_id, None, scope.agent_instance_id, scope.session_id)
    text = (await build_briefing(runtime, request)).text
    assert '"one", 1 key\n' in text and '"two", 2 keys' in text and "1 keys" not in text, text


@EVERY_BACKEND
async def test_the_episode_of_a_one_key_session_says_one_item_and_one_key(runtime: MemoryRuntime) -> None:
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    await runtime.lifecycle.spawn(*sid(scope), initial_state={"n": 1})
    result = await runtime.lifecycle.terminate(*sid(scope))
    episode = await runtime.store.get_episode(scope.project_id, uuid.UUID(result.data["episode_id"]))
    assert episode is not None
    assert episode.outcome_details == "Session terminated (success) with 1 working-memory item"
    assert episode.context_summary is not None and episode.context_summary.startswith("1 key, 1 byte of JSON")


@EVERY_BACKEND
async def test_the_resource_list_describes_a_one_key_checkpoint_as_one_key(client: Client) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    s = {"project_id": p, "agent_instance_id": a, "session_id": "s"}
    assert not (await client.call_tool("spawn", {**s, "initial_state": {"goal": "ship"}})).is_error
    assert not (await client.call_tool("pause", s)).is_error
    described = [r.description for r in (await client.list_resources()).resources if r.name.startswith("checkpoint:")]
    assert described and all(d is not None and d.startswith("1 key, ") for d in described), described


def test_the_state_summary_counts_keys_and_bytes_in_number() -> None:
    one = summarize_state({"n": Item("1")})
    assert one.splitlines()[0] == "1 key, 1 byte of JSON (1 number)."
    nested = summarize_state({"cfg": Item(json.dumps({"only": True})), "b": Item("2")})
    assert nested.startswith("2 keys, ") and "- cfg (object, 1 key: only; " in nested, nested
    # Budgets from roomy to tight: the keys left out are named at the end (here the long string, shown last).
    items = {f"k{i:02}": Item("1") for i in range(30)} | {"zz": Item(json.dumps("y" * 500))}
    tails = [summarize_state(items, b).splitlines()[-1] for b in range(300, 700, 10)]
    assert "- and 1 more key: zz" in tails, tails
    assert any(t.startswith("- and ") and t.split()[2] != "1" and " more keys: " in t for t in tails), tails
    assert not any(" 1 more keys" in t for t in tails)
