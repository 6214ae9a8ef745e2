"""A terminate whose server stops between its durable record and the end of its job (marking working memory terminated
and clearing it, running the terminate hooks, then marking the record finished: services/terminate_lease.py) leaves
that job to the next call. A retry within the dead call's lease answers as a repeat (that call may still be at work on
another server), leaves the hooks to it and tells its own subscribers of the change; a retry past the lease runs the
hooks the dead call never ran, once, with that call's metadata, and a later one repeats and tells nobody.

Before, a retry within the lease cleared working memory and answered as a repeat, so that a retry past the lease,
finding nothing left to clear, took the job for done: the hooks never ran. Server A stops at its clear (held back), or
in its hooks (one of them never returns), or a real ``mcp-memory serve`` exits at a fault point (``terminate.recorded``
before the clear, ``terminate.closed`` after it) and a server whose clock is past the lease retries. On every pair of
stores (one SQL store; Redis with SQLite or Postgres).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import pytest
import redis
from mcp import Client, StdioServerParameters

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.models import LifecycleEvent, LifecycleResult, Scope
from mcp_memory.server import create_server
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.http_helpers import Inbox, ok
from tests.redis_servers import shared_redis_url
from tests.store_settings import settings_for
from tests.waiting import until

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")]

EXE = Path(sys.executable).parent / "mcp-memory"
UPDATED = "notifications/resources/updated"


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


def recording(rt: MemoryRuntime) -> list[LifecycleEvent]:
    """The terminate hook events of ``rt``, in the order they ran."""
    seen: list[LifecycleEvent] = []

    async def on_terminate(event: LifecycleEvent) -> None:
        seen.append(event)

    rt.lifecycle.hooks.on_terminate(on_terminate)
    return seen


def stop_before_its_clear(rt: MemoryRuntime) -> anyio.Event:
    """``rt``'s terminate never sends its clear (a server that stopped just after its record); set once it got there."""
    reached = anyio.Event()

    async def stuck(*args: Any, **kwargs: Any) -> int:
        reached.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    rt.working_store.mark_terminated = stuck  # type: ignore[method-assign]
    return reached


async def stop_in_its_hooks(rt: MemoryRuntime) -> anyio.Event:
    """A terminate hook of ``rt`` that never returns (a server that stopped in its hooks); set once it began."""
    began = anyio.Event()

    async def stuck(event: LifecycleEvent) -> None:
        began.set()
        await anyio.sleep_forever()

    rt.lifecycle.hooks.on_terminate(stuck)
    return began


@pytest.mark.parametrize("stops", ["before its clear", "in its hooks"])
async def test_a_retry_past_the_lease_of_a_stopped_terminate_runs_its_hooks_once(
    settings_on_every_store: Settings, clock: FakeClock, stops: str
) -> None:
    scope = new_scope()
    # Server A's stuck hook is cut off by the test, never by the hook timeout.
    a_settings = settings_on_every_store.model_copy(update={"hook_timeout_seconds": 3600.0})
    async with (
        MemoryRuntime(a_settings, clock=clock) as a,
        MemoryRuntime(settings_on_every_store, clock=clock) as b,
    ):
        stopped = stop_before_its_clear(a) if stops == "before its clear" else await stop_in_its_hooks(a)
        ran_on_a = recording(a)  # (after the stuck one)
        hooked = recording(b)
        await a.lifecycle.spawn(*ids(scope), initial_state={"k": 1, "j": 2})
        answers: list[LifecycleResult] = []

        async def first() -> None:
            await a.lifecycle.terminate(*ids(scope), task_description="the task", metadata={"run": 7})

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            with anyio.fail_after(10):
                await stopped.wait()
            # Within A's lease: A's answer, nothing recorded, no hook run (A may be at work), working memory cleared.
            answers.append(await b.lifecycle.terminate(*ids(scope), metadata={"run": 8}))
            assert answers[0].repeat and answers[0].data["items_cleared"] == 2
            assert hooked == [] and await b.working.list_keys(scope) == []

            clock.advance(b.settings.terminate_lease_seconds + 1)
            answers.append(await b.lifecycle.terminate(*ids(scope), metadata={"run": 8}))
            # A never finishes: this retry ran its hooks, with A's metadata, and answered as A would have.
            assert [(e.episode_id, e.metadata) for e in hooked] == [(UUID(answers[0].data["episode_id"]), {"run": 7})]
            assert not answers[1].repeat and answers[1].data == answers[0].data

            answers.append(await b.lifecycle.terminate(*ids(scope)))
            tg.cancel_scope.cancel()  # A's call is cut off at last
        assert answers[2].repeat and answers[2].data == answers[0].data
        assert [a.unfinished for a in answers] == [True, False, False]  # only the first is announced as a change
        assert len(hooked) == 1 and ran_on_a == []
        events = [e.outcome for e in await b.store.list_events(scope, 100) if e.event_type == "terminate"]
        assert events == ["ok"]
        assert not (await b.lifecycle.terminate(*ids(scope))).unfinished


async def test_the_repeat_of_an_unfinished_terminate_is_announced_and_a_finished_ones_is_not(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    """Through server B's tools: B's subscribers are told of the episode by B's retries until the job is done (A's
    server may have died before it told anyone); not by a repeat after."""
    scope = new_scope()
    async with MemoryRuntime(settings_on_every_store, clock=clock) as a:
        b = MemoryRuntime(settings_on_every_store, clock=clock)
        inbox = Inbox()
        async with Client(create_server(runtime=b), mode="legacy", message_handler=inbox) as client:
            hooked = recording(b)
            args = {"project_id": str(scope.project_id), "agent_instance_id": str(scope.agent_instance_id)}
            await ok(client, "spawn", **args, session_id=scope.session_id, initial_state={"k": 1})
            episodes = f"memory://projects/{scope.project_id}/episodes"
            marker = f"memory://projects/{scope.project_id}/agents/{scope.agent_instance_id}/sessions/marker"
            for uri in (episodes, marker):
                await client.subscribe_resource(uri)
            await ok(client, "spawn", **args, session_id="marker")
            stopped = stop_before_its_clear(a)

            async def terminate_announcing() -> tuple[dict[str, Any], list[str]]:
                """B's answer to a terminate, and what B's tools told the subscriber after it, up to a marker write
                that follows it."""
                seen = len(inbox.received)
                answer = await ok(client, "terminate", **args, session_id=scope.session_id)
                await ok(client, "memory_set", **args, session_id="marker", key="k", value=seen)
                await until(lambda: (UPDATED, marker) in inbox.received[seen:], what="the marker write announced")
                return answer, [uri or method for method, uri in inbox.received[seen:] if uri != marker]

            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: a.lifecycle.terminate(*ids(scope), task_description="the task"))
                with anyio.fail_after(10):
                    await stopped.wait()
                within, told_within = await terminate_announcing()
                assert hooked == []
                clock.advance(b.settings.terminate_lease_seconds + 1)
                past, told_past = await terminate_announcing()
                assert len(hooked) == 1
                after, told_after = await terminate_announcing()
                tg.cancel_scope.cancel()
        assert within == past == after and within["episode_id"]
        assert episodes in told_within and episodes in told_past, (told_within, told_past)
        assert told_after == [], told_after
        assert len(hooked) == 1


# -- a real server process exits between the record and the end of its job --------------------------------------------
@pytest.mark.parametrize("point", faults.TERMINATE_POINTS)
@pytest.mark.parametrize("records", ["sqlite", "postgres"])
async def test_a_server_killed_mid_terminate_has_its_hooks_run_by_a_retry_past_its_lease(
    tmp_path: Path, records: str, point: str
) -> None:
    async with settings_for(f"redis+{records}", tmp_path) as settings:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
        env.update(
            MCP_MEMORY_DATABASE_URL=settings.database_url,
            MCP_MEMORY_CONFIG="",
            MCP_MEMORY_REDIS_URL=shared_redis_url(),
            MCP_MEMORY_REDIS_KEY_PREFIX=settings.redis_key_prefix,
            **{faults.EXIT_ENV: point},
        )
        session = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "desk"}
        async with Client(StdioServerParameters(command=str(EXE), args=["serve"], env=env)) as dying:
            await ok(dying, "spawn", **session, initial_state={"goal": "ship", "step": 3})
            with pytest.raises(Exception):  # noqa: B017 (the connection dies with the server)
                await dying.call_tool("terminate", {**session, "task_description": "ship it", "metadata": {"run": 7}})
        scope = Scope.parse(session["project_id"], session["agent_instance_id"], session["session_id"])

        # This server's clock is past the dead call's lease (the dead one ran on the wall clock).
        clock = FakeClock(time.time() + settings.terminate_lease_seconds + 60)
        rt = MemoryRuntime(settings, clock=clock)
        hooked = recording(rt)
        inbox = Inbox()
        async with Client(create_server(runtime=rt), mode="legacy", message_handler=inbox) as client:
            record = await rt.store.get_session(scope)
            assert record is not None and record.terminate_unfinished and record.episode_id is not None
            if point == "terminate.recorded":  # the sealed working memory, with no expiry
                assert {ttl for _, ttl in redis_keys(rt, scope).values()} == {-1}
            episode = f"memory://projects/{scope.project_id}/episodes/{record.episode_id}"
            await client.subscribe_resource(episode)
            answer = await ok(client, "terminate", **session)
            assert answer["episode_id"] == str(record.episode_id) and answer["items_cleared"] == 2
            assert [(e.episode_id, e.metadata) for e in hooked] == [(record.episode_id, {"run": 7})]
            await until(lambda: episode in inbox.updated(), what="the episode announced")
            # What is left in Redis is the terminated mark and the incarnation it guards, both with an expiry.
            left = redis_keys(rt, scope)
            assert left.keys() <= {"m", "i"} and left["m"][0] == "t" and all(ttl > 0 for _, ttl in left.values())
            assert await ok(client, "terminate", **session) == answer
            finished = await rt.store.get_session(scope)
            assert finished is not None and not finished.terminate_unfinished
        assert len(hooked) == 1


def redis_keys(rt: MemoryRuntime, scope: Scope) -> dict[str, tuple[str, int]]:
    """The session's Redis keys that remain, by suffix (``m``, ``v``, ...): each one's value (a string's) or type,
    and its TTL (-1: none)."""
    assert isinstance(rt.working_store, RedisWorkingStore)
    admin = redis.Redis.from_url(shared_redis_url(), decode_responses=True)
    try:
        left: dict[str, tuple[str, int]] = {}
        for key in rt.working_store.keys(scope):
            kind = str(admin.type(key))
            if kind != "none":
                value = str(admin.get(key)) if kind == "string" else kind
                left[key.rsplit(":", 1)[1]] = (value, int(admin.ttl(key)))
        return left
    finally:
        admin.close()
