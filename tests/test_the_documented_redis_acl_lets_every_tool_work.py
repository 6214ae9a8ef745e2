"""The Redis ACL that docs/configuration.md gives for the server's user is enough for everything the server does
in Redis: every MCP tool (the owner tools included), the operator's ``forget`` (which finds a project's sessions
by ``SCAN``), an export and an import, the start-up / ``doctor`` check and ``/readyz``'s probe. The ACL is read
from the docs (and config/redis.conf must list the same rules), so the documented ACL is the one tested: they
cannot drift apart.

The user is made on the shared Redis under a name of its own, with the key pattern moved to the test's key
prefix, and deleted afterwards."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.errors import Unavailable
from mcp_memory.models import Scope, SessionStatus
from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.http_helpers import ok
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KEYS = "~mcpmem:*"  # the documented key pattern: the default redis_key_prefix, "mcpmem"


def documented_acl() -> list[str]:
    """The ACL rules of docs/configuration.md's Redis section (the fenced block after ``ACL SETUSER``)."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    found = re.search(r"`ACL SETUSER mcp on >password`.*?```\n(.*?)\n```", text, re.DOTALL)
    assert found, "docs/configuration.md gives the ACL user's rules in a fenced block after `ACL SETUSER ...`"
    return found.group(1).split()


def redis_conf_acl() -> list[str]:
    """The same rules as config/redis.conf's comment lists them (``#   ACL SETUSER mcp on >password ...``)."""
    lines = (ROOT / "config" / "redis.conf").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#   ACL SETUSER mcp on >password"))
    words: list[str] = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        words += line.removeprefix("#").split()
    assert words[:4] == ["ACL", "SETUSER", "mcp", "on"] and words[4] == ">password"
    return words[5:]


def url_of(user: str, password: str) -> str:
    """The shared Redis's URL, logged in as ``user``."""
    parts = urlsplit(shared_redis_url())
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 6379}"))


@pytest.fixture
def acl_user() -> Iterator[tuple[str, list[str], str]]:
    """``(url, rules, key prefix)``: a user made with ``rules`` (set by the test), deleted afterwards with its keys."""
    name, password, prefix = f"mcp-acl-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex, unique_prefix()
    rules: list[str] = []
    admin = redis.Redis.from_url(shared_redis_url())
    try:
        yield url_of(name, password), rules, prefix
    finally:
        admin.execute_command("ACL", "DELUSER", name)
        admin.close()
        delete_keys(shared_redis_url(), prefix)


def make_user(url: str, rules: list[str]) -> None:
    parts = urlsplit(url)
    admin = redis.Redis.from_url(shared_redis_url())
    try:
        admin.execute_command("ACL", "SETUSER", parts.username, "reset", "on", f">{parts.password}", *rules)
    finally:
        admin.close()


def test_redis_conf_lists_the_documented_acl() -> None:
    assert redis_conf_acl() == documented_acl()
    assert DEFAULT_KEYS in documented_acl()


async def test_the_documented_acl_lets_every_tool_forget_and_transfer_work(
    acl_user: tuple[str, list[str], str], db_url: str, tmp_path: Path
) -> None:
    url, _, prefix = acl_user
    rules = [f"~{prefix}:*" if rule == DEFAULT_KEYS else rule for rule in documented_acl()]
    make_user(url, rules)
    settings = Settings(database_url=db_url, redis_url=url, redis_key_prefix=prefix, owner_tools=True)
    project, agent = str(uuid.uuid4()), str(uuid.uuid4())
    scope = {"project_id": project, "agent_instance_id": agent}
    s1, s2 = {**scope, "session_id": "s1"}, {**scope, "session_id": "s2"}
    app = create_server(settings)
    called: set[str] = set()

    async def call(tool: str, **arguments: Any) -> dict[str, Any]:
        called.add(tool)
        return await ok(client, tool, **arguments)

    async with Client(app) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        await call("spawn", **s1, initial_state={"goal": "ship", "step": 1})
        await call("memory_set", **s1, key="step", value=2)
        await call("memory_set", **s1, key="brief", value=1, ttl_seconds=60)
        assert (await call("memory_get", **s1, key="step"))["value"] == 2
        assert (await call("memory_list", **s1))["keys"] == ["brief", "goal", "step"]
        await call("memory_delete", **s1, key="brief")
        first = await call("pause", **s1, label="one")
        await call("pause", **s1, label="two")
        await call("list_checkpoints", **s1)
        await call("delete_checkpoint", **s1, checkpoint_id=first["checkpoint_id"])
        await call("memory_set", **s1, key="step", value=3)
        await call("resume", **s1)
        assert (await call("memory_get", **s1, key="step"))["value"] == 2
        await call("list_sessions", **scope)
        await call("memory_prompt", **s1, task="ship it")
        ended = await call("terminate", **s1, task_description="shipping")
        await call("record_episode", **scope, task_type="t", task_description="another", outcome="success")
        await call("search_episodes", **scope, query="shipping")
        await call("update_episode", project_id=project, episode_id=ended["episode_id"], importance_score=0.9)
        await call("forget_episodes", project_id=project, task_type="t", confirm=True)
        await call("spawn", **s2, initial_state={"a": 1})
        await call("delete_session", **s2)
        assert called == listed, f"tools this test does not call: {sorted(listed - called)}"

        rt = app.runtime
        assert rt.transfer is not None
        live = {**scope, "session_id": "live"}
        await call("spawn", **live, initial_state={"b": 2})
        path = await export_to(rt, Selection(uuid.UUID(project)), tmp_path / "acl.jsonl")
        copy = uuid.uuid4()
        await rt.transfer.import_file(path, as_project=copy)  # staged in Redis, switched in by RENAME
        copied = {"project_id": str(copy), "agent_instance_id": agent, "session_id": "live"}
        assert (await call("memory_get", **copied, key="b"))["value"] == 2

        # The operator's forget finds the project's sessions in Redis by SCAN.
        assert (await rt.control.forget(copy, None, None, True))["redis_sessions"] == 1
        assert (await rt.control.forget(copy, None, None, False))["redis_sessions"] == 1
        # "live", and what Redis keeps of the terminated s1 for a while.
        assert (await rt.control.forget(uuid.UUID(project), None, None, False))["redis_sessions"] >= 1
        assert (await rt.control.forget(uuid.UUID(project), None, None, True))["redis_sessions"] == 0

        report = (await rt.check())["working"]
        assert report["reachable"] is True and report["maxmemory_policy"] is not None
        assert (await rt.probe(5.0))["working"] == {"reachable": True}  # /readyz's PING


async def test_an_acl_without_the_scripts_commands_is_unavailable_not_a_crash(
    acl_user: tuple[str, list[str], str], db_url: str
) -> None:
    url, _, prefix = acl_user
    make_user(url, [f"~{prefix}:*", "+evalsha", "+eval", "+script|load"])
    async with MemoryRuntime(Settings(database_url=db_url, redis_url=url, redis_key_prefix=prefix)) as rt:
        with pytest.raises(Unavailable, match="ACL"):
            await rt.lifecycle.spawn(str(uuid.uuid4()), str(uuid.uuid4()), "s1", initial_state={"a": 1})


async def test_an_acl_written_before_time_was_needed_still_pauses_and_resumes(
    acl_user: tuple[str, list[str], str], db_url: str
) -> None:
    """An earlier release's ACL lacks ``+time``, which ordering a session's transitions asks for: pause and resume
    go on without an order (the status is set as before orders existed) instead of failing after an upgrade."""
    url, _, prefix = acl_user
    rules = [f"~{prefix}:*" if rule == DEFAULT_KEYS else rule for rule in documented_acl() if rule != "+time"]
    make_user(url, rules)
    ids = (str(uuid.uuid4()), str(uuid.uuid4()), "s1")
    scope = Scope.parse(*ids)
    async with MemoryRuntime(Settings(database_url=db_url, redis_url=url, redis_key_prefix=prefix)) as rt:
        await rt.lifecycle.spawn(*ids, initial_state={"a": 1})
        await rt.lifecycle.pause(*ids)
        assert (await rt.lifecycle.session(scope)).status == SessionStatus.PAUSED
        await rt.lifecycle.resume(*ids)
        assert (await rt.lifecycle.session(scope)).status == SessionStatus.RUNNING
        await rt.lifecycle.pause(*ids)
        assert (await rt.lifecycle.session(scope)).status == SessionStatus.PAUSED
