"""One connection's resource notifications on their way out, sent in the background so that no tool call waits on a
subscriber.

A writing call queues its notifications for each connection that should hear of them (:meth:`Delivery.push`, which
never waits) and answers; one background task per connection at a time (:mod:`.background`) sends them in the
order they were queued. A URI already waiting in the queue is not queued again (the client re-reads the resource
once either way, and the queue stays bounded by the connection's subscriptions). A client that stops reading its
stream (its buffers full) costs only its own notifications: when a send waits longer than :data:`NOTIFY_TIMEOUT`,
or the queue is full, the connection's pending notifications are dropped and a WARNING is logged (once per
connection); later changes are queued and tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

import anyio
from mcp.server.connection import Connection
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated, ServerEvent

from mcp_memory.server.background import BackgroundTasks

logger = logging.getLogger(__name__)

NOTIFY_TIMEOUT: Final = 2.0
"""How long one notification may wait on a client that does not read before the connection's pending
notifications are dropped (only its own background delivery waits, never a tool call)."""

_LIST_CHANGED: Final = ResourcesListChanged()
"""Every ``list_changed`` is the same message on the wire (the project it came from only decides who hears it)."""


class Delivery:
    """The notifications queued for one connection, and the background task sending them (while there are any)."""

    def __init__(self, connection: Connection, background: BackgroundTasks, limit: int, holder: str) -> None:
        self._connection = connection
        self._background = background
        self._limit = limit
        self._holder = holder
        """Whose connection (its grant's label: the token's name and the start of its hash), for the log."""
        self._pending: dict[ServerEvent, None] = {}  # insertion-ordered: the order notifications go out
        self._sending = False
        self._closed = False
        self._scope: anyio.CancelScope | None = None
        self._warned = False

    @property
    def pending(self) -> int:
        """How many notifications wait to be sent."""
        return len(self._pending)

    def push(self, events: Iterable[ServerEvent]) -> None:
        """Queue ``events`` (already filtered to what this connection may hear) and make sure they are being sent;
        returns at once."""
        if self._closed:
            return
        for event in events:
            key = _LIST_CHANGED if isinstance(event, ResourcesListChanged) else event
            if key in self._pending:
                continue
            if len(self._pending) >= self._limit:
                self._drop("its queue of notifications is full")
                return
            self._pending[key] = None
        if self._pending and not self._sending:
            if self._background.start_soon(self._drain):
                self._sending = True
            else:
                self._drop("the server is not serving (no lifespan is open)")

    def close(self) -> None:
        """The connection ended: forget what is pending and stop a send in progress."""
        self._closed = True
        self._pending.clear()
        if self._scope is not None:
            self._scope.cancel()

    async def _drain(self) -> None:
        try:
            with anyio.CancelScope() as self._scope:
                while self._pending and not self._closed:
                    event = next(iter(self._pending))
                    del self._pending[event]
                    with anyio.move_on_after(NOTIFY_TIMEOUT) as timer:
                        await self._send(event)
                    if timer.cancelled_caught:
                        why = f"a notification waited {NOTIFY_TIMEOUT:g} s for the client to read its stream"
                        self._drop(why, unsent=1)
        except Exception:  # a failure here would cancel the lifespan the task runs in
            self._pending.clear()
            logger.warning("delivering notifications to a connection of %r failed", self._holder, exc_info=True)
        finally:
            self._scope = None
            self._sending = False

    async def _send(self, event: ServerEvent) -> None:
        if isinstance(event, ResourceUpdated):
            await self._connection.send_resource_updated(event.uri)
        else:
            await self._connection.send_resource_list_changed()

    def _drop(self, why: str, unsent: int = 0) -> None:
        dropped = len(self._pending) + unsent
        self._pending.clear()
        if not self._warned:
            self._warned = True
            logger.warning(
                "dropped %d pending resource notification(s) of a connection of %r: %s; later ones are still tried "
                "(logged once per connection)",
                dropped,
                self._holder,
                why,
            )


__all__ = ["NOTIFY_TIMEOUT", "Delivery"]
