"""Contract of :class:`~mcp_memory.stores.ports.UnfinishedTerminates` (every durable adapter): a terminate recorded
under a seal's token leaves the session unfinished until that terminate says it finished its job; whoever finishes it
for a terminate that never will claims it first, only once the lease is over (or ended), and one claim holds off the
next for a lease; the sweep lists the unfinished sessions whose lease ran out, a batch at a time, each after the place
of the last one before, whether that session is still there or deleted since.
"""

from __future__ import annotations

import pytest

from mcp_memory.models import Scope, SessionInfo
from tests.conftest import StorePair, new_scope
from tests.contract.test_durable_store import LEASE, T0, TOKEN, at, create, event

pytestmark = pytest.mark.anyio

OTHER = "terminate-b"


async def session(stores: StorePair, scope: Scope) -> SessionInfo:
    info = await stores.durable.get_session(scope)
    assert info is not None
    return info


async def listed(stores: StorePair, before: float) -> list[Scope]:
    return [item.scope for item in await stores.durable.unfinished_terminates(before, 100)]


async def test_a_terminate_recorded_under_a_seal_is_unfinished_until_its_job_is_claimed_and_finished(
    stores: StorePair,
) -> None:
    durable = stores.durable
    scope, untokened = await create(stores), await create(stores)
    assert await durable.seal(scope, TOKEN, T0, LEASE)
    terminated = event("terminate", T0 + 1, items_cleared=1, metadata={"run": 7})
    await durable.record_terminate(scope, None, None, {"done": True}, terminated, None, TOKEN)
    # Recorded without a token (as an import or an earlier release records): finished from the start.
    await durable.record_terminate(untokened, None, None, {"done": True}, event("terminate", T0 + 1))
    assert (await session(stores, scope)).terminate_unfinished
    assert not (await session(stores, untokened)).terminate_unfinished

    # Listed once its lease has run out; claimed only then, and only for the terminate that recorded it.
    assert await listed(stores, T0 + LEASE - 1) == []
    assert await listed(stores, T0 + LEASE) == [scope]
    assert await durable.claim_terminate(scope, TOKEN, T0 + LEASE - 1, LEASE) is None
    assert await durable.claim_terminate(scope, OTHER, T0 + LEASE, LEASE) is None
    assert await durable.claim_terminate(scope, TOKEN, T0 + LEASE, LEASE) == {"run": 7}
    # The claim is a lease of its own, under the recording terminate's token: a second finisher waits for it.
    info = await session(stores, scope)
    assert info.terminate_unfinished and info.seal_token == TOKEN and info.seal_until == at(T0 + 2 * LEASE)
    assert await durable.claim_terminate(scope, TOKEN, T0 + LEASE + 1, LEASE) is None
    assert await listed(stores, T0 + 2 * LEASE - 1) == []

    # A finisher whose step failed ends the lease: listed and claimed at once.
    await durable.end_terminate_lease(scope, TOKEN)
    assert await listed(stores, T0) == [scope]
    assert await durable.claim_terminate(scope, TOKEN, T0 + LEASE + 2, LEASE) == {"run": 7}

    await durable.finish_terminate(scope, OTHER)  # not its terminate: nothing changes
    assert (await session(stores, scope)).terminate_unfinished
    await durable.finish_terminate(scope, TOKEN)
    assert not (await session(stores, scope)).terminate_unfinished
    assert await listed(stores, T0 + 10 * LEASE) == []
    assert await durable.claim_terminate(scope, TOKEN, T0 + 10 * LEASE, LEASE) is None
    await durable.finish_terminate(new_scope(), TOKEN)  # no session: nothing to do
    assert (await session(stores, scope)).terminate_result == {"done": True}


async def test_a_session_never_terminated_is_neither_listed_nor_claimed(stores: StorePair) -> None:
    scope = await create(stores)
    assert await stores.durable.seal(scope, TOKEN, T0, LEASE)  # sealed by a terminate that never recorded it
    assert await stores.durable.unfinished_terminates(T0 + 10 * LEASE, 100) == []
    assert await stores.durable.claim_terminate(scope, TOKEN, T0 + 10 * LEASE, LEASE) is None
    await stores.durable.finish_terminate(scope, TOKEN)
    info = await session(stores, scope)
    assert info.sealed and not info.terminate_unfinished and info.status != "terminated"


async def test_a_listing_goes_on_after_the_one_it_is_given_even_once_that_session_is_deleted(
    stores: StorePair,
) -> None:
    durable = stores.durable
    scopes = [await create(stores) for _ in range(4)]
    for scope in scopes:
        assert await durable.seal(scope, TOKEN, T0, LEASE)
        await durable.record_terminate(scope, None, None, {}, event("terminate", T0 + 1), None, TOKEN)
    before = T0 + LEASE

    first = await durable.unfinished_terminates(before, 2)
    assert [item.scope for item in first] == scopes[:2]
    # Each named by its session (as the sweep's warnings name it), and continued after by its place alone.
    assert str(first[-1]) == str(scopes[1])
    await durable.delete_session(scopes[1], True, before)
    assert [item.scope for item in await durable.unfinished_terminates(before, 2, first[-1])] == scopes[2:]
    assert [item.scope for item in await durable.unfinished_terminates(before, 2, first[0])] == scopes[2:]
    last = (await durable.unfinished_terminates(before, 1, first[-1]))[0]
    assert last.scope == scopes[2]
    await durable.delete_session(scopes[3], True, before)
    assert await durable.unfinished_terminates(before, 2, last) == []
