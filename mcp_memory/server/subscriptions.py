"""Resource subscriptions: ``notifications/resources/updated`` and ``notifications/resources/list_changed`` after
this server's own writes.

Which write changes what (:func:`changes_for`): ``memory_set``/``memory_delete``, ``spawn``, ``pause``, ``resume``
and ``terminate`` change the session resource (and the agent's sessions listing); ``pause`` the checkpoint list
too, and adds a checkpoint (the resource list changed); ``terminate`` and ``record_episode`` change the project's
episode list and the episode, and add an episode (the resource list changed); ``forget_episodes`` and
``delete_session(keep_episodes=false)`` change the episode list and each episode they removed (named by the call's
:mod:`.effects`, not its result); ``forget_episodes`` also changes the session and the agent's sessions listing of
each session those episodes came from. Whatever removes a checkpoint or an episode (``delete_checkpoint``,
``delete_session``, ``forget_episodes``) changes the resource list too. A repeated ``terminate`` (the first call's
answer again) changes nothing. Only this process's tool calls are seen: a write by another server process on the
same database or Redis notifies nobody here.

Two protocol eras, one source of events:
- handshake era (2025-xx, what most clients and the conformance suite speak): ``resources/subscribe`` and
  ``resources/unsubscribe`` per connection (the subscriptions end with it); notifications go on the connection's
  standalone channel (stdio, the Streamable HTTP GET stream, SSE). ``list_changed`` goes to every open connection.
  Stateless HTTP has no such channel (each request is a connection of its own): there neither capability is
  declared and both methods are refused (-32601).
- 2026-07-28: ``subscriptions/listen`` streams, fed by the SDK's subscription bus; the stream's filter decides.

Delivery never holds up the call that made the change: handshake-era notifications are queued per connection and
sent in the background (:mod:`.delivery`: in order, a URI already queued not queued twice, a connection that stops
reading loses its pending notifications rather than delaying anyone); the listen streams' bus only hands each
event to the streams' own buffers (the SDK's ``ListenHandler`` ends a stream whose buffer is full).

Token scope: a URI outside the grant of the connection (its bearer token's projects) is accepted and never fires,
exactly like a URI the server does not know, so a subscription tells a token nothing; ``list_changed`` of a project
reaches only connections whose grant covers it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote
from uuid import UUID

from mcp.server import NotificationOptions
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import ListenHandler, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent
from mcp_types import (
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    CallToolResult,
    EmptyResult,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    UnsubscribeRequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_memory.errors import InvalidArgument
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.auth import Grant, current_grant
from mcp_memory.server.delivery import Delivery
from mcp_memory.server.effects import CallEffects
from mcp_memory.server.in_flight import connection_of
from mcp_memory.server.listing import CHECKPOINTS_URI, EPISODE_URI, EPISODES_URI, SESSION_URI
from mcp_memory.server.protocol import check_resource_uri, resource_error
from mcp_memory.server.scope import default_agent, default_project
from mcp_memory.server.session_directory import SESSIONS_URI
from mcp_memory.server.sessions import serving_stateless

logger = logging.getLogger(__name__)

MAX_URIS_PER_CONNECTION: Final = 1000
"""A connection's (or listen stream's) subscriptions beyond this many are accepted and ignored (bounded memory per
client)."""
MAX_NOTIFIED_URI: Final = 512
"""Longer than any URI this server notifies (the longest, a checkpoint list with a 128-character session id, has
about 250 characters): a subscription to a longer one can never fire, so it is accepted and not kept. With
:data:`MAX_URIS_PER_CONNECTION` this bounds what one connection holds to about 0.5 MB."""
MAX_LISTEN_STREAMS: Final = 1024
MAX_PENDING: Final = MAX_URIS_PER_CONNECTION + 1
"""A connection's queue of notifications not yet sent: one per subscribed URI and one ``list_changed`` (a URI is
never queued twice), so it fills only if that bound changes."""
_PROJECT = re.compile(r"memory://projects/([^/?#]*)")


@dataclass(frozen=True)
class ProjectResourcesListChanged(ResourcesListChanged):
    """``resources/list_changed`` caused by a write to ``project`` (delivered only within grants covering it)."""

    project: UUID | None = None


def project_of(uri: str) -> UUID | None:
    match = _PROJECT.match(uri)
    if match is None:
        return None
    try:
        return UUID(unquote(match.group(1)))
    except ValueError:
        return None


def visible(grant: Grant, event: ServerEvent) -> bool:
    """Whether a client with ``grant`` may learn of ``event``."""
    if grant.projects is None:
        return True
    if isinstance(event, ResourceUpdated):
        project = project_of(event.uri)
        return project is not None and grant.allows(project)
    if isinstance(event, ProjectResourcesListChanged) and event.project is not None:
        return grant.allows(event.project)
    return True


_UUID_AFTER: Final = frozenset({"projects", "agents", "episodes"})


def canonical_uri(uri: str) -> str:
    """``uri`` with the UUIDs it names (project, agent, episode) written as the server writes them (lower case,
    hyphens): ids are parsed in either case, so a subscription and a write that spell one differently still meet.
    Anything else is left as written."""
    if not uri.startswith("memory://"):
        return uri
    parts = uri.split("/")
    for i in range(1, len(parts)):
        if parts[i - 1] in _UUID_AFTER and "%" not in parts[i]:
            try:
                parts[i] = str(UUID(parts[i]))
            except ValueError:
                continue
    return "/".join(parts)


def subscribed_uri(uri: str) -> str | None:
    """What a subscription to ``uri`` keeps: its :func:`canonical_uri`, or None for one too long to ever fire. A URI
    a read would refuse as malformed (over 4096 characters, a ``%`` in a ``memory://`` one) is refused the same way
    (-32602)."""
    try:
        check_resource_uri(uri)
    except InvalidArgument as err:
        raise resource_error(err, uri, None) from None
    canonical = canonical_uri(uri)
    return canonical if len(canonical) <= MAX_NOTIFIED_URI else None


@dataclass(frozen=True, slots=True)
class Changes:
    """What one write changed: the URIs to notify and the project whose resource list gained or lost an item (if
    any)."""

    uris: tuple[str, ...] = ()
    list_changed: UUID | None = None


def changes_for(
    name: str,
    arguments: Mapping[str, Any],
    result: Mapping[str, Any],
    default_project: UUID | None,
    default_agent: UUID | None = None,
    effects: CallEffects | None = None,
) -> Changes:
    """What a successful call of tool ``name`` changed (nothing for a tool that writes nothing, or a call whose
    ``effects`` say it changed nothing); ``effects``: what the call noted beyond its result (:mod:`.effects`: the
    episodes it removed, which a result names only when the call did, and the sessions that changed with them)."""
    effects = effects or CallEffects()
    if effects.unchanged:
        return Changes()
    project = arguments.get("project_id") or default_project
    agent = arguments.get("agent_instance_id") or default_agent
    session = arguments.get("session_id")
    if project is None:
        return Changes()
    try:
        project_id = UUID(str(project))
        # As the store reads it (either case): the URIs name it as the server writes it, as subscribers do.
        agent = None if agent is None else UUID(str(agent))
    except ValueError:
        return Changes()
    ids = {"project_id": project_id, "agent_instance_id": agent, "session_id": session}
    session_uris: tuple[str, ...] = ()
    if agent is not None and session is not None:
        session_uris = (SESSION_URI.format(**ids), SESSIONS_URI.format(**ids))
    episode = result.get("episode_id")
    episode_uris = (EPISODES_URI.format(project_id=project_id),) + (
        (EPISODE_URI.format(project_id=project_id, episode_id=episode),) if episode else ()
    )
    gone = tuple(EPISODE_URI.format(project_id=project_id, episode_id=e) for e in effects.removed_episodes)
    if name == "delete_session":  # its checkpoints go with it, and its episodes unless kept
        checkpoints = (CHECKPOINTS_URI.format(**ids),) if session_uris else ()
        listed = bool(result.get("checkpoints") or gone)  # resources/list offered them
        return Changes(
            session_uris + checkpoints + (episode_uris[:1] + gone if gone else ()), project_id if listed else None
        )
    if name in ("memory_set", "memory_delete", "spawn", "resume"):
        return Changes(session_uris)
    if name in ("pause", "delete_checkpoint"):  # either way a checkpoint joins or leaves resources/list
        checkpoints = (CHECKPOINTS_URI.format(**ids),) if session_uris else ()
        return Changes(session_uris + checkpoints, project_id)
    if name == "terminate":
        return Changes(session_uris + (episode_uris if episode else ()), project_id if episode else None)
    if name == "record_episode":
        if result.get("repeat"):
            return Changes()  # nothing was written
        # Merged into an older episode: that one changed, and no resource was added.
        return Changes(episode_uris, None if result.get("merged") else project_id)
    if name == "update_episode":
        return Changes(episode_uris)
    if name == "forget_episodes":
        if not gone:
            return Changes()
        sessions: dict[str, None] = {}  # the sessions the episodes came from: each session and listing once
        for other_agent, other_session in effects.changed_sessions:
            named = {"project_id": project_id, "agent_instance_id": other_agent, "session_id": other_session}
            sessions.update(dict.fromkeys((SESSION_URI.format(**named), SESSIONS_URI.format(**named))))
        return Changes(episode_uris + gone + tuple(sessions), project_id)
    return Changes()


@dataclass
class _Watcher:
    """One handshake-era connection: its grant, the URIs it subscribed to and its notifications on their way."""

    connection: Connection
    grant: Grant
    delivery: Delivery
    uris: set[str] = field(default_factory=set)


def _refuse_without_channel(ctx: ServerRequestContext[Any, Any], method: str) -> None:
    """Refuse ``method`` on a handshake-era connection with no channel for notifications (stateless HTTP, where each
    request is a connection of its own): a subscription there would end with the answer and never fire."""
    connection = connection_of(ctx)
    if connection is not None and not connection.has_standalone_channel:
        raise MCPError(
            METHOD_NOT_FOUND,
            f"{method} is not available over stateless HTTP: each request is a connection of its own, so no "
            "notification could reach you; use subscriptions/listen (protocol 2026-07-28) or a stateful session",
        )


class _GrantedBus:
    """A view of the server's subscription bus that hides events outside one grant (one listen stream's)."""

    def __init__(self, bus: SubscriptionBus, grant: Grant) -> None:
        self._bus = bus
        self._grant = grant

    async def publish(self, event: ServerEvent) -> None:
        await self._bus.publish(event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        grant = self._grant

        def scoped(event: ServerEvent) -> None:
            if visible(grant, event):
                listener(event)

        return self._bus.subscribe(scoped)


class ChangeNotifier:
    """Tracks handshake-era connections and their subscriptions, and tells them (and listen streams) of changes."""

    def __init__(self, server: MemoryServer) -> None:
        self._server = server
        self._watchers: dict[int, _Watcher] = {}
        self._streams = 0
        # Listen streams held per token (by its name): one token's streams may not take every place.
        self._streams_of: dict[str, int] = {}

    # -- connections ---------------------------------------------------------------------------------------
    def _watcher(self, ctx: ServerRequestContext[Any, Any]) -> _Watcher | None:
        connection = connection_of(ctx)
        if connection is None or connection.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return None
        key = id(connection)
        watcher = self._watchers.get(key)
        if watcher is None or watcher.connection is not connection:
            grant = current_grant()
            delivery = Delivery(connection, self._server.background, MAX_PENDING, grant.label)
            watcher = self._watchers[key] = _Watcher(connection, grant, delivery)
            connection.exit_stack.callback(self._forget, key, watcher)  # ends with the connection
        return watcher

    def _forget(self, key: int, watcher: _Watcher) -> None:
        if self._watchers.get(key) is watcher:
            del self._watchers[key]
        watcher.delivery.close()

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Note every handshake-era connection with a channel (``list_changed`` goes to all of them)."""
        connection = connection_of(ctx)
        if connection is not None and connection.has_standalone_channel:
            self._watcher(ctx)
        return await call_next(ctx)

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        _refuse_without_channel(ctx, "resources/subscribe")
        uri = subscribed_uri(str(params.uri))
        watcher = self._watcher(ctx)
        if uri is not None and watcher is not None and len(watcher.uris) < MAX_URIS_PER_CONNECTION:
            watcher.uris.add(uri)
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        _refuse_without_channel(ctx, "resources/unsubscribe")
        uri = subscribed_uri(str(params.uri))
        watcher = self._watcher(ctx)
        if uri is not None and watcher is not None:
            watcher.uris.discard(uri)
        return EmptyResult()

    async def listen(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        """``subscriptions/listen`` (2026-07-28) through a view of the bus limited to the caller's grant. The stream
        keeps its URIs as a subscription does (:func:`subscribed_uri`: canonical, at most
        :data:`MAX_URIS_PER_CONNECTION`); its acknowledgement lists those it honours."""
        requested = params.notifications.resource_subscriptions
        if requested:
            kept = (subscribed_uri(uri) for uri in requested)
            uris = list(dict.fromkeys(uri for uri in kept if uri is not None))[:MAX_URIS_PER_CONNECTION]
            notifications = params.notifications.model_copy(update={"resource_subscriptions": uris})
            params = params.model_copy(update={"notifications": notifications})
        grant = current_grant()
        per_token = self._server.runtime.settings.http.max_sessions_per_token
        held = self._streams_of.get(grant.holder, 0)
        if held >= per_token:
            raise MCPError(
                INTERNAL_ERROR,
                f"Subscription limit reached: this token holds {held} listen streams, its most "
                "(http.max_sessions_per_token); close one",
            )
        if self._streams >= MAX_LISTEN_STREAMS:
            raise MCPError(INTERNAL_ERROR, "Subscription limit reached")
        self._streams += 1
        self._streams_of[grant.holder] = held + 1
        try:
            return await ListenHandler(_GrantedBus(self._server._subscriptions, grant))(ctx, params)
        finally:
            self._streams -= 1
            left = self._streams_of[grant.holder] - 1
            if left:
                self._streams_of[grant.holder] = left
            else:
                del self._streams_of[grant.holder]

    # -- changes ---------------------------------------------------------------------------------------------
    async def publish(self, changes: Changes) -> None:
        """Tell subscribers of each changed URI, and every connection within scope of a new checkpoint or episode.
        Waits on no subscriber: each connection's share is queued for its background delivery."""
        events: list[ServerEvent] = [ResourceUpdated(uri) for uri in changes.uris]
        if changes.list_changed is not None:
            events.append(ProjectResourcesListChanged(project=changes.list_changed))
        for watcher in list(self._watchers.values()):
            watcher.delivery.push(
                event
                for event in events
                # The URI is checked first: a forget by filter may name thousands of episodes nobody watches.
                if (not isinstance(event, ResourceUpdated) or event.uri in watcher.uris)
                and visible(watcher.grant, event)
            )
        # The in-process bus calls each listen stream's listener, which only puts the event in the stream's buffer.
        for event in events:
            await self._server._subscriptions.publish(event)

    async def after_tool(
        self, name: str, arguments: Mapping[str, Any], result: CallToolResult, effects: CallEffects
    ) -> None:
        """Observer of the server's successful tool calls; never fails the call."""
        try:
            # The scope a call omitted is its default (the request's token's, the configured one, the installation's).
            defaults = self._server.defaults
            changes = changes_for(
                name,
                arguments,
                result.structured_content or {},
                default_project(defaults),
                default_agent(defaults),
                effects,
            )
            if changes.uris or changes.list_changed:
                await self.publish(changes)
        except Exception:
            logger.warning("notifying subscribers after %s failed", name, exc_info=True)


def register_subscriptions(server: MemoryServer) -> ChangeNotifier:
    """Serve subscriptions on ``server`` and declare ``resources.subscribe`` and ``resources.listChanged`` (not to
    handshake-era clients of stateless HTTP, which cannot receive them)."""
    notifier = ChangeNotifier(server)
    low = server._lowlevel_server
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, notifier.subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, notifier.unsubscribe)
    low.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, notifier.listen)
    low.middleware.append(notifier.middleware)  # after the grant middleware: runs with the request's grant
    server.tool_observers.append(notifier.after_tool)

    # The handshake era declares listChanged from NotificationOptions, which MCPServer leaves at its defaults, and
    # subscribe whenever resources/subscribe has a handler. Neither holds on stateless HTTP, where the connection
    # ends with each answer: nothing is declared there (the 2026-07-28 listen streams work in any mode).
    declare = low.create_initialization_options

    def with_list_changed(
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        stateless = serving_stateless()
        options = notification_options or NotificationOptions(resources_changed=not stateless)
        declared = declare(options, experimental_capabilities, extensions)
        resources = declared.capabilities.resources
        if stateless and resources is not None:
            quiet = resources.model_copy(update={"subscribe": False, "list_changed": False})
            declared.capabilities = declared.capabilities.model_copy(update={"resources": quiet})
        return declared

    low.create_initialization_options = with_list_changed  # type: ignore[method-assign]
    return notifier


__all__ = [
    "ChangeNotifier",
    "Changes",
    "changes_for",
    "project_of",
    "register_subscriptions",
    "subscribed_uri",
    "visible",
]
