"""The calls a server is serving (tool calls, resource reads, prompts), so that a stop can cut them off itself, and
so that no MCP session runs more of them at once than ``max_calls_in_flight_per_mcp_session``.

Over HTTP a SIGINT/SIGTERM gives the calls in flight a grace to end (``http.SHUTDOWN_GRACE_SECONDS``); uvicorn's
own way past it cancels the requests' tasks and logs that at ERROR, with a traceback per request, for what is a
normal, documented stop. Instead the server cuts its calls off first (:meth:`InFlightCalls.cut_off`): each such call
ends as ``unavailable`` (an answer its client may still get, instead of a dropped connection), and the stop logs
one WARNING saying how many calls it cut off, those ended with their stream (an SSE stream closed by the stop)
included.

A call cut off this way still runs its own compensation (a spawn's discard, a terminate's unseal: they catch the
cancellation and run shielded from it), so it leaves what a failed call leaves; what it does not record is its
failure event, and a resume cut between its restore and its durable record leaves the session as a crash there
would (restored memory, status and event as before it).

The per-session cap: the SDK starts a task for every request it reads, and on SSE (each POST answered 202 at once)
and stdio nothing else bounds how many one client has waiting, on a stalled store say. A call past the cap is
refused before it does any work (``unavailable``); its place is given back however the call ends.

Every refusal is counted (``on_refused``: the server's ``mcp_memory_calls_refused_total{method,reason}``) and
logged at WARNING with the session's short id and the method; a session refused again within
:data:`REFUSAL_LOG_EVERY_SECONDS` of its last line is not logged again at once (a client piling up calls is many
refusals a second): those refusals are told, with their count per method, in the session's next line, or in one
line when its last call in flight ends.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext

from mcp_memory.errors import Unavailable

logger = logging.getLogger(__name__)

REFUSAL_LOG_EVERY_SECONDS: Final = 60.0
"""How often one MCP session's refusals get a log line of their own at most (the others are counted into a line)."""
REFUSED_REASON: Final = "calls_in_flight"
"""The ``reason`` label of a call refused because its session had as many calls in flight as it may."""


def connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection | None:
    """The SDK's ``Connection`` of a request (a handshake-era SSE stream, stdio server or Streamable HTTP session; on
    2026-07-28, the request alone), or None if the SDK no longer exposes it."""
    # The SDK's ServerSession is built per request and keeps its connection private; the connection is the unit
    # subscriptions live and die with and the cap counts in, so we read it (and do without both if a later SDK
    # moves it).
    connection = getattr(ctx.session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


@dataclass(frozen=True, slots=True, eq=False)
class McpSession:
    """The MCP session a request came on: ``key``, the object its calls are counted under, and ``short_id``, how
    the log names it (the first 8 characters of its ``Mcp-Session-Id``, else a hex number of its own)."""

    key: object
    short_id: str


def session_of(ctx: ServerRequestContext[Any, Any]) -> McpSession | None:
    """The MCP session a request came on (None: not known)."""
    connection = connection_of(ctx)
    if connection is None:
        return None
    # A 2026-07-28 request on a stream (SSE, stdio) gets a Connection of its own, but shares the stream's channel
    # with the stream's other requests: that channel is the session. Single-exchange Streamable HTTP requests share
    # one "no channel" sentinel instead, so each of those is a session of its own (its HTTP connection bounds it).
    key = connection.outbound if connection.has_standalone_channel else connection
    # An SSE stream's and stdio's connection has no session id: the key's id() names the session while it lives.
    short_id = connection.session_id[:8] if connection.session_id else f"{id(key) & 0xFFFFFFFF:08x}"
    return McpSession(key, short_id)


@dataclass(slots=True)
class _Places:
    """One MCP session's calls in flight, and its refusals not logged yet."""

    held: int = 0
    logged_at: float | None = None
    """time.monotonic() of the session's last refusal line."""
    unlogged: Counter[str] = field(default_factory=Counter)
    """Refusals since that line, by method."""


def _counts(refusals: Counter[str]) -> str:
    return ", ".join(f"{method} {n}" for method, n in sorted(refusals.items()))


class InFlightCalls:
    """The cancel scopes of the calls being served, how many calls a stop has cut off, and how many calls each MCP
    session has in flight (at most ``per_session``)."""

    def __init__(self, per_session: int, on_refused: Callable[[str, str], None] | None = None) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self.stopping = False
        """Set when the server starts to stop: from then on a call that is cancelled counts as cut off."""
        self.cut_off_count = 0
        self.per_session = per_session
        self._on_refused = on_refused
        """Told the method and reason (:data:`REFUSED_REASON`) of each call refused at the cap (the server counts it
        in its metrics)."""
        self._held: dict[int, _Places] = {}
        """The calls in flight of each MCP session that has any, by the ``id()`` of the session's key (an idle
        session has no entry; while it has one, its calls keep the key alive, so the id names no other object)."""

    @contextmanager
    def place(self, session: McpSession | None, method: str) -> Iterator[None]:
        """Hold one of ``session``'s places (:func:`session_of`) for a ``method`` call, given back however the block
        ends; with every place taken, count and log the refusal and raise ``Unavailable`` at once. A call of no
        session (one from Python) is not counted."""
        if session is None:
            yield
            return
        key = id(session.key)
        places = self._held.get(key)
        if places is None:
            places = self._held[key] = _Places()
        elif places.held >= self.per_session:
            self._refused(session, places, method)
            raise Unavailable(
                f"this MCP session has too many calls in flight: {places.held}, the most it may have "
                "(max_calls_in_flight_per_mcp_session); retry once one of them has answered"
            )
        places.held += 1
        try:
            yield
        finally:
            places.held -= 1
            if not places.held:
                del self._held[key]
                if places.unlogged:
                    logger.warning(
                        "MCP session %s: %d more call(s) refused at its cap of %d calls in flight: %s",
                        session.short_id,
                        places.unlogged.total(),
                        self.per_session,
                        _counts(places.unlogged),
                    )

    def _refused(self, session: McpSession, places: _Places, method: str) -> None:
        """Count a refusal, and log it unless the session's last line is recent (then its next line tells it)."""
        if self._on_refused is not None:
            self._on_refused(method, REFUSED_REASON)
        now = time.monotonic()
        if places.logged_at is not None and now - places.logged_at < REFUSAL_LOG_EVERY_SECONDS:
            places.unlogged[method] += 1
            return
        earlier = f"; {places.unlogged.total()} more refused since the last such line: {_counts(places.unlogged)}"
        logger.warning(
            "MCP session %s: refused a %s: %d call(s) in flight, the most it may have "
            "(max_calls_in_flight_per_mcp_session; further refusals within %g s are logged together)%s",
            session.short_id,
            method,
            places.held,
            REFUSAL_LOG_EVERY_SECONDS,
            earlier if places.unlogged else "",
        )
        places.logged_at = now
        places.unlogged.clear()

    @contextmanager
    def track(self, session: McpSession | None, method: str) -> Iterator[None]:
        """Serve one ``method`` call of ``session`` (:meth:`place`) under a scope :meth:`cut_off` can cancel; a call
        so cancelled raises ``Unavailable`` (any other cancellation goes on as it came)."""
        with self.place(session, method), anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                yield
            except anyio.get_cancelled_exc_class():
                if self.stopping:
                    self.cut_off_count += 1
                raise
            finally:
                self._scopes.discard(scope)
        if scope.cancelled_caught:
            raise Unavailable(
                "the server is stopping and cut this call off before it finished; it may or may not have taken "
                "effect: check, or retry it once the server is back"
            )

    def cut_off(self) -> None:
        """Cancel every call in flight (the server is stopping; each counts in :attr:`cut_off_count` as it ends)."""
        self.stopping = True
        for scope in list(self._scopes):
            scope.cancel()


__all__ = ["REFUSAL_LOG_EVERY_SECONDS", "REFUSED_REASON", "InFlightCalls", "McpSession", "connection_of", "session_of"]
