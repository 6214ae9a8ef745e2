"""``/readyz`` (no token needed) asks each store one trivial question, and concurrent requests share it.

It used to run ``doctor``'s full check per request: ``COUNT(*)`` of the sessions and episodes tables (three counts on
Postgres, one of them of the episodes without a vector) and Redis ``INFO`` twice. On a file of a million sessions a
flood of unauthenticated probes slowed every tenant's calls from milliseconds to seconds and made ``/readyz`` itself
answer 503 (a balancer would have pulled a healthy instance).

Counted, not timed: the SQL statements sent through the durable store's engine (SQLAlchemy's
``before_cursor_execute``, as ``tests/conftest.py`` counts a lifecycle call's) and the commands sent by the Redis
client, while requests go through the ASGI app in process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import event

from mcp_memory.config import Settings
from mcp_memory.server import create_server
from mcp_memory.server.http import build_app
from mcp_memory.stores.redis.store import RedisWorkingStore

pytestmark = pytest.mark.anyio

CONCURRENT = 50
REUSE_SECONDS = 1.0  # how long a probe's result answers (docs/configuration.md, server/readiness.py)


class Clock:
    """The readiness clock of the app: time passes only when the test moves it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def readyz_client(
    settings: Settings, clock: Clock | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, list[str]]]]:
    """An HTTP client of the app on started stores, and what the stores are sent: SQL statements through the
    durable store's engine ("sql") and Redis commands ("redis")."""
    server = create_server(settings)
    app = build_app(server, readiness_clock=clock or Clock())
    sent: dict[str, list[str]] = {"sql": [], "redis": []}

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent["sql"].append(statement)

    async with server.runtime as rt:
        engine = rt.store._require_engine().sync_engine  # type: ignore[attr-defined]
        working = rt.working_store
        if isinstance(working, RedisWorkingStore):
            client = working.client
            send = client.execute_command

            async def noted(*args: Any, **options: Any) -> Any:
                sent["redis"].append(str(args[0]).upper())
                return await send(*args, **options)

            client.execute_command = noted
        event.listen(engine, "before_cursor_execute", note)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as h:
                yield h, sent
        finally:
            event.remove(engine, "before_cursor_execute", note)


@pytest.mark.backends("sqlite", "redis", "postgres")
async def test_readyz_sends_each_store_one_trivial_request(
    backend: str, make_settings: Callable[..., Settings]
) -> None:
    async with readyz_client(make_settings()) as (h, sent):
        r = await h.get("/readyz")
        assert (r.status_code, r.json()) == (200, {"status": "ready"})
    assert len(sent["sql"]) == 1, sent["sql"]
    assert "count" not in sent["sql"][0].lower()
    assert sent["redis"] == (["PING"] if backend == "redis" else [])


@pytest.mark.backends("sqlite", "redis")
async def test_concurrent_readyz_requests_share_one_probe(backend: str, make_settings: Callable[..., Settings]) -> None:
    clock = Clock()
    async with readyz_client(make_settings(), clock) as (h, sent):
        codes: list[int] = []

        async def probe() -> None:
            codes.append((await h.get("/readyz")).status_code)

        async with anyio.create_task_group() as group:
            for _ in range(CONCURRENT):
                group.start_soon(probe)
        assert codes == [200] * CONCURRENT
        assert len(sent["sql"]) == 1, sent["sql"]
        assert len(sent["redis"]) == (1 if backend == "redis" else 0)

        # Within the reuse interval the result answers; past it the next request probes again, once.
        clock.now += REUSE_SECONDS - 0.01
        assert (await h.get("/readyz")).status_code == 200
        assert len(sent["sql"]) == 1, sent["sql"]
        clock.now += 0.01
        assert (await h.get("/readyz")).status_code == 200
        assert len(sent["sql"]) == 2, sent["sql"]
        assert len(sent["redis"]) == (2 if backend == "redis" else 0)
