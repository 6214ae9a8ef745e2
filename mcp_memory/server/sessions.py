"""Stateful Streamable HTTP sessions shared fairly between bearer tokens.

The SDK caps the number of sessions of the whole server (``max_sessions``; past it a 503 without
``Retry-After``), so one token opening sessions in a loop (a minute of work for 10,000) locked every other token
out of ``initialize`` until its sessions idled out (30 minutes by default). :class:`FairSessionManager` also caps
the sessions of each token (``max_sessions_per_token``): a token at its cap is refused with 429, the others are
unaffected. The server-wide cap stays as a backstop (503). Both refusals carry ``Retry-After``: the seconds until
the soonest of the sessions concerned expires by idleness, or :data:`BUSY_RETRY_AFTER_SECONDS` when each of them
has a request or stream open (such a session does not expire).

Refusal rather than eviction: a session another client of the same token is using is never closed under it.
Abandoned sessions (a client that quits without DELETE) count until ``session_idle_timeout_seconds`` ends them.
Without tokens (loopback only) there is a single tenant and only the server-wide cap applies.
No event store is configured, so streams are not resumable: a ``Last-Event-ID`` header is ignored.
SSE streams (the older transport, one MCP session per stream) are capped per token the same way
(:class:`StreamsPerToken`, counted apart from Streamable HTTP sessions).
In stateless mode each handshake-era request is served as a connection of its own (:func:`serving_stateless` tells
the code below, e.g. which capabilities an ``initialize`` declares).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INTERNAL_ERROR, ErrorData, JSONRPCError
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

LAST_EVENT_ID = b"last-event-id"  # ASGI header names are lower case
BUSY_RETRY_AFTER_SECONDS = 60
"""``Retry-After`` when every session concerned has a request or stream open (none will expire on its own)."""

_stateless: ContextVar[bool] = ContextVar("mcp_memory_stateless_request", default=False)


def serving_stateless() -> bool:
    """Whether this task serves a handshake-era request of stateless Streamable HTTP: a connection that ends with
    its answer and has no channel for notifications (what runs for the request inherits the answer)."""
    return _stateless.get()


class SessionRefused(Exception):
    """No session may be opened for this request: (HTTP status, message, Retry-After seconds)."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class FairSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager with a cap per token and ``Retry-After`` on every refusal."""

    def __init__(self, *args: Any, max_sessions_per_token: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_sessions_per_token = max_sessions_per_token

    async def _handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The entry of every request (``asgi_app`` and ``handle_request`` both end here).
        if self.event_store is None:
            # Without an event store nothing can be replayed, and the SDK answered a GET with Last-Event-ID with
            # nothing at all (uvicorn's 500). The spec lets a server ignore the header (it MAY replay): the GET
            # opens a fresh stream, as without it.
            scope = without_last_event_id(scope)
        await super()._handle_request(scope, receive, send)

    async def _handle_stateless_request(
        self, protocol_version_hint: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        # The SDK starts the request's server task from here, so the task (and its handlers) copy this value.
        token = _stateless.set(True)
        try:
            await super()._handle_stateless_request(protocol_version_hint, scope, receive, send)
        finally:
            _stateless.reset(token)

    def sessions_of(self, requestor: AuthorizationContext | None) -> list[StreamableHTTPServerTransport]:
        """The open sessions opened with ``requestor``'s credential (every session without tokens)."""
        if requestor is None:
            return list(self._server_instances.values())
        return [
            transport
            for session_id, transport in self._server_instances.items()
            if self._session_owners.get(session_id) == requestor
        ]

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        # Runs under the SDK's session-creation lock, so concurrent initialize requests cannot overshoot a cap.
        if requestor is not None:
            mine = self.sessions_of(requestor)
            if len(mine) >= self.max_sessions_per_token:
                raise SessionRefused(
                    429,
                    f"this token has {len(mine)} open sessions, its limit: close one (HTTP DELETE) or wait for one "
                    "to expire",
                    _retry_after(mine),
                )
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            raise SessionRefused(
                503,
                f"the server has {len(self._server_instances)} open sessions, its limit",
                _retry_after(list(self._server_instances.values())),
            )
        return super()._admit_session(requestor)

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super()._handle_stateful_request(scope, receive, send)
        except SessionRefused as refused:
            # Raised before anything was sent for this request (admission precedes the opening request).
            logger.warning("refused a new session (%d): %s", refused.status, refused.message)
            await send_refusal(send, refused)


async def send_refusal(send: Send, refused: SessionRefused) -> None:
    """The refusal as an HTTP response: its status, ``Retry-After``, and a JSON-RPC error saying why."""
    body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INTERNAL_ERROR, message=refused.message))
    data = body.model_dump_json(by_alias=True, exclude_unset=True).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"retry-after", str(refused.retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class StreamsPerToken:
    """Open SSE streams (each an MCP session) per token: the same cap as Streamable HTTP sessions, counted apart.

    An SSE stream lasts as long as its connection, so a token at its cap gets 429 with
    :data:`BUSY_RETRY_AFTER_SECONDS` (no stream of it expires on its own)."""

    def __init__(self, max_per_token: int) -> None:
        self.max_per_token = max_per_token
        self._open: dict[str, int] = {}

    @contextmanager
    def opened(self, scope: Scope) -> Iterator[None]:
        """Count one stream of the request's token for the duration (``SessionRefused`` at the cap)."""
        user = scope.get("user")
        owner = authorization_context(user)["client_id"] if isinstance(user, AuthenticatedUser) else None
        if owner is None:  # without tokens: a single tenant, bounded by the connection caps
            yield
            return
        count = self._open.get(owner, 0)
        if count >= self.max_per_token:
            raise SessionRefused(
                429, f"this token has {count} open SSE streams, its limit: close one", BUSY_RETRY_AFTER_SECONDS
            )
        self._open[owner] = count + 1
        try:
            yield
        finally:
            self._open[owner] -= 1
            if not self._open[owner]:
                del self._open[owner]


def without_last_event_id(scope: Scope) -> Scope:
    """``scope`` without a ``Last-Event-ID`` request header (the same scope if it has none)."""
    headers = scope["headers"]
    if all(name != LAST_EVENT_ID for name, _ in headers):
        return scope
    return {**scope, "headers": [(name, value) for name, value in headers if name != LAST_EVENT_ID]}


def _retry_after(sessions: list[StreamableHTTPServerTransport]) -> int:
    """Whole seconds until the first of ``sessions`` ends by idleness (at least 1)."""
    now = anyio.current_time()
    deadlines = [
        t.idle_scope.deadline for t in sessions if t.idle_scope is not None and math.isfinite(t.idle_scope.deadline)
    ]
    if not deadlines:
        return BUSY_RETRY_AFTER_SECONDS
    return max(1, math.ceil(min(deadlines) - now))


__all__ = [
    "BUSY_RETRY_AFTER_SECONDS",
    "FairSessionManager",
    "SessionRefused",
    "StreamsPerToken",
    "send_refusal",
    "serving_stateless",
]
