"""Every string argument of every tool arrives exactly as sent, over stdio and Streamable HTTP.

Strings that look like JSON (``"[1,2]"``, ``"null"``, ``"{}"``, ``'{"x":1}'``) are sent through each argument
whose input schema accepts a string, as ``tools/list`` publishes it (so a new tool's arguments are covered
without editing this file's list of arguments), with the SDK's real client against ``mcp-memory serve``. Each
must either be stored and read back unchanged, or, where the argument's own rule refuses the text (a UUID, an
enum, an identifier pattern, a date), be ``invalid_argument``: never decoded into a list, an object or null.
A free-text argument without a read-back below fails the test, naming what to add.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import TextContent

from tests import http_helpers
from tests import test_stdio as stdio_helpers

pytestmark = pytest.mark.anyio

SAMPLES = ["[1,2]", "null", "{}", '{"x":1}']
IDENTIFIER = re.compile(r"[A-Za-z0-9._-]{1,128}")
DEFAULT_PROJECT = str(uuid.uuid4())
"""The server's configured default project: a ``project_id`` decoded to null would silently land here."""
EPISODE_URI = "memory://projects/{p}/episodes/{e}"
SESSION_URI = "memory://projects/{p}/agents/{a}/sessions/{s}"
CHECKPOINT_URI = SESSION_URI + "/checkpoints/{c}"


class Refused(AssertionError):
    """A call that had to succeed answered an error."""


@dataclass
class Ids:
    """A fresh project and agent per probe, so that no probe sees another's data."""

    p: str = field(default_factory=lambda: str(uuid.uuid4()))
    a: str = field(default_factory=lambda: str(uuid.uuid4()))
    s: str = "s1"

    def scope(self, **overrides: Any) -> dict[str, Any]:
        return {"project_id": self.p, "agent_instance_id": self.a, "session_id": self.s, **overrides}


async def call(c: Client, tool: str, args: dict[str, Any]) -> tuple[str | None, Any]:
    """(None, structured result) for a success; (error code, error text) for a tool error."""
    result = await c.call_tool(tool, args)
    if not result.is_error:
        return None, result.structured_content
    first = result.content[0]
    text = first.text if isinstance(first, TextContent) else ""
    return text.partition(":")[0], text


async def ok(c: Client, tool: str, **args: Any) -> Any:
    code, body = await call(c, tool, args)
    if code is not None:
        raise Refused(f"{tool}({args!r}) answered {body}")
    return body


async def refused(c: Client, tool: str, expected: str, **args: Any) -> None:
    code, body = await call(c, tool, args)
    assert code == expected, f"{tool}({args!r}) must be {expected}, answered {body!r}"


async def read(c: Client, uri: str) -> Any:
    result = await c.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


async def spawn(c: Client, ids: Ids, **args: Any) -> None:
    await ok(c, "spawn", **ids.scope(**args))


async def episode(c: Client, ids: Ids, episode_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await read(c, EPISODE_URI.format(p=ids.p, e=episode_id))
    return body


# -- how to call each tool with valid arguments (what a probed argument replaces) ------------------------
@dataclass(frozen=True)
class Base:
    """Valid arguments for a tool; ``session``: spawn the session first; ``setup``: calls made before it."""

    args: Callable[[Ids], dict[str, Any]]
    session: bool = True
    setup: tuple[tuple[str, dict[str, Any]], ...] = ()


def _episode_args(ids: Ids) -> dict[str, Any]:
    return {
        "project_id": ids.p,
        "agent_instance_id": ids.a,
        "task_type": "t",
        "task_description": "d",
        "outcome": "success",
    }


BASES: dict[str, Base] = {
    "spawn": Base(lambda ids: ids.scope(), session=False),
    "pause": Base(lambda ids: ids.scope()),
    "resume": Base(lambda ids: ids.scope(), setup=(("pause", {}),)),
    "terminate": Base(lambda ids: ids.scope()),
    "list_checkpoints": Base(lambda ids: ids.scope()),
    "memory_set": Base(lambda ids: ids.scope(key="k", value=1)),
    "memory_get": Base(lambda ids: ids.scope(key="k"), setup=(("memory_set", {"key": "k", "value": 1}),)),
    "memory_delete": Base(lambda ids: ids.scope(key="k")),
    "memory_list": Base(lambda ids: ids.scope()),
    "record_episode": Base(_episode_args, session=False),
    "search_episodes": Base(lambda ids: {"project_id": ids.p, "query": "d"}, session=False),
    "memory_prompt": Base(lambda ids: ids.scope()),
    "list_sessions": Base(lambda ids: {"project_id": ids.p}, session=False),
    "delete_session": Base(lambda ids: ids.scope()),
    "delete_checkpoint": Base(lambda ids: ids.scope(checkpoint_id="c1"), setup=(("pause", {"checkpoint_id": "c1"}),)),
    "forget_episodes": Base(lambda ids: {"project_id": ids.p, "task_type": "t"}, session=False),
    "update_episode": Base(
        lambda ids: {"project_id": ids.p, "episode_id": str(uuid.uuid4()), "importance_score": 0.5}, session=False
    ),
}
UUID_ARGUMENTS = {"project_id", "agent_instance_id", "agent_type_id"}
"""Arguments whose rule is a UUID: published without ``format`` where the tool list is kept lean (the scope is
described once, in the server's instructions), so they are known by name here."""


async def prepared(c: Client, tool: str, ids: Ids) -> dict[str, Any]:
    """Make the state ``tool``'s base arguments need; the base arguments."""
    base = BASES[tool]
    if base.session:
        await spawn(c, ids)
    for setup_tool, extra in base.setup:
        await ok(c, setup_tool, **ids.scope(**extra))
    return base.args(ids)


# -- read-backs: per (tool, argument), send ``text`` and check where the tool stores or uses it -------------
Probe = Callable[[Client, Ids, str], Awaitable[None]]


async def session_named(c: Client, tool: str, ids: Ids, text: str) -> None:
    """The tool works on the session whose id is ``text`` (or refuses a text that is not an identifier)."""
    if tool == "spawn":
        if not IDENTIFIER.fullmatch(text):
            await refused(c, "spawn", "invalid_argument", **ids.scope(session_id=text))
            return
        await spawn(c, ids, session_id=text, initial_state={"k": 1})
        assert (await ok(c, "memory_list", **ids.scope(session_id=text)))["keys"] == ["k"]
        return
    args = await prepared(c, tool, Ids(ids.p, ids.a, text)) if IDENTIFIER.fullmatch(text) else BASES[tool].args(ids)
    if IDENTIFIER.fullmatch(text):
        await ok(c, tool, **args)
    else:
        await refused(c, tool, "invalid_argument", **{**args, "session_id": text})


async def pause_checkpoint_id(c: Client, ids: Ids, text: str) -> None:
    await spawn(c, ids)
    if IDENTIFIER.fullmatch(text):
        assert (await ok(c, "pause", **ids.scope(checkpoint_id=text)))["checkpoint_id"] == text
        listed = (await ok(c, "list_checkpoints", **ids.scope()))["checkpoints"]
        assert [cp["checkpoint_id"] for cp in listed] == [text]
    else:
        await refused(c, "pause", "invalid_argument", **ids.scope(checkpoint_id=text))
        assert (await ok(c, "list_checkpoints", **ids.scope()))["checkpoints"] == []


async def pause_label(c: Client, ids: Ids, text: str) -> None:
    await spawn(c, ids)
    await ok(c, "pause", **ids.scope(label=text))
    assert [cp["label"] for cp in (await ok(c, "list_checkpoints", **ids.scope()))["checkpoints"]] == [text]


async def resume_checkpoint_id(c: Client, ids: Ids, text: str) -> None:
    """An id that names no checkpoint is not_found (never "the newest"), and working memory is untouched."""
    await spawn(c, ids, initial_state={"k": "paused"})
    await ok(c, "pause", **ids.scope())
    await ok(c, "memory_set", **ids.scope(key="k", value="after"))
    expected = "not_found" if IDENTIFIER.fullmatch(text) else "invalid_argument"
    await refused(c, "resume", expected, **ids.scope(checkpoint_id=text))
    assert (await ok(c, "memory_get", **ids.scope(key="k")))["value"] == "after"


async def terminate_task_description(c: Client, ids: Ids, text: str) -> None:
    await spawn(c, ids)
    result = await ok(c, "terminate", **ids.scope(task_description=text))
    assert (await episode(c, ids, result["episode_id"]))["task_description"] == text


async def list_checkpoints_before(c: Client, ids: Ids, text: str) -> None:
    """A ``before`` that names no checkpoint is not_found: never "no filter"."""
    await spawn(c, ids)
    await ok(c, "pause", **ids.scope())
    expected = "not_found" if IDENTIFIER.fullmatch(text) else "invalid_argument"
    await refused(c, "list_checkpoints", expected, **ids.scope(before=text))


async def memory_set_key(c: Client, ids: Ids, text: str) -> None:
    await spawn(c, ids)
    await ok(c, "memory_set", **ids.scope(key=text, value=1))
    assert (await ok(c, "memory_list", **ids.scope()))["keys"] == [text]
    assert (await ok(c, "memory_get", **ids.scope(key=text)))["value"] == 1


async def memory_set_value(c: Client, ids: Ids, text: str) -> None:
    """The string stays a string: in memory_get, in the session resource, and through pause and resume."""
    await spawn(c, ids)
    await ok(c, "memory_set", **ids.scope(key="k", value=text))
    assert (await ok(c, "memory_get", **ids.scope(key="k")))["value"] == text
    session = await read(c, SESSION_URI.format(p=ids.p, a=ids.a, s=ids.s))
    assert session["working_memory"] == {"k": text}
    await ok(c, "pause", **ids.scope())
    await ok(c, "memory_set", **ids.scope(key="k", value=0))
    await ok(c, "resume", **ids.scope())
    assert (await ok(c, "memory_get", **ids.scope(key="k")))["value"] == text


async def memory_get_key(c: Client, ids: Ids, text: str) -> None:
    await spawn(c, ids)
    await ok(c, "memory_set", **ids.scope(key=text, value="v"))
    assert await ok(c, "memory_get", **ids.scope(key=text)) == {"key": text, "value": "v"}


async def memory_delete_key(c: Client, ids: Ids, text: str) -> None:
    await spawn(c, ids, initial_state={text: 1, "other": 2})
    assert (await ok(c, "memory_delete", **ids.scope(key=text)))["deleted"] is True
    assert (await ok(c, "memory_list", **ids.scope()))["keys"] == ["other"]


async def memory_list_prefix(c: Client, ids: Ids, text: str) -> None:
    await spawn(c, ids, initial_state={text + "1": 1, "~other": 2})
    assert (await ok(c, "memory_list", **ids.scope(prefix=text)))["keys"] == [text + "1"]


def record_episode_field(name: str) -> Probe:
    async def probe(c: Client, ids: Ids, text: str) -> None:
        result = await ok(c, "record_episode", **{**_episode_args(ids), name: text})
        assert (await episode(c, ids, result["episode_id"]))[name] == text

    return probe


async def record_episode_session_id(c: Client, ids: Ids, text: str) -> None:
    if not IDENTIFIER.fullmatch(text):
        await refused(c, "record_episode", "invalid_argument", **_episode_args(ids), session_id=text)
        return
    result = await ok(c, "record_episode", **_episode_args(ids), session_id=text)
    assert (await episode(c, ids, result["episode_id"]))["session_id"] == text


async def search_episodes_query(c: Client, ids: Ids, text: str) -> None:
    await ok(c, "record_episode", **{**_episode_args(ids), "task_description": f"alpha {text}"})
    hits = (await ok(c, "search_episodes", project_id=ids.p, query=text))["episodes"]
    assert all(h["task_description"] == f"alpha {text}" for h in hits)


async def search_episodes_task_type(c: Client, ids: Ids, text: str) -> None:
    """The filter applies to exactly that task type: never dropped."""
    await ok(c, "record_episode", **{**_episode_args(ids), "task_type": text, "task_description": "alpha one"})
    await ok(c, "record_episode", **{**_episode_args(ids), "task_type": "other", "task_description": "alpha two"})
    hits = (await ok(c, "search_episodes", project_id=ids.p, query="alpha", task_type=text))["episodes"]
    assert [h["task_type"] for h in hits] == [text]


async def terminate_task_type(c: Client, ids: Ids, text: str) -> None:
    await spawn(c, ids)
    result = await ok(c, "terminate", **ids.scope(task_type=text))
    assert (await episode(c, ids, result["episode_id"]))["task_type"] == text


async def search_episodes_since(c: Client, ids: Ids, text: str) -> None:
    """None of the samples is a date: refused, never "no filter"."""
    await refused(c, "search_episodes", "invalid_argument", project_id=ids.p, query="d", since=text)


async def memory_prompt_task(c: Client, ids: Ids, text: str) -> None:
    """The briefing is about exactly that task: its heading carries the text as sent."""
    await spawn(c, ids)
    briefing = await ok(c, "memory_prompt", **ids.scope(task=text))
    assert briefing["text"].splitlines()[0] == f"# Briefing: {text}", briefing["text"][:200]


async def list_sessions_before(c: Client, ids: Ids, text: str) -> None:
    """None of the samples is a cursor: refused, never "the first page"."""
    await spawn(c, ids)
    await refused(c, "list_sessions", "invalid_argument", project_id=ids.p, before=text)


async def delete_checkpoint_id(c: Client, ids: Ids, text: str) -> None:
    """The checkpoint named ``text`` goes (and no other); a text that is no identifier is refused."""
    await spawn(c, ids)
    await ok(c, "pause", **ids.scope(checkpoint_id="other"))
    if IDENTIFIER.fullmatch(text):
        await ok(c, "pause", **ids.scope(checkpoint_id=text))
        assert (await ok(c, "delete_checkpoint", **ids.scope(checkpoint_id=text)))["checkpoint_id"] == text
    else:
        await refused(c, "delete_checkpoint", "invalid_argument", **ids.scope(checkpoint_id=text))
    listed = (await ok(c, "list_checkpoints", **ids.scope()))["checkpoints"]
    assert [cp["checkpoint_id"] for cp in listed] == ["other"]


async def forget_episodes_task_type(c: Client, ids: Ids, text: str) -> None:
    """The filter forgets exactly that task type's episodes."""
    kept = await ok(c, "record_episode", **{**_episode_args(ids), "task_type": "other"})
    gone = await ok(c, "record_episode", **{**_episode_args(ids), "task_type": text})
    assert await ok(c, "forget_episodes", project_id=ids.p, task_type=text, confirm=True) == {"forgotten": 1}
    assert (await episode(c, ids, kept["episode_id"]))["task_type"] == "other"
    await refused_read(c, EPISODE_URI.format(p=ids.p, e=gone["episode_id"]))


async def forget_episodes_session_id(c: Client, ids: Ids, text: str) -> None:
    if not IDENTIFIER.fullmatch(text):
        await refused(c, "forget_episodes", "invalid_argument", project_id=ids.p, session_id=text)
        return
    await ok(c, "record_episode", **_episode_args(ids), session_id=text)
    await ok(c, "record_episode", **_episode_args(ids), session_id="other")
    assert await ok(c, "forget_episodes", project_id=ids.p, session_id=text) == {"forgotten": 0, "would_forget": 1}


async def forget_episodes_before(c: Client, ids: Ids, text: str) -> None:
    """None of the samples is a date: refused, never "no filter" (which would forget everything)."""
    eid = (await ok(c, "record_episode", **_episode_args(ids)))["episode_id"]
    await refused(c, "forget_episodes", "invalid_argument", project_id=ids.p, before=text, confirm=True)
    assert (await episode(c, ids, eid))["episode_id"] == eid


async def update_episode_outcome_details(c: Client, ids: Ids, text: str) -> None:
    eid = (await ok(c, "record_episode", **_episode_args(ids)))["episode_id"]
    await ok(c, "update_episode", project_id=ids.p, episode_id=eid, outcome_details=text)
    assert (await episode(c, ids, eid))["outcome_details"] == text


async def update_episode_episode_id(c: Client, ids: Ids, text: str) -> None:
    """None of the samples is an episode id: refused, nothing changed."""
    eid = (await ok(c, "record_episode", **_episode_args(ids)))["episode_id"]
    await refused(c, "update_episode", "invalid_argument", project_id=ids.p, episode_id=text, importance_score=0.9)
    assert (await episode(c, ids, eid))["importance_score"] == 0.5


async def refused_read(c: Client, uri: str) -> None:
    try:
        await c.read_resource(uri)
    except Exception:
        return
    raise AssertionError(f"{uri} is still readable")


PROBES: dict[tuple[str, str], Probe] = {
    ("delete_checkpoint", "checkpoint_id"): delete_checkpoint_id,
    ("forget_episodes", "task_type"): forget_episodes_task_type,
    ("forget_episodes", "session_id"): forget_episodes_session_id,
    ("forget_episodes", "before"): forget_episodes_before,
    ("update_episode", "outcome_details"): update_episode_outcome_details,
    ("update_episode", "episode_id"): update_episode_episode_id,
    ("pause", "checkpoint_id"): pause_checkpoint_id,
    ("pause", "label"): pause_label,
    ("resume", "checkpoint_id"): resume_checkpoint_id,
    ("terminate", "task_description"): terminate_task_description,
    ("list_checkpoints", "before"): list_checkpoints_before,
    ("memory_set", "key"): memory_set_key,
    ("memory_set", "value"): memory_set_value,
    ("memory_get", "key"): memory_get_key,
    ("memory_delete", "key"): memory_delete_key,
    ("memory_list", "prefix"): memory_list_prefix,
    ("record_episode", "task_type"): record_episode_field("task_type"),
    ("record_episode", "task_description"): record_episode_field("task_description"),
    ("record_episode", "outcome_details"): record_episode_field("outcome_details"),
    ("record_episode", "session_id"): record_episode_session_id,
    ("search_episodes", "query"): search_episodes_query,
    ("search_episodes", "task_type"): search_episodes_task_type,
    ("search_episodes", "since"): search_episodes_since,
    ("terminate", "task_type"): terminate_task_type,
    ("memory_prompt", "task"): memory_prompt_task,
    ("list_sessions", "before"): list_sessions_before,
}


def string_schema(prop: dict[str, Any]) -> dict[str, Any] | None:
    """The schema a string sent for this property is checked against; None if it accepts no string.
    A property without a type (``value``: any JSON) accepts strings."""
    outer = {k: v for k, v in prop.items() if k != "anyOf"}
    members = prop.get("anyOf", [prop])
    if not any("type" in m or "enum" in m for m in members):
        return outer
    for member in members:
        kind = member.get("type")
        if kind == "string" or (isinstance(kind, list) and "string" in kind):
            return {**outer, **member}
    return None


async def uuid_or_enum(c: Client, tool: str, arg: str, ids: Ids, text: str) -> None:
    """A text that is no UUID or no allowed value is invalid_argument (never null, never the default), and
    nothing is written."""
    args = await prepared(c, tool, ids)
    await refused(c, tool, "invalid_argument", **{**args, arg: text})
    if tool == "spawn":
        await ok(c, "spawn", **args)  # the refused spawn made no session


async def string_arguments(c: Client) -> list[tuple[str, str, dict[str, Any]]]:
    """(tool, argument, string schema) for every argument of every tool that accepts a string."""
    found = []
    for tool in (await c.list_tools()).tools:
        for arg, prop in tool.input_schema.get("properties", {}).items():
            schema = string_schema(prop)
            if schema is not None:
                found.append((tool.name, arg, schema))
    return found


async def check_every_string_argument(c: Client) -> None:
    arguments = await string_arguments(c)
    assert len(arguments) > 30, arguments  # the derivation found the arguments (a schema change would show here)
    failures: list[str] = []
    for tool, arg, schema in arguments:
        if tool not in BASES:
            failures.append(f"tool {tool}: add its valid base arguments to BASES")
            continue
        for text in SAMPLES:
            ids = Ids()
            try:
                if arg in UUID_ARGUMENTS or schema.get("format") == "uuid" or "enum" in schema:
                    await uuid_or_enum(c, tool, arg, ids, text)
                elif arg == "session_id" and (tool, arg) not in PROBES:
                    await session_named(c, tool, ids, text)
                elif (tool, arg) in PROBES:
                    await PROBES[(tool, arg)](c, ids, text)
                else:
                    failures.append(f"{tool}.{arg}: add a read-back to PROBES")
                    break
            except AssertionError as exc:
                failures.append(f"{tool}.{arg}={text!r}: {exc}")
    assert not failures, "\n".join(failures)


async def check_json_values_that_are_strings(c: Client) -> None:
    """Strings inside JSON values (initial_state, memory_set values, metadata) stay strings, whatever they look like."""
    for text in SAMPLES:
        ids = Ids()
        nested = {"s": text, "list": [text], "obj": {"inner": text}}
        await spawn(c, ids, initial_state={"k": text, "n": nested}, metadata={"m": text})
        assert (await ok(c, "memory_get", **ids.scope(key="k")))["value"] == text
        assert (await ok(c, "memory_get", **ids.scope(key="n")))["value"] == nested
        await ok(c, "memory_set", **ids.scope(key="v", value=nested))
        assert (await ok(c, "memory_get", **ids.scope(key="v")))["value"] == nested
        cp = (await ok(c, "pause", **ids.scope(metadata={"m": text, "n": nested})))["checkpoint_id"]
        checkpoint = await read(c, CHECKPOINT_URI.format(p=ids.p, a=ids.a, s=ids.s, c=cp))
        assert checkpoint["state"]["k"] == text and checkpoint["state"]["n"] == nested
        assert checkpoint["metadata"] == {"m": text, "n": nested}
        result = await ok(c, "record_episode", **_episode_args(ids), metadata={"m": text, "n": nested})
        assert (await episode(c, ids, result["episode_id"]))["metadata"] == {"m": text, "n": nested}


@asynccontextmanager
async def stdio_client(tmp_path: Path) -> AsyncIterator[Client]:
    env = stdio_helpers.server_env(tmp_path, MCP_MEMORY_PROJECT_ID=DEFAULT_PROJECT)
    async with stdio_helpers.Session(env) as session:
        yield session.client


@asynccontextmanager
async def http_client(tmp_path: Path) -> AsyncIterator[Client]:
    env = http_helpers.server_env(tmp_path / "memory.db", MCP_MEMORY_PROJECT_ID=DEFAULT_PROJECT)
    with http_helpers.ServerProcess(env) as server:
        async with http_helpers.connect(server.url, None) as client:
            yield client


CLIENTS = {"stdio": stdio_client, "http": http_client}


@pytest.mark.parametrize("transport", sorted(CLIENTS))
async def test_json_looking_strings_arrive_unchanged_in_every_string_argument(tmp_path: Path, transport: str) -> None:
    async with CLIENTS[transport](tmp_path) as client:
        await check_every_string_argument(client)


@pytest.mark.parametrize("transport", sorted(CLIENTS))
async def test_json_values_that_are_strings_round_trip_as_strings(tmp_path: Path, transport: str) -> None:
    async with CLIENTS[transport](tmp_path) as client:
        await check_json_values_that_are_strings(client)
