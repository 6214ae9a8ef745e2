"""Resource subscriptions: ``notifications/resources/updated`` after this server's own writes, to the connections
subscribed to the URI (handshake era: ``resources/subscribe``; 2026-07-28: a listen stream), ``list_changed`` when a
checkpoint or episode is added; unsubscribe stops them; unknown URIs and URIs outside the token's projects are
accepted and never fire. Through the SDK's in-process client; the transports are in test_discovery_transports.py."""

from __future__ import annotations

import contextlib
import uuid

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated

from mcp_memory.config_sections import TokenSettings
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.assembly import create_server
from mcp_memory.server.auth import Grant, TokenTable, hash_token
from mcp_memory.services.runtime import MemoryRuntime
from tests.http_helpers import Inbox, ok
from tests.waiting import until

# resources/subscribe is the handshake era's method (what clients speak today); the SDK marks it deprecated.
pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")]


def uris(p: str, a: str, s: str) -> tuple[str, str]:
    session = f"memory://projects/{p}/agents/{a}/sessions/{s}"
    return session, session + "/checkpoints"


async def test_a_write_notifies_the_subscribed_session_and_unsubscribe_stops_it(client: Client, inbox: Inbox) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    session, checkpoints = uris(p, a, "s")
    await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="s")
    assert client.server_capabilities.resources is not None
    assert client.server_capabilities.resources.subscribe and client.server_capabilities.resources.list_changed
    await client.subscribe_resource(session)
    await client.subscribe_resource(checkpoints)
    await client.subscribe_resource("memory://nowhere/at/all")  # unknown: accepted, never fires

    await ok(client, "memory_set", project_id=p, agent_instance_id=a, session_id="s", key="k", value=1)
    await until(lambda: inbox.updated() == [session], what="session updated after memory_set")
    await ok(client, "pause", project_id=p, agent_instance_id=a, session_id="s")
    await until(lambda: inbox.updated()[1:] == [session, checkpoints], what="session and checkpoints after pause")
    await until(lambda: inbox.list_changes() == 1, what="list_changed after a new checkpoint")

    await client.unsubscribe_resource(session)
    await ok(client, "resume", project_id=p, agent_instance_id=a, session_id="s")
    await ok(client, "pause", project_id=p, agent_instance_id=a, session_id="s")
    # The checkpoint list still fires; its notification comes after the (absent) session one would have.
    await until(lambda: inbox.updated()[3:] == [checkpoints], what="only the checkpoint list after unsubscribe")
    assert "memory://nowhere/at/all" not in inbox.updated()


async def test_ids_spelled_in_another_case_still_meet(client: Client, inbox: Inbox) -> None:
    """Ids are read in either case: a write naming the agent in upper case notifies a subscription written in lower
    case, and a subscription written in upper case hears a write in lower case."""
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    session, _ = uris(p, a, "s")
    await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="s")
    await client.subscribe_resource(session)
    await ok(client, "memory_set", project_id=p.upper(), agent_instance_id=a.upper(), session_id="s", key="k", value=1)
    await until(lambda: inbox.updated() == [session], what="updated after a write naming the ids in upper case")
    await client.unsubscribe_resource(session.replace(a, a.upper()))  # the same subscription, however spelled
    await client.subscribe_resource(session.replace(p, p.upper()))
    await ok(client, "memory_set", project_id=p, agent_instance_id=a, session_id="s", key="k", value=2)
    await until(lambda: inbox.updated() == [session, session], what="updated for an upper-case subscription")


async def test_episodes_notify_their_list_and_resource(client: Client, inbox: Inbox) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    episodes = f"memory://projects/{p}/episodes"
    await client.subscribe_resource(episodes)
    await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="s")
    await ok(client, "terminate", project_id=p, agent_instance_id=a, session_id="s")
    await until(lambda: inbox.updated() == [episodes], what="episodes updated after terminate")
    await until(lambda: inbox.list_changes() == 1, what="list_changed after terminate")
    ep = await ok(
        client,
        "record_episode",
        project_id=p,
        agent_instance_id=a,
        task_type="t",
        task_description="d",
        outcome="success",
    )
    await client.subscribe_resource(f"{episodes}/{ep['episode_id']}")
    await until(lambda: inbox.updated() == [episodes, episodes], what="episodes updated after record_episode")


async def test_another_projects_resources_never_fire_for_a_restricted_token(server: MemoryServer) -> None:
    p, mine, a = (str(uuid.uuid4()) for _ in range(3))
    theirs, _ = uris(p, a, "s")
    own, _ = uris(mine, a, "s")
    server.grants.fallback = Grant("mine-only", frozenset({uuid.UUID(mine)}))
    inbox = Inbox()
    async with Client(server, mode="legacy", message_handler=inbox) as restricted:
        await restricted.subscribe_resource(theirs)  # accepted: no oracle
        await restricted.subscribe_resource(own)
        server.grants.fallback = Grant("all", None)
        async with Client(server, mode="legacy") as admin:
            await ok(admin, "spawn", project_id=p, agent_instance_id=a, session_id="s")
            await ok(admin, "pause", project_id=p, agent_instance_id=a, session_id="s")
            await ok(admin, "spawn", project_id=mine, agent_instance_id=a, session_id="s")
        # Notifications keep their order: once the own one is in, the other project's would have come before it.
        await until(lambda: inbox.updated() == [own], what="only the token's own project notifies")
        assert inbox.list_changes() == 0  # the other project's new checkpoint is not announced either


async def test_a_listen_stream_gets_updates_of_its_uris_on_the_2026_protocol(server: MemoryServer) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    session, _ = uris(p, a, "s")
    async with Client(server) as client:
        assert client.protocol_version >= "2026"
        await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="s")
        async with client.listen(resource_subscriptions=[session, "memory://unknown"]) as sub:
            await ok(client, "memory_set", project_id=p, agent_instance_id=a, session_id="s", key="k", value=1)
            with anyio.fail_after(10):
                async for event in sub:
                    assert event == ResourceUpdated(session)
                    break


async def test_one_tokens_listen_streams_leave_room_for_another_token(runtime: MemoryRuntime) -> None:
    """Listen streams count per token, up to ``http.max_sessions_per_token`` as sessions do: a token at its cap is
    refused another, and another token still listens."""
    runtime.settings.http.max_sessions_per_token = 2
    server = create_server(runtime=runtime)
    p, q, a = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    mine, theirs = uris(p, a, "s")[0], uris(q, a, "s")[0]
    server.grants.fallback = Grant("a", frozenset({uuid.UUID(p)}))
    async with Client(server) as client, contextlib.AsyncExitStack() as held:
        for _ in range(2):
            await held.enter_async_context(client.listen(resource_subscriptions=[mine]))
        with pytest.raises(MCPError, match="this token holds 2 listen streams"):
            async with client.listen(resource_subscriptions=[mine]):
                pass
        server.grants.fallback = Grant("b", frozenset({uuid.UUID(q)}))
        await ok(client, "spawn", project_id=q, agent_instance_id=a, session_id="s")
        async with client.listen(resource_subscriptions=[theirs]) as sub:
            await ok(client, "memory_set", project_id=q, agent_instance_id=a, session_id="s", key="k", value=1)
            with anyio.fail_after(10):
                async for event in sub:
                    assert event == ResourceUpdated(theirs)
                    break


async def test_two_tokens_of_one_name_have_a_listen_cap_each(runtime: MemoryRuntime) -> None:
    """Token names need not be unique (only hashes are): two tokens both named "ops" each get their own
    ``http.max_sessions_per_token`` listen streams, where they shared one count and one starved the other."""
    runtime.settings.http.max_sessions_per_token = 1
    server = create_server(runtime=runtime)
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    mine = uris(p, a, "s")[0]
    first, second = "mcpm_first-token", "mcpm_second-token"
    table = TokenTable(
        [TokenSettings(name="ops", sha256=hash_token(t), projects=[p]) for t in (first, second)]  # same name
    )
    grants = [found[1] for found in (table.verify(first), table.verify(second)) if found is not None]
    async with Client(server) as client, contextlib.AsyncExitStack() as held:
        server.grants.fallback = grants[0]
        await held.enter_async_context(client.listen(resource_subscriptions=[mine]))
        with pytest.raises(MCPError, match="this token holds 1 listen streams"):
            async with client.listen(resource_subscriptions=[mine]):
                pass
        server.grants.fallback = grants[1]
        await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="s")
        async with client.listen(resource_subscriptions=[mine]) as sub:
            await ok(client, "memory_set", project_id=p, agent_instance_id=a, session_id="s", key="k", value=1)
            with anyio.fail_after(10):
                async for event in sub:
                    assert event == ResourceUpdated(mine)
                    break


async def test_a_listen_stream_hears_ids_spelled_in_upper_case(server: MemoryServer) -> None:
    """As a ``resources/subscribe`` does: a listen stream naming the project and agent in upper case is told of a
    write naming them in lower case (under the URI as the server writes it, which its acknowledgement lists)."""
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    session, _ = uris(p, a, "s")
    async with Client(server) as client:
        await ok(client, "spawn", project_id=p, agent_instance_id=a, session_id="s")
        shouted = session.replace(p, p.upper()).replace(a, a.upper())
        async with client.listen(resource_subscriptions=[shouted]) as sub:
            assert sub.honored is not None and sub.honored.resource_subscriptions == [session]
            await ok(client, "memory_set", project_id=p, agent_instance_id=a, session_id="s", key="k", value=1)
            with anyio.fail_after(10):
                async for event in sub:
                    assert event == ResourceUpdated(session)
                    break


async def test_a_subscription_to_a_uri_a_read_refuses_is_refused_alike(server: MemoryServer, client: Client) -> None:
    """A URI over 4096 characters (or with a ``%``) is refused by ``resources/subscribe``, ``resources/unsubscribe``
    and ``subscriptions/listen`` with -32602, as ``resources/read`` refuses it: none is kept, however many a client
    sends."""
    p = str(uuid.uuid4())
    for bad in (f"memory://projects/{p}/episodes/" + "x" * 5000, f"memory://projects/{p}/episodes/%41"):
        for request in (client.read_resource, client.subscribe_resource, client.unsubscribe_resource):
            with pytest.raises(MCPError) as refused:
                await request(bad)
            assert refused.value.error.code == -32602 and refused.value.error.message.startswith("invalid_argument")
        async with Client(server) as modern:
            with pytest.raises(MCPError) as refused:
                async with modern.listen(resource_subscriptions=[uris(p, p, "s")[0], bad]):
                    pass
            assert refused.value.error.code == -32602


async def test_a_listen_stream_keeps_at_most_a_connections_share_of_uris(server: MemoryServer) -> None:
    """A listen stream honours at most 1,000 URIs, each once and none longer than any the server notifies; its
    acknowledgement lists the ones it kept."""
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    many = [uris(p, a, f"s{i}")[0] for i in range(1200)]
    never = f"memory://projects/{p}/episodes/" + "x" * 4000  # well-formed, longer than any notified URI
    async with Client(server) as client:
        async with client.listen(resource_subscriptions=[never, many[0], *many]) as sub:
            assert sub.honored is not None
            assert sub.honored.resource_subscriptions == many[:1000]
