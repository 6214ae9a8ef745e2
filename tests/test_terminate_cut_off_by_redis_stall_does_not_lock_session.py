"""A terminate cut off by a stalled Redis (SIGSTOP) answers ``unavailable`` and leaves the session usable once Redis
answers again: its Redis seal, sent before the stall and run by Redis after it (SIGCONT), is stale (the failed
terminate has unsealed the durable record already), so neither a write nor a retried terminate is locked out
until ``terminate_lease_seconds`` (90 s) runs out, on the server that failed or on another one.

Before this change the queued seal landed after the durable unseal and held the session: ``memory_set`` was
``conflict: ... being terminated`` and a second terminate ``conflict ... seal lapses within 90 seconds``."""

from __future__ import annotations

import uuid

import pytest
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.server import create_server
from tests.redis_servers import RedisServer
from tests.stalled_stores import frozen, timed_call
from tests.waiting import until

pytestmark = pytest.mark.anyio


async def _stalled_terminate_then_queued_seal_lands(c: Client, server: RedisServer, session: dict[str, str]) -> None:
    """terminate while Redis is stopped (``unavailable``), then wait until Redis has run the seal it had queued."""
    assert server.process is not None
    with frozen(server.process.pid):
        good, text, _ = await timed_call(c, "terminate", **session, task_description="cut off")
        assert not good and isinstance(text, str) and text.startswith("unavailable: "), text
    marker = f"mcpmem:{{{session['project_id']}/{session['agent_instance_id']}/{session['session_id']}}}:m"
    client = server.client()
    try:
        # The stale seal of the failed terminate, "s:<its token>:<lease end>", as Redis runs the queued script.
        await until(lambda: str(client.get(marker) or "").startswith("s:"), 10, what="the queued seal ran")
    finally:
        client.close()


async def test_a_terminate_cut_off_by_a_redis_stall_leaves_the_session_writable_and_terminable(
    own_redis: RedisServer, db_url: str
) -> None:
    s1 = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s1"}
    settings = Settings(database_url=db_url, redis_url=own_redis.url)  # every deadline at its default
    async with Client(create_server(settings)) as c:
        good, data, _ = await timed_call(c, "spawn", **s1, initial_state={"goal": "ship"})
        assert good, data
        await _stalled_terminate_then_queued_seal_lands(c, own_redis, s1)

        good, data, _ = await timed_call(c, "memory_set", **s1, key="after", value="thawed")
        assert good, f"memory_set after the stale seal landed: {data}"
        good, data, elapsed = await timed_call(c, "terminate", **s1, task_description="retried")
        assert good, f"retried terminate: {data}"
        assert elapsed < 2.5, f"the retried terminate took {elapsed:.2f} s"
        assert data["state_items_consolidated"] == 2 and data["episode_id"]
        # Terminated for good: the stale-seal clearing does not reopen it.
        good, text, _ = await timed_call(c, "memory_set", **s1, key="late", value=1)
        assert not good and "terminated" in text, text


async def test_another_server_clears_the_stale_seal_of_a_terminate_cut_off_on_the_first(
    own_redis: RedisServer, db_url: str
) -> None:
    s1 = {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s1"}
    settings = Settings(database_url=db_url, redis_url=own_redis.url)
    async with Client(create_server(settings)) as first, Client(create_server(settings)) as second:
        good, data, _ = await timed_call(first, "spawn", **s1, initial_state={"goal": "ship"})
        assert good, data
        await _stalled_terminate_then_queued_seal_lands(first, own_redis, s1)

        good, data, _ = await timed_call(second, "memory_set", **s1, key="after", value="from the second server")
        assert good, f"memory_set on the second server: {data}"
        good, data, _ = await timed_call(second, "terminate", **s1)
        assert good, f"terminate on the second server: {data}"
        assert data["state_items_consolidated"] == 2
        good, data, _ = await timed_call(first, "terminate", **s1)  # a replay: the second server's result
        assert good and data["state_items_consolidated"] == 2, data
