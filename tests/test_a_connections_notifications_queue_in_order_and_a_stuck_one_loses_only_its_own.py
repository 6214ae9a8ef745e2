"""One connection's notifications (``mcp_memory.server.delivery``): queued without waiting and sent in the
background, in the order queued, a URI already waiting not queued twice; a connection whose sends wait past
``NOTIFY_TIMEOUT``, or whose queue is full, loses its pending notifications with one WARNING, and later ones are
tried again; a closed connection gets nothing more."""

from __future__ import annotations

import logging
from typing import cast

import anyio
import pytest
from mcp.server.connection import Connection
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated

from mcp_memory.server import delivery
from mcp_memory.server.background import BackgroundTasks
from mcp_memory.server.delivery import Delivery
from mcp_memory.server.subscriptions import ProjectResourcesListChanged
from tests.waiting import until

pytestmark = pytest.mark.anyio

A, B, C = ResourceUpdated("memory://a"), ResourceUpdated("memory://b"), ResourceUpdated("memory://c")


class Stream:
    """A connection's stream: records what was sent; each send waits until ``release`` while ``held``."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.held = True
        self.release = anyio.Event()
        self.waiting = anyio.Event()

    async def send_resource_updated(self, uri: str) -> None:
        await self._wait()
        self.sent.append(uri)

    async def send_resource_list_changed(self) -> None:
        await self._wait()
        self.sent.append("list_changed")

    async def _wait(self) -> None:
        if self.held:
            self.waiting.set()
            await self.release.wait()


def delivery_to(stream: Stream, background: BackgroundTasks, limit: int = 100) -> Delivery:
    return Delivery(cast(Connection, stream), background, limit, "tester")


async def until_sent(stream: Stream, count: int) -> None:
    await until(lambda: len(stream.sent) >= count, what=f"{count} notification(s) sent")


def drop_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == delivery.__name__ and r.levelno == logging.WARNING]


async def test_notifications_go_out_in_order_and_a_queued_uri_is_not_queued_twice() -> None:
    background, stream = BackgroundTasks(), Stream()
    async with background.serving():
        out = delivery_to(stream, background)
        out.push([A])  # returns at once: the send waits in the background
        with anyio.fail_after(5):
            await stream.waiting.wait()
        out.push([B, A, ProjectResourcesListChanged(), C])
        out.push([B, ResourcesListChanged(), A])  # all still queued: nothing new
        assert out.pending == 4 and stream.sent == []
        stream.release.set()
        await until_sent(stream, 5)
        assert stream.sent == ["memory://a", "memory://b", "memory://a", "list_changed", "memory://c"]
        out.push([A])  # sent, so queued again
        await until_sent(stream, 6)
        assert stream.sent[-1] == "memory://a"


async def test_a_connection_that_stops_reading_loses_its_pending_notifications_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(delivery, "NOTIFY_TIMEOUT", 0.05)
    background, stream = BackgroundTasks(), Stream()
    async with background.serving():
        out = delivery_to(stream, background)
        out.push([A, B, C])
        await until(lambda: not out.pending and drop_warnings(caplog), what="the pending notifications dropped")
        assert drop_warnings(caplog) == [
            "dropped 3 pending resource notification(s) of a connection of 'tester': a notification waited 0.05 s "
            "for the client to read its stream; later ones are still tried (logged once per connection)"
        ]
        stream.held = False  # the client reads again: what comes next is sent
        stream.release.set()
        out.push([C])
        await until_sent(stream, 1)
        assert stream.sent == ["memory://c"] and len(drop_warnings(caplog)) == 1


async def test_a_full_queue_is_dropped_rather_than_grown(caplog: pytest.LogCaptureFixture) -> None:
    background, stream = BackgroundTasks(), Stream()
    async with background.serving():
        out = delivery_to(stream, background, limit=2)
        out.push([A])
        with anyio.fail_after(5):
            await stream.waiting.wait()
        out.push([B, C])
        assert out.pending == 2
        out.push([ResourcesListChanged()])  # a third: past the limit
        assert out.pending == 0 and len(drop_warnings(caplog)) == 1
        assert "its queue of notifications is full" in drop_warnings(caplog)[0]
        stream.release.set()
        await until_sent(stream, 1)
        assert stream.sent == ["memory://a"]


async def test_a_closed_connection_gets_nothing_more() -> None:
    background, stream = BackgroundTasks(), Stream()
    async with background.serving():
        out = delivery_to(stream, background)
        out.push([A, B])
        with anyio.fail_after(5):
            await stream.waiting.wait()
        out.close()  # the send in progress is cancelled, B is forgotten
        stream.release.set()
        out.push([C])
        await anyio.sleep(0.05)
        assert stream.sent == [] and out.pending == 0
