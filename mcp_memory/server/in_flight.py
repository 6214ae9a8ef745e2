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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext

from mcp_memory.errors import Unavailable


def connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection | None:
    """The SDK's ``Connection`` of a request (a handshake-era SSE stream, stdio server or Streamable HTTP session; on
    2026-07-28, the request alone), or None if the SDK no longer exposes it."""
    # The SDK's ServerSession is built per request and keeps its connection private; the connection is the unit
    # subscriptions live and die with and the cap counts in, so we read it (and do without both if a later SDK
    # moves it).
    connection = getattr(ctx.session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


def session_of(ctx: ServerRequestContext[Any, Any]) -> object | None:
    """The MCP session a request came on, as the object its calls are counted under (None: not known)."""
    connection = connection_of(ctx)
    if connection is None:
        return None
    # A 2026-07-28 request on a stream (SSE, stdio) gets a Connection of its own, but shares the stream's channel
    # with the stream's other requests: that channel is the session. Single-exchange Streamable HTTP requests share
    # one "no channel" sentinel instead, so each of those is a session of its own (its HTTP connection bounds it).
    return connection.outbound if connection.has_standalone_channel else connection


class InFlightCalls:
    """The cancel scopes of the calls being served, how many calls a stop has cut off, and how many calls each MCP
    session has in flight (at most ``per_session``)."""

    def __init__(self, per_session: int) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self.stopping = False
        """Set when the server starts to stop: from then on a call that is cancelled counts as cut off."""
        self.cut_off_count = 0
        self.per_session = per_session
        self._held: dict[int, int] = {}
        """The calls in flight of each MCP session that has any, by the session's ``id()`` (an idle session has no
        entry; while it has one, its calls keep the session alive, so the id names no other object)."""

    @contextmanager
    def place(self, session: object | None) -> Iterator[None]:
        """Hold one of ``session``'s places (:func:`session_of`) for the block, given back however the block ends;
        with every place taken, raise ``Unavailable`` at once. A call of no session (one from Python) is not
        counted."""
        if session is None:
            yield
            return
        key = id(session)
        held = self._held.get(key, 0)
        if held >= self.per_session:
            raise Unavailable(
                f"this MCP session has too many calls in flight: {held}, the most it may have "
                "(max_calls_in_flight_per_mcp_session); retry once one of them has answered"
            )
        self._held[key] = held + 1
        try:
            yield
        finally:
            left = self._held[key] - 1
            if left:
                self._held[key] = left
            else:
                del self._held[key]

    @contextmanager
    def track(self, session: object | None = None) -> Iterator[None]:
        """Serve one call of ``session`` (:meth:`place`) under a scope :meth:`cut_off` can cancel; a call so
        cancelled raises ``Unavailable`` (any other cancellation goes on as it came)."""
        with self.place(session), anyio.CancelScope() as scope:
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


__all__ = ["InFlightCalls", "connection_of", "session_of"]
