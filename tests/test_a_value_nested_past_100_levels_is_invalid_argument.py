"""A value, initial state or metadata nested 100 levels deep is stored and read back as given; one level more is
``invalid_argument`` and writes nothing (docs/contract.md, the fixed value rules). Deeper values could not be
exported and imported again: JSON readers stop near 200 levels. Through the SDK's client, on every store."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.json_values import MAX_JSON_DEPTH
from mcp_memory.server.assembly import create_server
from tests.refused_calls import SESSION_URI, assert_as_it_was, running_session
from tests.test_string_arguments_round_trip import Ids, ok, read, refused

pytestmark = pytest.mark.anyio


def nested(levels: int) -> Any:
    """Arrays and objects alternating, ``levels`` deep, around one string."""
    value: Any = "bottom"
    for level in range(levels):
        value = [value] if level % 2 else {"in": value}
    return value


async def test_a_value_100_levels_deep_round_trips_and_101_is_refused(settings_on_every_store: Settings) -> None:
    deepest, too_deep = nested(MAX_JSON_DEPTH), nested(MAX_JSON_DEPTH + 1)
    async with Client(create_server(settings_on_every_store)) as c:
        ids = Ids()
        await ok(c, "spawn", **ids.scope(initial_state={"s": deepest}, metadata={"m": nested(MAX_JSON_DEPTH - 1)}))
        await ok(c, "memory_set", **ids.scope(key="k", value=deepest))
        assert (await ok(c, "memory_get", **ids.scope(key="k")))["value"] == deepest
        session = await read(c, SESSION_URI.format(p=ids.p, a=ids.a, s=ids.s))
        assert session["working_memory"] == {"s": deepest, "k": deepest}

        fresh = Ids()
        await refused(c, "spawn", "invalid_argument", **fresh.scope(initial_state={"s": too_deep}))
        await refused(c, "spawn", "invalid_argument", **fresh.scope(metadata={"m": nested(MAX_JSON_DEPTH)}))
        await ok(c, "spawn", **fresh.scope())  # neither refused spawn made the session

        ids = Ids()
        checkpoint = await running_session(c, ids)
        await refused(c, "memory_set", "invalid_argument", **ids.scope(key="k", value=too_deep))
        await refused(c, "memory_set", "invalid_argument", **ids.scope(key="new", value=too_deep))
        await refused(c, "pause", "invalid_argument", **ids.scope(metadata={"m": nested(MAX_JSON_DEPTH)}))
        await assert_as_it_was(c, ids, checkpoint, "too deep")
