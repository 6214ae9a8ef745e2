"""Two ``delete_session`` calls of one session on two servers (working memory in Redis) answer as if one came after
the other, as SPEC.md's answers are defined for calls in turn: the second waits for the first (which holds the
session's durable seal) and is ``not_found`` once the first has deleted it, or deletes it itself if the first
failed. Neither answers ``conflict``, which is for a session being terminated. The order is forced with the fault
points (mcp_memory.faults): the first stalls after its Redis erase until the second is seen waiting for it."""

from __future__ import annotations

import uuid

import anyio
import pytest

from mcp_memory import faults
from mcp_memory.errors import Conflict, NotFound, Unavailable
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio


async def race(first: MemoryRuntime, second: MemoryRuntime, first_fails: bool) -> tuple[dict[str, str], Scope]:
    """Delete one session on ``first`` then, while that holds its seal, on ``second``; each one's answer."""
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await first.lifecycle.spawn(*ids, initial_state={"k": 1, "j": 2})
    erased, released = anyio.Event(), anyio.Event()
    stalled = False

    async def order(point: str) -> None:
        nonlocal stalled
        if point == "delete.working_erased" and not stalled:  # the first deletion only
            stalled = True
            erased.set()
            await released.wait()
            if first_fails:
                raise Unavailable("the durable store stopped answering")
        elif point == "delete.waiting":
            released.set()

    answers: dict[str, str] = {}

    async def delete(name: str, rt: MemoryRuntime) -> None:
        try:
            result = await rt.control.delete_session(*ids)
            answers[name] = f"ok, {result.removed.working_keys} keys"
        except (NotFound, Conflict, Unavailable) as exc:
            answers[name] = exc.code
        finally:
            released.set()

    async def then_delete() -> None:
        await erased.wait()
        await delete("second", second)

    with faults.on_fault(order), anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(delete, "first", first)
            tg.start_soon(then_delete)
    return answers, scope


async def test_a_deletion_racing_another_of_the_session_is_not_found_once_that_one_is_done(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    answers, scope = await race(b, a, first_fails=False)
    assert answers == {"first": "ok, 2 keys", "second": "not_found"}
    assert await a.store.get_session(scope) is None


async def test_a_deletion_racing_another_that_fails_deletes_the_session_itself(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    answers, scope = await race(b, a, first_fails=True)
    # (the first erased Redis before it failed: the second finds the keys gone, the session's records not)
    assert answers == {"first": "unavailable", "second": "ok, 0 keys"}
    assert await a.store.get_session(scope) is None
