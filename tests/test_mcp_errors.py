"""Bad input for every tool, through the real in-process MCP client.

Every failure must be an MCP tool error (``isError``) whose text is ``<code>: <plain sentence>`` with a
docs/contract.md code, never a traceback, never an argument echoed at full length, and never a partial write: each
test takes a fingerprint of everything the runtime's store holds before the bad call and compares it after.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult

from mcp_memory.config import Settings
from mcp_memory.errors import ERROR_CODES, InvalidArgument, MemoryServiceError
from mcp_memory.models import Scope
from mcp_memory.server import create_server
from mcp_memory.server.app import MemoryServer

pytestmark = pytest.mark.anyio

ALL_TOOLS = [
    "spawn",
    "pause",
    "resume",
    "terminate",
    "list_checkpoints",
    "memory_set",
    "memory_get",
    "memory_delete",
    "memory_list",
    "record_episode",
    "search_episodes",
]
SESSION_TOOLS = [t for t in ALL_TOOLS if t != "search_episodes"]  # every tool that takes a session_id
HUGE = "x" * 10_000
BAD_UUIDS = ["not-a-uuid", "12345678-1234-1234-1234-12345678901Z", "", HUGE]
BAD_IDENTIFIERS = ["a/b", "*", "a b", "", HUGE, "y" * 129]
# Sessions a bad call could create or touch; the fingerprint looks at each of them.
KNOWN_SESSIONS = ["s1", "done", "fresh"]
DROP = object()  # an override that removes the argument


def assert_error(result: CallToolResult, code: str) -> str:
    """``result`` is a tool error ``<code>: <one plain sentence>``; returns the sentence."""
    assert code in ERROR_CODES
    assert result.is_error, f"expected {code}, got success: {result.structured_content}"
    assert result.content, "an error result must carry its text"
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith(f"{code}: "), text[:300]
    sentence = text[len(code) + 2 :]
    assert sentence.strip() and sentence[0].isalnum(), text[:300]
    assert "Traceback" not in text and 'File "' not in text, text[:300]
    assert "\n" not in text, text[:300]
    assert len(text) < 1000, f"error text is {len(text)} characters: {text[:300]}"
    return sentence


@dataclass
class World:
    """An in-process client on a server with a seeded project.

    ``s1`` is a running session holding keys a, b, c with checkpoint ``cp1`` (keys a, b); ``done`` is a
    terminated session with checkpoint ``cp-done``; one episode has been recorded.
    """

    client: Client
    server: MemoryServer
    project: str
    agent: str
    guarded: bool = False

    def args(self, tool: str, **overrides: Any) -> dict[str, Any]:
        """Valid arguments for ``tool`` (they would change state if the call went through), overridden."""
        scope = {"project_id": self.project, "agent_instance_id": self.agent, "session_id": "s1"}
        valid: dict[str, dict[str, Any]] = {
            "spawn": {**scope, "session_id": "fresh", "initial_state": {"k": 1}},
            "pause": {**scope, "checkpoint_id": "cp-new", "label": "l"},
            "resume": {**scope, "checkpoint_id": "cp1"},
            "terminate": {**scope, "outcome": "success"},
            "list_checkpoints": {**scope},
            "memory_set": {**scope, "key": "a", "value": "changed"},
            "memory_get": {**scope, "key": "a"},
            "memory_delete": {**scope, "key": "a"},
            "memory_list": {**scope},
            "record_episode": {
                "project_id": self.project,
                "agent_instance_id": self.agent,
                "session_id": "s1",
                "task_type": "bug_fix",
                "task_description": "fix the flaky test",
                "outcome": "success",
                "importance_score": 0.5,
            },
            "search_episodes": {"project_id": self.project, "query": "flaky test", "agent_instance_id": self.agent},
        }
        result = dict(valid[tool])
        for name, value in overrides.items():
            if value is DROP:
                result.pop(name, None)
            else:
                result[name] = value
        return result

    async def call(self, tool: str, **overrides: Any) -> CallToolResult:
        return await self.client.call_tool(tool, self.args(tool, **overrides))

    async def ok(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
        assert result.structured_content is not None
        return result.structured_content

    async def fingerprint(self) -> dict[str, Any]:
        """Everything a bad call could have written, read back through the runtime's store."""
        rt = self.server.runtime
        store = rt.store
        now = time.time()
        facts = await rt.check()
        for info in facts.values():
            info.pop("path", None)
        sessions: dict[str, Any] = {}
        for sid in KNOWN_SESSIONS:
            scope = Scope.parse(self.project, self.agent, sid)
            info = await store.get_session(scope)
            checkpoints = await store.list_checkpoints(scope, 500, None) if info else []
            states = {}
            for cp in checkpoints:
                data = await store.get_checkpoint(scope, cp.checkpoint_id)
                assert data is not None
                states[cp.checkpoint_id] = data.items
            sessions[sid] = {
                "info": None if info is None else info.model_dump(mode="json"),
                "working": await store.snapshot(scope, now),
                "checkpoints": [cp.model_dump(mode="json") for cp in checkpoints],
                "checkpoint_states": states,
            }
        return {
            "counts": facts,
            "sessions": sessions,
            "recent_checkpoints": [
                (str(scope), info.model_dump(mode="json"))
                for scope, info in await store.recent_checkpoints(None, 10_000)
            ],
            "episodes": [e.model_dump(mode="json") for e in await store.recent_episodes(None, 10_000)],
        }

    @asynccontextmanager
    async def unchanged(self, what: str = "a failed call") -> AsyncIterator[None]:
        """The block changes nothing in the store (one fingerprint around many failing calls)."""
        if self.guarded:
            yield
            return
        before = await self.fingerprint()
        self.guarded = True
        try:
            yield
        finally:
            self.guarded = False
        assert await self.fingerprint() == before, f"{what} changed the store"

    async def expect(self, code: str, tool: str, **overrides: Any) -> str:
        """Call ``tool`` with bad arguments: it fails with ``code`` and changes nothing."""
        return await self.expect_raw(code, tool, self.args(tool, **overrides))

    async def expect_raw(self, code: str, tool: str, arguments: dict[str, Any]) -> str:
        """As :meth:`expect`, with the arguments given whole."""
        async with self.unchanged(f"{tool} failing with {code}"):
            return assert_error(await self.client.call_tool(tool, arguments), code)


@asynccontextmanager
async def open_world(settings: Settings) -> AsyncIterator[World]:
    server = create_server(settings)
    project, agent = str(uuid.uuid4()), str(uuid.uuid4())
    async with Client(server) as client:
        w = World(client, server, project, agent)
        scope = {"project_id": project, "agent_instance_id": agent}
        await w.ok("spawn", {**scope, "session_id": "s1", "initial_state": {"a": 1, "b": [1, 2]}})
        await w.ok("pause", {**scope, "session_id": "s1", "checkpoint_id": "cp1", "label": "first"})
        await w.ok("memory_set", {**scope, "session_id": "s1", "key": "c", "value": {"x": "y"}})
        await w.ok("spawn", {**scope, "session_id": "done", "initial_state": {"z": 0}})
        await w.ok("pause", {**scope, "session_id": "done", "checkpoint_id": "cp-done"})
        await w.ok("terminate", {**scope, "session_id": "done", "task_description": "finished work"})
        await w.ok(
            "record_episode",
            {**scope, "task_type": "deploy", "task_description": "ship the release", "outcome": "partial"},
        )
        yield w


@pytest.fixture
async def world(make_settings: Callable[..., Settings]) -> AsyncIterator[World]:
    async with open_world(make_settings(max_value_bytes=1000, max_keys_per_session=5)) as w:
        yield w


# -- identifiers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("tool", ALL_TOOLS)
async def test_bad_project_id(world: World, tool: str) -> None:
    async with world.unchanged():
        for bad in BAD_UUIDS:
            sentence = await world.expect("invalid_argument", tool, project_id=bad)
            assert "project_id" in sentence
            assert HUGE not in sentence


@pytest.mark.parametrize("tool", ALL_TOOLS)
async def test_bad_agent_instance_id(world: World, tool: str) -> None:
    async with world.unchanged():
        for bad in BAD_UUIDS:
            sentence = await world.expect("invalid_argument", tool, agent_instance_id=bad)
            assert "agent_instance_id" in sentence
            assert HUGE not in sentence


async def test_bad_agent_type_id(world: World) -> None:
    async with world.unchanged():
        for bad in BAD_UUIDS:
            sentence = await world.expect("invalid_argument", "spawn", agent_type_id=bad)
            assert "agent_type_id" in sentence
            assert HUGE not in sentence


@pytest.mark.parametrize("tool", SESSION_TOOLS)
async def test_bad_session_id(world: World, tool: str) -> None:
    async with world.unchanged():
        for bad in BAD_IDENTIFIERS:
            sentence = await world.expect("invalid_argument", tool, session_id=bad)
            assert "session_id" in sentence
            assert HUGE not in sentence and "x" * 200 not in sentence


@pytest.mark.parametrize(
    ("tool", "field"), [("pause", "checkpoint_id"), ("resume", "checkpoint_id"), ("list_checkpoints", "before")]
)
async def test_bad_checkpoint_id(world: World, tool: str, field: str) -> None:
    async with world.unchanged():
        for bad in BAD_IDENTIFIERS:
            sentence = await world.expect("invalid_argument", tool, **{field: bad})
            assert field in sentence
            assert HUGE not in sentence


async def test_unknown_checkpoint_leaves_working_memory_untouched(world: World) -> None:
    sentence = await world.expect("not_found", "resume", checkpoint_id="no-such-checkpoint")
    assert "no-such-checkpoint" in sentence
    await world.expect("not_found", "resume", checkpoint_id="cp-done")  # another session's checkpoint
    await world.expect("not_found", "list_checkpoints", before="no-such-checkpoint")
    assert (await world.ok("memory_list", world.args("memory_list")))["keys"] == ["a", "b", "c"]


async def test_unknown_session(world: World) -> None:
    for tool in ["pause", "resume", "terminate", "list_checkpoints", "memory_set", "memory_delete"]:
        await world.expect("not_found", tool, session_id="never-spawned")
    await world.expect("not_found", "memory_get", session_id="never-spawned")
    other_agent = str(uuid.uuid4())
    await world.expect("not_found", "memory_get", agent_instance_id=other_agent)  # s1 of another agent
    await world.expect("not_found", "pause", project_id=str(uuid.uuid4()))


async def test_unknown_key(world: World) -> None:
    sentence = await world.expect("not_found", "memory_get", key="missing")
    assert "missing" in sentence
    result = await world.call("memory_delete", key="missing")
    assert not result.is_error and result.structured_content == {"deleted": False}


# -- limits ----------------------------------------------------------------------------------------------
async def test_value_over_size_limit(world: World) -> None:
    big = "v" * 2000  # max_value_bytes=1000
    sentence = await world.expect("too_large", "memory_set", key="a", value=big)  # replacing: old value kept
    assert "1000" in sentence and big not in sentence
    await world.expect("too_large", "memory_set", key="new-key", value={"nested": [big]})
    await world.expect("too_large", "spawn", initial_state={"ok": 1, "big": big})
    for tool in ["spawn", "pause", "terminate", "record_episode"]:
        await world.expect("too_large", tool, metadata={"blob": big})
    assert (await world.ok("memory_get", world.args("memory_get")))["value"] == 1
    # At the limit exactly is fine: "v"*998 serialises to 1000 bytes with its quotes.
    await world.ok("memory_set", world.args("memory_set", key="edge", value="v" * 998))


async def test_key_over_length_limit(world: World) -> None:
    long_key = "k" * 257
    for tool in ["memory_set", "memory_get", "memory_delete"]:
        sentence = await world.expect("too_large", tool, key=long_key)
        assert "256" in sentence and long_key not in sentence
    await world.expect("too_large", "memory_set", key=HUGE)
    await world.expect("too_large", "spawn", initial_state={long_key: 1})
    await world.ok("memory_set", world.args("memory_set", key="k" * 256, value=1))


async def test_bad_keys(world: World) -> None:
    await world.expect("invalid_argument", "memory_set", key="")
    await world.expect("invalid_argument", "memory_set", key="a\x00b")
    await world.expect("invalid_argument", "memory_set", key=5)
    await world.expect("invalid_argument", "memory_get", key=["a"])


async def test_key_count_limit(make_settings: Callable[..., Settings]) -> None:
    async with open_world(make_settings(max_keys_per_session=3)) as w:  # s1 holds a, b, c: full
        sentence = await w.expect("too_large", "memory_set", key="d", value=1)
        assert "3" in sentence
        await w.expect("too_large", "spawn", initial_state={"k1": 1, "k2": 2, "k3": 3, "k4": 4})
        # Replacing an existing key is not a new key.
        await w.ok("memory_set", w.args("memory_set", key="a", value=2))
        # A merging resume that would overflow restores nothing.
        await w.ok("memory_delete", w.args("memory_delete", key="a"))
        await w.ok("memory_delete", w.args("memory_delete", key="b"))
        await w.ok("memory_set", w.args("memory_set", key="d", value=4))
        await w.ok("memory_set", w.args("memory_set", key="e", value=5))
        await w.expect("too_large", "resume", checkpoint_id="cp1", clear_current=False)
        assert (await w.ok("memory_list", w.args("memory_list")))["keys"] == ["c", "d", "e"]
        # Deleting makes room again.
        await w.ok("memory_delete", w.args("memory_delete", key="e"))
        await w.ok("memory_set", w.args("memory_set", key="f", value=6))


async def test_text_limits(world: World) -> None:
    await world.expect("too_large", "pause", label="l" * 300)
    await world.expect("too_large", "search_episodes", query="q" * 5000)
    await world.expect("too_large", "record_episode", task_type="t" * 101)
    await world.expect("too_large", "record_episode", lessons_learned=["x"] * 101)


# -- enumerations and ranges -----------------------------------------------------------------------------
@pytest.mark.parametrize("tool", ["terminate", "record_episode", "search_episodes"])
async def test_unknown_outcome(world: World, tool: str) -> None:
    async with world.unchanged():
        for bad in ["meh", "SUCCESS", "", 1]:
            sentence = await world.expect("invalid_argument", tool, outcome=bad)
            assert "outcome" in sentence


async def test_importance_score_out_of_range(world: World) -> None:
    async with world.unchanged():
        for bad in [1.5, -0.1, 2, "high", -1e-9]:
            sentence = await world.expect("invalid_argument", "record_episode", importance_score=bad)
            assert "importance_score" in sentence
    await world.ok("record_episode", world.args("record_episode", importance_score=1))
    await world.ok("record_episode", world.args("record_episode", importance_score=0))


@pytest.mark.parametrize(
    ("tool", "bads"),
    [("list_checkpoints", [0, -1, 501, 10**9, "ten", 2.5]), ("search_episodes", [0, -1, 101, "five", 1.5])],
)
async def test_limit_out_of_range(world: World, tool: str, bads: list[Any]) -> None:
    async with world.unchanged():
        for bad in bads:
            sentence = await world.expect("invalid_argument", tool, limit=bad)
            assert "limit" in sentence


async def test_bad_since(world: World) -> None:
    async with world.unchanged():
        for bad in ["yesterday", "2024-13-45", "2024-01-01T25:00:00", "", 12]:
            sentence = await world.expect("invalid_argument", "search_episodes", since=bad)
            assert "since" in sentence
    hits = await world.ok("search_episodes", world.args("search_episodes", query="release", since="2000-01-01"))
    assert hits["episodes"]


async def test_huge_since_is_not_echoed(world: World) -> None:
    sentence = await world.expect("invalid_argument", "search_episodes", since=HUGE)
    assert HUGE not in sentence


async def test_booleans_are_not_numbers(world: World) -> None:
    async with world.unchanged():
        await world.expect("invalid_argument", "record_episode", importance_score=True)
        await world.expect("invalid_argument", "record_episode", importance_score="0.5")
        await world.expect("invalid_argument", "list_checkpoints", limit=True)
        await world.expect("invalid_argument", "search_episodes", limit=True)
        await world.expect("invalid_argument", "memory_set", ttl_seconds=True)


async def test_empty_query(world: World) -> None:
    async with world.unchanged():
        for bad in ["", "   ", "\n\t"]:
            sentence = await world.expect("invalid_argument", "search_episodes", query=bad)
            assert "query" in sentence


async def test_bad_ttl(world: World) -> None:
    async with world.unchanged():
        for bad in [0, -1, "soon", 10**12, -1e-9]:
            sentence = await world.expect("invalid_argument", "memory_set", ttl_seconds=bad)
            assert "ttl_seconds" in sentence


async def test_wrong_types(world: World) -> None:
    async with world.unchanged():
        await world.expect("invalid_argument", "spawn", initial_state=[1, 2])
        await world.expect("invalid_argument", "spawn", initial_state="state")
        await world.expect("invalid_argument", "spawn", metadata="meta")
        await world.expect("invalid_argument", "pause", metadata=[1])
        await world.expect("invalid_argument", "terminate", lessons_learned="one lesson")
        await world.expect("invalid_argument", "terminate", lessons_learned=[1, 2])
        await world.expect("invalid_argument", "record_episode", task_description="")
        await world.expect("invalid_argument", "record_episode", task_type=["a"])
        await world.expect("invalid_argument", "memory_list", prefix=5)


# -- missing arguments, unknown tool, no default project ----------------------------------------------------
# agent_instance_id is not among them: it defaults (tests/test_default_identity.py: without a default, omitting it
# is invalid_argument naming it).
REQUIRED = {
    "spawn": ["session_id"],
    "pause": ["session_id"],
    "resume": ["session_id"],
    "terminate": ["session_id"],
    "list_checkpoints": ["session_id"],
    "memory_set": ["session_id", "key", "value"],
    "memory_get": ["session_id", "key"],
    "memory_delete": ["session_id", "key"],
    "memory_list": ["session_id"],
    "record_episode": ["task_type", "task_description", "outcome"],
    "search_episodes": ["query"],
}


@pytest.mark.parametrize("tool", ALL_TOOLS)
async def test_missing_required_arguments(world: World, tool: str) -> None:
    async with world.unchanged():
        sentence = await world.expect_raw("invalid_argument", tool, {})
        for name in REQUIRED[tool]:
            assert name in sentence
        for name in REQUIRED[tool]:
            sentence = await world.expect("invalid_argument", tool, **{name: DROP})
            assert name in sentence


async def test_unknown_tool(world: World) -> None:
    """A request for a tool that is not there is a protocol error (SPEC.md), not a tool error."""
    async with world.unchanged():
        for name, arguments in [("no_such_tool", {"project_id": world.project}), ("x" * 300, {})]:
            with pytest.raises(MCPError) as info:
                await world.client.call_tool(name, arguments)
            assert info.value.error.code == INVALID_PARAMS
            assert info.value.error.message.startswith("not_found: tool ")
            assert name[:200] in info.value.error.message and len(info.value.error.message) < 300


@pytest.mark.parametrize("tool", ALL_TOOLS)
async def test_project_id_required_without_default(make_settings: Callable[..., Settings], tool: str) -> None:
    async with open_world(make_settings(project_id=None)) as w:
        sentence = await w.expect("invalid_argument", tool, project_id=DROP)
        assert "project_id" in sentence and "MCP_MEMORY_PROJECT_ID" in sentence


async def test_project_id_defaults_from_settings(make_settings: Callable[..., Settings]) -> None:
    project = uuid.uuid4()
    server = create_server(make_settings(project_id=project))
    agent = str(uuid.uuid4())
    scope = {"agent_instance_id": agent, "session_id": "s1"}
    async with Client(server) as c:

        async def ok(tool: str, **arguments: Any) -> dict[str, Any]:
            result = await c.call_tool(tool, arguments)
            assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
            assert result.structured_content is not None
            return result.structured_content

        await ok("spawn", **scope, initial_state={"goal": "default project"})
        await ok("memory_set", **scope, key="k", value=[1])
        assert (await ok("memory_get", **scope, key="k"))["value"] == [1]
        assert (await ok("memory_list", **scope))["keys"] == ["goal", "k"]
        assert (await ok("memory_delete", **scope, key="k"))["deleted"] is True
        cp = (await ok("pause", **scope))["checkpoint_id"]
        assert (await ok("resume", **scope))["checkpoint_id"] == cp
        assert [c["checkpoint_id"] for c in (await ok("list_checkpoints", **scope))["checkpoints"]] == [cp]
        await ok(
            "record_episode",
            agent_instance_id=agent,
            task_type="t",
            task_description="default project task",
            outcome="success",
        )
        episode = (await ok("terminate", **scope, task_description="default project session"))["episode_id"]
        hits = (await ok("search_episodes", query="default project"))["episodes"]
        assert episode in [h["episode_id"] for h in hits]
        # The data landed in the configured project, and an explicit project_id still wins.
        assert (await server.runtime.store.get_session(Scope.parse(project, agent, "s1"))) is not None
        other = str(uuid.uuid4())
        assert (await ok("search_episodes", project_id=other, query="default project"))["episodes"] == []
        result = await c.call_tool("memory_list", {**scope, "project_id": other})
        assert result.structured_content == {"keys": []} or result.is_error


# -- writes to a terminated session, reused ids ------------------------------------------------------------
async def test_terminated_session_accepts_no_writes(world: World) -> None:
    async with world.unchanged():
        for tool, extra in [
            ("memory_set", {}),
            ("memory_delete", {"key": "z"}),
            ("pause", {}),
            ("resume", {"checkpoint_id": "cp-done"}),
            ("resume", {"checkpoint_id": DROP}),
        ]:
            sentence = await world.expect("conflict", tool, session_id="done", **extra)
            assert "terminated" in sentence
        await world.expect("conflict", "spawn", session_id="done")
    # Still readable.
    checkpoints = await world.ok("list_checkpoints", world.args("list_checkpoints", session_id="done"))
    assert [c["checkpoint_id"] for c in checkpoints["checkpoints"]] == ["cp-done"]


async def test_spawn_existing_session_is_conflict(world: World) -> None:
    sentence = await world.expect("conflict", "spawn", session_id="s1", initial_state={"a": "overwritten?"})
    assert "s1" in sentence


async def test_reused_checkpoint_id_is_conflict(world: World) -> None:
    await world.ok("memory_set", world.args("memory_set", key="a", value="newer"))
    sentence = await world.expect("conflict", "pause", checkpoint_id="cp1", label="second")
    assert "cp1" in sentence
    cp = await world.server.runtime.store.get_checkpoint(Scope.parse(world.project, world.agent, "s1"), "cp1")
    assert cp is not None and cp.state() == {"a": 1, "b": [1, 2]} and cp.info.label == "first"


# -- resources with bad identifiers ------------------------------------------------------------------------
async def test_resource_errors(world: World) -> None:
    p, a = world.project, world.agent
    cases = [
        (f"memory://projects/{p}/episodes/not-a-uuid", "invalid_argument"),
        (f"memory://projects/{p}/episodes/{uuid.uuid4()}", "not_found"),
        ("memory://projects/not-a-uuid/episodes", "invalid_argument"),
        (f"memory://projects/{p}/agents/not-a-uuid/sessions/s1", "invalid_argument"),
        (f"memory://projects/{p}/agents/{a}/sessions/{HUGE}", "invalid_argument"),
        (f"memory://projects/{p}/agents/{a}/sessions/a%2Fb", "invalid_argument"),
        (f"memory://projects/{p}/agents/{a}/sessions/s1/checkpoints/a*b", "invalid_argument"),
        (f"memory://projects/{p}/agents/{a}/sessions/never/checkpoints", "not_found"),
        (f"memory://projects/{p}/agents/{a}/sessions/s1/checkpoints/cp-done", "not_found"),
    ]
    async with world.unchanged():
        for uri, code in cases:
            with pytest.raises(MCPError) as info:
                await world.client.read_resource(uri)
            message = str(info.value)
            assert message.startswith(f"{code}: "), (uri[:120], message[:300])
            assert "Traceback" not in message and HUGE not in message


async def test_malformed_resource_uri_is_invalid_params(world: World) -> None:
    for uri in [
        f"memory://projects/{world.project}/episodes/not-a-uuid",
        f"memory://projects/{world.project}/agents/{world.agent}/sessions/a%2Fb",
    ]:
        with pytest.raises(MCPError) as info:
            await world.client.read_resource(uri)
        assert str(info.value).startswith("invalid_argument: ")
        assert info.value.error.code == INVALID_PARAMS


# -- the Python API refuses non-JSON values ------------------------------------------------------------------
NON_JSON = [set(), {1, 2}, float("nan"), float("inf"), object(), b"bytes", {"nested": {"deep": object()}}]


async def test_python_api_rejects_non_json_values(world: World) -> None:
    rt = world.server.runtime
    scope = Scope.parse(world.project, world.agent, "s1")
    async with world.unchanged():
        for value in NON_JSON:
            with pytest.raises(InvalidArgument) as info:
                await rt.working.set(scope, "a", value)
            assert str(info.value).startswith("invalid_argument: ")
            with pytest.raises(InvalidArgument):
                await rt.working.set(scope, "new-key", value)
            with pytest.raises(InvalidArgument):
                await rt.lifecycle.spawn(world.project, world.agent, "fresh", initial_state={"k": value})
            with pytest.raises(InvalidArgument):
                await rt.lifecycle.pause(world.project, world.agent, "s1", metadata={"k": value})


async def test_python_api_rejects_non_string_keys(world: World) -> None:
    scope = Scope.parse(world.project, world.agent, "s1")
    async with world.unchanged():
        for value in [{1: "a"}, {"ok": {None: 1}}, [{2.5: 0}]]:
            with pytest.raises(InvalidArgument):
                await world.server.runtime.working.set(scope, "a", value)


async def test_python_api_rejects_too_deep_values(world: World) -> None:
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    scope = Scope.parse(world.project, world.agent, "s1")
    async with world.unchanged():
        with pytest.raises(MemoryServiceError) as info:
            await world.server.runtime.working.set(scope, "a", deep)
        assert info.value.code in ("invalid_argument", "too_large")
        assert len(str(info.value)) < 1000
