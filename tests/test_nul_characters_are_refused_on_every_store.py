"""A NUL character (U+0000) in any text a tool would store or search is ``invalid_argument`` on every store.

Postgres ``text`` and ``jsonb`` cannot hold U+0000, so rather than SQLite and Redis accepting what Postgres
answers ``internal`` to, every store refuses it, before anything is written: free-text arguments, working-memory
keys and values, and strings (or object keys) nested in initial_state, metadata and values. The same calls run
through the SDK's client on SQLite, Redis + SQLite, Postgres and Redis + Postgres, and each checks that the
session is as it was.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.server.assembly import create_server
from tests.refused_calls import SESSION_URI, Args, assert_as_it_was, episode, running_session, scoped
from tests.test_string_arguments_round_trip import Ids, ok, read

pytestmark = pytest.mark.anyio

NUL = "a\x00b"


SPAWN_CASES: dict[str, Args] = {
    "initial_state key": scoped(initial_state={NUL: 1}),
    "initial_state value": scoped(initial_state={"k": NUL}),
    "initial_state nested value": scoped(initial_state={"k": {"x": [NUL]}}),
    "initial_state nested key": scoped(initial_state={"k": {NUL: 1}}),
    "metadata value": scoped(metadata={"m": NUL}),
    "metadata key": scoped(metadata={NUL: 1}),
}
"""spawn calls that must make no session."""

SESSION_CASES: dict[str, tuple[str, Args]] = {
    "pause label": ("pause", scoped(label=NUL)),
    "pause metadata": ("pause", scoped(metadata={"m": [NUL]})),
    "resume metadata": ("resume", scoped(metadata={NUL: "x"})),
    "terminate task_description": ("terminate", scoped(task_description=NUL)),
    "terminate lessons_learned": ("terminate", scoped(lessons_learned=["fine", NUL])),
    "terminate metadata": ("terminate", scoped(metadata={"m": NUL})),
    "memory_set key": ("memory_set", scoped(key=NUL, value=1)),
    "memory_set value": ("memory_set", scoped(key="k", value=NUL)),
    "memory_set nested value": ("memory_set", scoped(key="k", value={"x": {"y": NUL}})),
    "memory_set nested key": ("memory_set", scoped(key="k", value=[{NUL: 1}])),
    "memory_get key": ("memory_get", scoped(key=NUL)),
    "memory_delete key": ("memory_delete", scoped(key=NUL)),
    "memory_list prefix": ("memory_list", scoped(prefix=NUL)),
    "record_episode task_type": ("record_episode", episode(task_type=NUL)),
    "record_episode task_description": ("record_episode", episode(task_description=NUL)),
    "record_episode outcome_details": ("record_episode", episode(outcome_details=NUL)),
    "record_episode lessons_learned": ("record_episode", episode(lessons_learned=[NUL])),
    "record_episode metadata": ("record_episode", episode(metadata={"m": NUL})),
    "search_episodes query": ("search_episodes", lambda ids: {"project_id": ids.p, "query": NUL}),
    "search_episodes task_type": ("search_episodes", lambda ids: {"project_id": ids.p, "query": "d", "task_type": NUL}),
}
"""Calls on a running session (working memory {"k": "v"}, one checkpoint) that must change nothing."""


async def refused_for_nul(c: Client, tool: str, args: dict[str, Any]) -> str | None:
    """None if the call is invalid_argument naming the NUL character; else what it answered."""
    result = await c.call_tool(tool, args)
    text = getattr(result.content[0], "text", "") if result.content else ""
    if result.is_error and text.startswith("invalid_argument:") and "NUL" in text:
        return None
    return text or str(result.structured_content)


async def test_nul_in_any_stored_or_searched_text_is_invalid_argument_and_writes_nothing(
    settings_on_every_store: Settings,
) -> None:
    failures: list[str] = []
    async with Client(create_server(settings_on_every_store)) as c:
        for case, args in SPAWN_CASES.items():
            ids = Ids()
            answer = await refused_for_nul(c, "spawn", args(ids))
            if answer is not None:
                failures.append(f"spawn {case}: {answer}")
                continue
            await ok(c, "spawn", **ids.scope())  # no session was made: spawning it now succeeds
        for case, (tool, args) in SESSION_CASES.items():
            ids = Ids()
            checkpoint = await running_session(c, ids)
            answer = await refused_for_nul(c, tool, args(ids))
            if answer is not None:
                failures.append(f"{case}: {answer}")
                continue
            await assert_as_it_was(c, ids, checkpoint, case)
    assert not failures, "\n".join(failures)


async def test_text_that_only_spells_a_nul_escape_is_stored_as_given(settings_on_every_store: Settings) -> None:
    """The six characters ``\\u0000`` (a backslash, not a NUL) are ordinary text on every store."""
    spelled = "a\\u0000b"
    async with Client(create_server(settings_on_every_store)) as c:
        ids = Ids()
        await ok(c, "spawn", **ids.scope(initial_state={spelled: spelled}, metadata={"m": spelled}))
        await ok(c, "memory_set", **ids.scope(key="k", value={"x": [spelled]}))
        await ok(c, "pause", **ids.scope(label=spelled, metadata={spelled: spelled}))
        result = await ok(c, "terminate", **ids.scope(task_description=spelled, lessons_learned=[spelled]))
        body = await read(c, f"memory://projects/{ids.p}/episodes/{result['episode_id']}")
        assert (body["task_description"], body["lessons_learned"]) == (spelled, [spelled])
        cp = (await ok(c, "list_checkpoints", **ids.scope()))["checkpoints"][0]
        assert cp["label"] == spelled
        state = await read(c, SESSION_URI.format(p=ids.p, a=ids.a, s=ids.s) + f"/checkpoints/{cp['checkpoint_id']}")
        assert state["state"] == {spelled: spelled, "k": {"x": [spelled]}}
        assert state["metadata"] == {spelled: spelled}
