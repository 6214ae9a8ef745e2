"""Paging ``list_checkpoints`` with ``next_before``: null on the last page (also a full one), and a page goes on
where the last one ended when the checkpoint its cursor names has been deleted or pruned since (a cleanup loop that
deletes each page, retention pruning the oldest listed one), none skipped; a cursor stays within its own session
and a malformed one is ``invalid_argument``. On every backend, through the SDK's in-process client."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from mcp import Client

from tests.conftest import FakeClock
from tests.http_helpers import error, ok

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


def new_session() -> dict[str, str]:
    return {"project_id": str(uuid.uuid4()), "agent_instance_id": str(uuid.uuid4()), "session_id": "s"}


async def paused(client: Client, s: dict[str, str], n: int, clock: FakeClock | None = None) -> list[str]:
    """A running session with ``n`` checkpoints (one second apart with ``clock``); their ids, oldest first."""
    await ok(client, "spawn", **s, initial_state={"k": 0})
    made = []
    for _ in range(n):
        made.append((await ok(client, "pause", **s))["checkpoint_id"])
        await ok(client, "resume", **s)
        if clock is not None:
            clock.advance(1)
    return made


def ids(page: dict[str, Any]) -> list[str]:
    return [c["checkpoint_id"] for c in page["checkpoints"]]


async def test_the_last_page_has_no_cursor_even_when_it_is_exactly_a_page_long(
    client: Client, clock: FakeClock
) -> None:
    s = new_session()
    made = await paused(client, s, 4, clock)
    whole = await ok(client, "list_checkpoints", **s, limit=4)
    assert ids(whole) == made[::-1] and whole["next_before"] is None
    first = await ok(client, "list_checkpoints", **s, limit=2)
    assert ids(first) == made[:1:-1] and first["next_before"]
    last = await ok(client, "list_checkpoints", **s, limit=2, before=first["next_before"])
    assert ids(last) == made[1::-1] and last["next_before"] is None


async def everything_by_cursor(client: Client, s: dict[str, str], limit: int, delete: str) -> list[str]:
    """Page through the session's checkpoints by ``next_before``, deleting after each page the checkpoints it
    listed (``delete="all"``) or only the one its cursor names (``delete="cursor"``); every id listed, in order."""
    listed: list[str] = []
    page = await ok(client, "list_checkpoints", **s, limit=limit)
    for _ in range(50):
        listed += ids(page)
        for checkpoint_id in ids(page) if delete == "all" else ids(page)[-1:]:
            await ok(client, "delete_checkpoint", **s, checkpoint_id=checkpoint_id)
        if page["next_before"] is None:
            return listed
        page = await ok(client, "list_checkpoints", **s, limit=limit, before=page["next_before"])
    raise AssertionError(f"paging did not end: {listed}")


async def test_a_cleanup_loop_that_deletes_each_page_lists_every_checkpoint_once(
    client: Client, clock: FakeClock
) -> None:
    s = new_session()
    made = await paused(client, s, 7, clock)
    assert await everything_by_cursor(client, s, 2, delete="all") == made[::-1]
    assert ids(await ok(client, "list_checkpoints", **s)) == []


async def test_checkpoints_of_one_instant_page_on_past_a_deleted_cursor_and_none_is_skipped(
    client: Client,
) -> None:
    """The clock stands still: every checkpoint has the same time, so their order is the row order, which a gone
    cursor can no longer place itself in. A cleanup loop still lists each once; deleting only the cursor's
    checkpoint may list one of that instant again, but skips none."""
    s = new_session()
    made = await paused(client, s, 7)
    assert await everything_by_cursor(client, s, 2, delete="all") == made[::-1]
    s = new_session()
    made = await paused(client, s, 7)
    listed = await everything_by_cursor(client, s, 3, delete="cursor")
    assert set(listed) == set(made), listed
    assert [i for i in dict.fromkeys(listed)] == made[::-1], "in order, counting each at its first listing"


async def test_a_page_goes_on_past_the_cursor_checkpoint_that_retention_pruned(
    client: Client, clock: FakeClock
) -> None:
    s = new_session()
    await ok(client, "spawn", **s, initial_state={"k": 0})
    made = []
    for keep in (False, True, False, False):  # the second is kept from pruning
        made.append((await ok(client, "pause", **s, keep=keep))["checkpoint_id"])
        await ok(client, "resume", **s)
        clock.advance(1)
    first = await ok(client, "list_checkpoints", **s, limit=2)
    assert ids(first) == made[:1:-1]
    newest = (await ok(client, "pause", **s, keep_last=1))["checkpoint_id"]  # prunes all it may, the cursor's too
    assert ids(await ok(client, "list_checkpoints", **s)) == [newest, made[1]]
    rest = await ok(client, "list_checkpoints", **s, limit=2, before=first["next_before"])
    assert ids(rest) == [made[1]] and rest["next_before"] is None


async def test_a_cursor_goes_on_by_position_when_its_id_is_given_to_a_newer_checkpoint(
    client: Client, clock: FakeClock
) -> None:
    s = new_session()
    await ok(client, "spawn", **s, initial_state={"k": 0})
    for i in range(4):
        await ok(client, "pause", **s, checkpoint_id=f"c{i}")
        await ok(client, "resume", **s)
        clock.advance(1)
    first = await ok(client, "list_checkpoints", **s, limit=2)
    assert ids(first) == ["c3", "c2"]
    await ok(client, "delete_checkpoint", **s, checkpoint_id="c2")
    await ok(client, "pause", **s, checkpoint_id="c2")  # the newest now
    rest = await ok(client, "list_checkpoints", **s, limit=2, before=first["next_before"])
    assert ids(rest) == ["c1", "c0"] and rest["next_before"] is None


async def test_a_plain_checkpoint_id_still_pages_and_a_missing_one_is_not_found(
    client: Client, clock: FakeClock
) -> None:
    s = new_session()
    made = await paused(client, s, 3, clock)
    assert ids(await ok(client, "list_checkpoints", **s, before=made[2])) == made[1::-1]
    await ok(client, "delete_checkpoint", **s, checkpoint_id=made[2])
    assert (await error(client, "list_checkpoints", **s, before=made[2])).startswith("not_found:")


async def test_a_cursor_stays_in_its_own_session_and_a_malformed_one_is_invalid(
    client: Client, clock: FakeClock
) -> None:
    """A cursor (or a checkpoint id) of another session names nothing in this one: a cursor pages this session's
    own checkpoints by its time, and another session's id is ``not_found`` exactly as an id nobody has."""
    mine, theirs = new_session(), new_session()
    await ok(client, "spawn", **mine, initial_state={"k": 0})
    await ok(client, "spawn", **theirs, initial_state={"k": 0})
    own = []
    for i in range(4):
        own.append((await ok(client, "pause", **mine))["checkpoint_id"])
        clock.advance(1)
        if i == 1:
            await ok(client, "pause", **theirs, checkpoint_id="theirs")
            await ok(client, "pause", **theirs, checkpoint_id="theirs-newer")
            clock.advance(1)
    cursor = (await ok(client, "list_checkpoints", **theirs, limit=1))["next_before"]
    assert cursor
    assert ids(await ok(client, "list_checkpoints", **mine, before=cursor)) == own[1::-1]
    missing = await error(client, "list_checkpoints", **mine, before="theirs")
    assert missing.startswith("not_found:")
    assert missing.replace("theirs", "x") == (await error(client, "list_checkpoints", **mine, before="x"))

    for malformed in ("~", "~not-base64!", "~e30", "~" + "A" * 40, "has space", "x" * 129):
        answer = await error(client, "list_checkpoints", **mine, before=malformed)
        assert answer.startswith("invalid_argument:"), (malformed, answer)
