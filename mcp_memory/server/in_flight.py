"""The calls a server is serving (tool calls, resource reads, prompts), so that a stop can cut them off itself.

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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio

from mcp_memory.errors import Unavailable


class InFlightCalls:
    """The cancel scopes of the calls being served, and how many calls a stop has cut off."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self.stopping = False
        """Set when the server starts to stop: from then on a call that is cancelled counts as cut off."""
        self.cut_off_count = 0

    @contextmanager
    def track(self) -> Iterator[None]:
        """Serve one call under a scope :meth:`cut_off` can cancel; a call so cancelled raises ``Unavailable``
        (any other cancellation goes on as it came)."""
        with anyio.CancelScope() as scope:
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


__all__ = ["InFlightCalls"]
