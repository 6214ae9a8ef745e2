"""Dates at the ends of the calendar are answered, never ``internal``: a query naming an ISO month or day that has
no end within year 9999 (or names year 0) reads as naming no period, and a ``since`` or ``before`` that falls before
year 1 or after 9999 in UTC bounds the search or the forget as the first or last instant would. On every store."""

from __future__ import annotations

import uuid

import pytest
from mcp import Client

from tests.http_helpers import ok

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def test_queries_and_filters_at_the_ends_of_the_calendar(client: Client) -> None:
    p, a = str(uuid.uuid4()), str(uuid.uuid4())
    recorded = {"project_id": p, "agent_instance_id": a, "task_type": "t", "outcome": "success"}
    await ok(client, "record_episode", **recorded, task_description="release notes written")

    def found(page: dict[str, object]) -> list[object]:
        return [e["task_description"] for e in page["episodes"]]  # type: ignore[index, attr-defined]

    for query in ("release notes 9999-12", "release 0000-05", "release on 9999-12-31", "release 0000-01-01"):
        assert found(await ok(client, "search_episodes", project_id=p, query=query)) == ["release notes written"]
    earliest, latest = "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"
    assert found(await ok(client, "search_episodes", project_id=p, query="release", since=earliest)) == [
        "release notes written"
    ]
    assert found(await ok(client, "search_episodes", project_id=p, query="release", since=latest)) == []
    assert await ok(client, "forget_episodes", project_id=p, before=earliest, confirm=True) == {"forgotten": 0}
    assert await ok(client, "forget_episodes", project_id=p, before=latest, confirm=True) == {"forgotten": 1}
