"""``completion/complete``: stored ids for template and prompt arguments, prefix-matched, bounded (100, with total
and hasMore), narrowed by the arguments already given, within the token's grant; anything unknown answers an empty
list, never an error. Through the SDK's in-process client."""

from __future__ import annotations

import logging
import uuid

import pytest
from mcp import Client
from mcp_types import Completion, PromptReference, ResourceTemplateReference

from mcp_memory.server.app import MemoryServer
from mcp_memory.server.auth import Grant
from tests.conftest import FakeClock
from tests.http_helpers import ok

pytestmark = pytest.mark.anyio

SESSION = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}"
CHECKPOINT = SESSION + "/checkpoints/{checkpoint_id}"
EPISODE = "memory://projects/{project_id}/episodes/{episode_id}"


async def complete(client: Client, template: str, name: str, value: str, **given: str) -> Completion:
    ref = ResourceTemplateReference(type="ref/resource", uri=template)
    return (await client.complete(ref, {"name": name, "value": value}, given or None)).completion


@pytest.mark.backends("sqlite", "postgres")
async def test_session_ids_complete_by_prefix_newest_first_within_the_given_agent(
    client: Client, clock: FakeClock
) -> None:
    p, a, b = (str(uuid.uuid4()) for _ in range(3))
    for agent, sid in ((a, "fix-login"), (a, "fix-logout"), (b, "fix-other"), (a, "feature")):
        await ok(client, "spawn", project_id=p, agent_instance_id=agent, session_id=sid)
        clock.advance(1)
    got = await complete(client, SESSION, "session_id", "fix", project_id=p, agent_instance_id=a)
    assert got.values == ["fix-logout", "fix-login"] and got.total == 2 and got.has_more is False
    got = await complete(client, SESSION, "session_id", "fix", project_id=p)
    assert got.values == ["fix-other", "fix-logout", "fix-login"]
    assert (await complete(client, SESSION, "session_id", "FIX", project_id=p)).values == []  # exact characters
    agents = await complete(client, SESSION, "agent_instance_id", a[:4], project_id=p)
    assert a in agents.values
    assert p in (await complete(client, SESSION, "project_id", p[:6])).values


@pytest.mark.backends("sqlite", "postgres")
async def test_checkpoint_and_episode_ids_complete_within_their_session_and_project(client: Client) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="s")
    await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="t")
    await ok(client, "pause", project_id=p, agent_instance_id=a, session_id="s", checkpoint_id="cp-1")
    await ok(client, "pause", project_id=p, agent_instance_id=a, session_id="t", checkpoint_id="cp-other")
    got = await complete(client, CHECKPOINT, "checkpoint_id", "cp", project_id=p, agent_instance_id=a, session_id="s")
    assert got.values == ["cp-1"]
    # Without the session to narrow it, a checkpoint id names nothing.
    assert (await complete(client, CHECKPOINT, "checkpoint_id", "", project_id=p, agent_instance_id=a)).values == []
    episode = (await ok(client, "terminate", project_id=p, agent_instance_id=a, session_id="s"))["episode_id"]
    assert (await complete(client, EPISODE, "episode_id", episode[:3], project_id=p)).values == [episode]


async def test_completions_are_bounded_to_100_with_total_and_has_more(client: Client) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    for i in range(130):
        await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id=f"s{i:03d}")
    got = await complete(client, SESSION, "session_id", "s", project_id=p, agent_instance_id=a)
    assert len(got.values) == 100 and got.total == 130 and got.has_more is True
    got = await complete(client, SESSION, "session_id", "s12", project_id=p, agent_instance_id=a)
    assert sorted(got.values) == [f"s{i}" for i in range(120, 130)] and got.has_more is False


async def test_unknown_references_and_arguments_complete_to_an_empty_list(client: Client) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="s")
    prompt = PromptReference(type="ref/prompt", name="test_prompt_with_arguments")
    assert (await client.complete(prompt, {"name": "arg1", "value": "par"})).completion.values == []
    assert (await complete(client, "memory://nothing/{session_id}", "session_id", "", project_id=p)).values == []
    assert (await complete(client, SESSION, "colour", "", project_id=p)).values == []
    assert (await complete(client, SESSION, "session_id", "", project_id="not-a-uuid")).values == []
    assert (await complete(client, SESSION, "session_id", "", project_id=p, agent_instance_id="x")).values == []
    assert (await complete(client, SESSION, "session_id", "")).values == []  # no project given, none configured
    caps = client.server_capabilities
    assert caps.completions is not None


async def test_completions_never_leave_the_tokens_projects(server: MemoryServer, client: Client) -> None:
    p, mine, a = (str(uuid.uuid4()) for _ in range(3))
    await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="secret")
    await ok(client, "spawn", project_id=mine, agent_instance_id=a, session_id="mine")
    server.grants.fallback = Grant("mine-only", frozenset({uuid.UUID(mine)}))
    async with Client(server, mode="legacy") as restricted:
        assert (await complete(restricted, SESSION, "session_id", "", project_id=p)).values == []
        assert (await complete(restricted, SESSION, "agent_instance_id", "", project_id=p)).values == []
        assert (await complete(restricted, SESSION, "session_id", "", project_id=mine)).values == ["mine"]
        assert (await complete(restricted, SESSION, "project_id", "")).values == [mine]


@pytest.mark.backends("sqlite", "postgres")
async def test_a_non_ascii_prefix_completes_by_characters_and_one_no_store_holds_is_empty_without_a_warning(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Prefixes are matched by the database's own count of characters (Postgres ``starts_with``, SQLite
    ``substr`` by ``length``), not Python's: a prefix of non-ASCII characters, astral ones included, matches no id
    (ids are ASCII) and the ASCII prefix before it still does. A prefix no store can hold (a NUL character, a lone
    surrogate) answers empty as the caller's mistake, not as a store's failure logged as a warning."""
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="s-1")
    await ok(client, "pause", project_id=p, agent_instance_id=a, session_id="s-1", checkpoint_id="cp-1")
    scope = {"project_id": p, "agent_instance_id": a}
    assert (await complete(client, SESSION, "session_id", "s-", **scope)).values == ["s-1"]
    for prefix in ("é", "s-é", "s-\U0001f600", "s-1\u0301", "\U0001f600"):
        assert (await complete(client, SESSION, "session_id", prefix, **scope)).values == [], prefix
        got = await complete(client, CHECKPOINT, "checkpoint_id", prefix, **scope, session_id="s-1")
        assert got.values == [], prefix
        assert (await complete(client, SESSION, "project_id", prefix)).values == [], prefix
        assert (await complete(client, SESSION, "agent_instance_id", prefix, project_id=p)).values == [], prefix
        assert (await complete(client, EPISODE, "episode_id", prefix, project_id=p)).values == [], prefix
    caplog.clear()
    for prefix in ("s-\x00", "s-\ud800"):
        assert (await complete(client, SESSION, "session_id", prefix, **scope)).values == [], repr(prefix)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
