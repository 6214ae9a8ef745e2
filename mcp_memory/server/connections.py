"""Connection limits for the HTTP transports, below ASGI: read timeouts, and caps that shed idle connections.

An ASGI middleware only sees requests, not the TCP connections that never send one, and uvicorn's own
``limit_concurrency`` counts every open connection: 1,000 idle sockets from anyone made every request 503, and
uvicorn never closes a connection that has not sent a complete request. So the server runs its own h11
protocol (:func:`guarded_protocol`), a subclass of uvicorn's, which

- closes a connection whose request headers are not complete within ``header_timeout`` of it opening (or of the
  previous response), answering 408 if part of a request arrived (a slowloris client);
- closes a connection whose request body is not complete within ``body_timeout`` of its headers (408 while no
  response was started; the application sees a disconnect);
- keeps at most ``max_connections`` open, and ``max_connections_per_client`` per client address: a new
  connection past a cap closes the longest-idle connection (no request in flight: idle keep-alive, never
  sent anything, headers still arriving, or past its answer, e.g. a 401, with the body still arriving).
  A request is refused only when every connection is busy with one: 503 (all) or 429 (this address) with
  ``Retry-After``;
- refuses request headers larger than :data:`MAX_HEADER_BYTES` (400, as uvicorn answers a request h11 cannot
  parse). h11 limits only what it buffers of an incomplete head, so a larger head that arrived in one read
  (128 KiB and more on loopback) passed.

An unauthenticated client gets its 401 at once, so its connections are idle and are the ones shed; a request
of an authenticated client that is being served is never cut off by somebody else's new connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
"""A request's line and headers larger than this get 400 and the connection is closed."""
RETRY_AFTER_SECONDS = 1
"""``Retry-After`` of a request refused for lack of a free connection: requests are short, so one soon frees."""
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_LOG_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The limits one server applies (from ``http.*`` settings)."""

    max_connections: int
    max_connections_per_client: int
    header_timeout: float
    body_timeout: float


class ConnectionRegistry:
    """Every open connection of one server, which of them are idle (oldest first) and which are busy."""

    def __init__(self, limits: ConnectionLimits, on_reject: Callable[[str], None] | None = None) -> None:
        self.limits = limits
        self.on_reject = on_reject or (lambda reason: None)
        self._open: set[GuardedH11Protocol] = set()
        # Insertion-ordered dicts used as ordered sets: the first entry is the longest idle.
        self._idle: dict[GuardedH11Protocol, None] = {}
        self._by_client: dict[str, dict[GuardedH11Protocol, None]] = {}
        # Requests being served per busy connection. uvicorn starts a connection's next request once the previous
        # response is sent, while that request's task may still be running: one connection can have two in
        # flight, and it is idle again only when both are done. Per client: how many of its connections are busy.
        self._busy: dict[GuardedH11Protocol, int] = {}
        self._busy_by_client: dict[str, int] = {}
        self._logged: dict[str, float] = {}

    @property
    def open_count(self) -> int:
        return len(self._open)

    def opened(self, conn: GuardedH11Protocol) -> None:
        """Register a new (idle) connection, then make room for it past a cap."""
        self._open.add(conn)
        self._idle[conn] = None
        self._by_client.setdefault(conn.client_key, {})[conn] = None
        if len(self._open) > self.limits.max_connections:
            self._shed(next((c for c in self._idle if c is not conn), None), "connection cap")
        mine = self._by_client[conn.client_key]
        if len(mine) > self.limits.max_connections_per_client:
            self._shed(next((c for c in mine if c is not conn and c in self._idle), None), "per-client cap")

    def closed(self, conn: GuardedH11Protocol) -> None:
        self._forget(conn)

    def admit(self, conn: GuardedH11Protocol) -> tuple[int, str] | None:
        """Mark ``conn`` busy with a request, or the refusal (status, reason) when there is no room for it."""
        key = conn.client_key
        serving = self._busy.get(conn, 0)
        if serving:
            # The previous request's task is finishing after its response: this connection is busy already.
            self._busy[conn] = serving + 1
            return None
        if len(self._busy) >= self.limits.max_connections:
            self.note("busy", "every connection is serving a request: answering 503")
            return 503, f"the server is serving {len(self._busy)} requests, its limit"
        if self._busy_by_client.get(key, 0) >= self.limits.max_connections_per_client:
            self.note("client_busy", f"client {key} has {self._busy_by_client[key]} connections serving requests: 429")
            limit = self.limits.max_connections_per_client
            return 429, f"too many requests in flight from your address (limit {limit})"
        self._busy[conn] = 1
        self._busy_by_client[key] = self._busy_by_client.get(key, 0) + 1
        self._idle.pop(conn, None)
        return None

    def release(self, conn: GuardedH11Protocol) -> None:
        """One request of ``conn`` finished; with none left, it is the most recently idle connection (if open)."""
        serving = self._busy.get(conn)
        if serving is None:
            return
        if serving > 1:
            self._busy[conn] = serving - 1
            return
        del self._busy[conn]
        key = conn.client_key
        self._busy_by_client[key] -= 1
        if not self._busy_by_client[key]:
            del self._busy_by_client[key]
        if conn in self._open:
            self._idle.pop(conn, None)
            self._idle[conn] = None
            # Keep the per-client order the same as the global one (most recently idle last).
            mine = self._by_client[conn.client_key]
            mine.pop(conn, None)
            mine[conn] = None

    def _shed(self, victim: GuardedH11Protocol | None, why: str) -> None:
        if victim is None:
            return  # every other connection is busy: requests on this one will be refused instead
        self.note("shed", f"closing the longest-idle connection from {victim.client_key} ({why})")
        self._forget(victim)
        victim.close_idle()

    def _forget(self, conn: GuardedH11Protocol) -> None:
        self._open.discard(conn)
        self._idle.pop(conn, None)
        mine = self._by_client.get(conn.client_key)
        if mine is not None:
            mine.pop(conn, None)
            if not mine:
                del self._by_client[conn.client_key]

    def note(self, reason: str, message: str) -> None:
        """Count a refusal or a shed connection; log it at most once a minute per reason (an attack is many)."""
        self.on_reject(reason)
        now = time.monotonic()
        if now - self._logged.get(reason, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS:
            self._logged[reason] = now
            logger.warning("%s (%d connections open; logged at most once a minute)", message, len(self._open))


async def _refuse(send: Callable[[Any], Any], status: int, reason: str) -> None:
    body = f"{reason}; retry after {RETRY_AFTER_SECONDS} s\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read timeouts and the registry's caps (see the module docstring)."""

    registry: ConnectionRegistry  # set on the subclass made by guarded_protocol()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = _HeadLimitedConnection()
        self._inner_app = self.app
        self.app = self._serve  # uvicorn runs self.app for each request of this connection
        self.client_key = ""
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # -- uvicorn's protocol interface, extended --------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.client_key = self.client[0] if self.client else "unknown"
        self._sync_timers()
        self.registry.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self.registry.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._sync_timers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync_timers()

    # -- requests ----------------------------------------------------------------------------------------------
    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        refusal = self.registry.admit(self)
        if refusal is not None:
            await _refuse(send, *refusal)
            return
        try:
            await self._inner_app(scope, receive, send)
        finally:
            self.registry.release(self)

    # -- timeouts ----------------------------------------------------------------------------------------------
    def _sync_timers(self) -> None:
        """Arm the timer of what the client owes now: a request's headers (IDLE) or its body (SEND_BODY)."""
        if self.transport is None or self.transport.is_closing():
            self._cancel_timers()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            self._body_timer = _cancel(self._body_timer)
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self.registry.limits.header_timeout, self._headers_late)
        elif state is h11.SEND_BODY:
            self._header_timer = _cancel(self._header_timer)
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.registry.limits.body_timeout, self._body_late)
        else:
            self._cancel_timers()

    def _cancel_timers(self) -> None:
        self._header_timer = _cancel(self._header_timer)
        self._body_timer = _cancel(self._body_timer)

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        partial = bool(self.conn.trailing_data[0])
        self.registry.note("header_timeout", f"closing a connection from {self.client_key}: headers not in time")
        if partial and self.conn.our_state is h11.IDLE:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        self.registry.note("body_timeout", f"closing a connection from {self.client_key}: request body not in time")
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            answer = not cycle.response_started
            # From now on the application's sends are dropped and its receive() says the client went away.
            cycle.disconnected = True
            cycle.message_event.set()
            if answer:
                self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def close_idle(self) -> None:
        """Close this idle connection to make room for another (no request of it is being served)."""
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.close()


class _HeadLimitedConnection(h11.Connection):
    """h11's server side, refusing a request whose line and headers (measured as parsed) exceed the limit."""

    def __init__(self) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)

    def next_event(self) -> Any:
        event = super().next_event()
        if isinstance(event, h11.Request) and _head_size(event) > MAX_HEADER_BYTES:
            # uvicorn answers a RemoteProtocolError with 400 and closes the connection, the request never served.
            raise h11.RemoteProtocolError("request headers too large", error_status_hint=431)
        return event


def _head_size(request: h11.Request) -> int:
    """The bytes of ``request``'s line and headers, as sent less optional whitespace (``name: value\r\n`` each)."""
    line = len(request.method) + len(request.target) + len(b" HTTP/1.1\r\n") + 1
    return line + sum(len(name) + len(value) + 4 for name, value in request.headers.raw_items()) + 2


def _cancel(timer: asyncio.TimerHandle | None) -> asyncio.TimerHandle | None:
    """Cancel ``timer`` (if any); None, to assign back."""
    if timer is not None:
        timer.cancel()
    return None


def guarded_protocol(registry: ConnectionRegistry) -> type[GuardedH11Protocol]:
    """The protocol class to give uvicorn (``Config(http=...)``) for connections counted in ``registry``."""

    class _Protocol(GuardedH11Protocol):
        pass

    _Protocol.registry = registry
    return _Protocol


__all__ = [
    "MAX_HEADER_BYTES",
    "RETRY_AFTER_SECONDS",
    "ConnectionLimits",
    "ConnectionRegistry",
    "GuardedH11Protocol",
    "guarded_protocol",
]
