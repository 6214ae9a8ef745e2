"""The terminate sweep goes on with the sessions listed after one that was deleted (``delete_session`` or ``forget``,
by any server) since it was listed: within a pass, when the last session of a full batch goes while the pass finishes
the ones before it, and across passes, when the session a pass stopped at goes before the next pass.

Before, each listing after the first named the session to go on after, and the durable store looked that session's
row up to find where: gone, the listing answered nothing. The pass ended early, and the sessions of the batches after
waited a whole interval; or the pass after one that had stopped did nothing at all. The listing now goes on after the
row's place in its order, which holds whether or not the row is still there. The deletions are real calls on the
same stores; failures are a trigger of the test's own that fails the durable updates of chosen sessions. Time moves on
a fake clock.
"""

from __future__ import annotations

import logging

import pytest

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.services.periodic import FAILURES_IN_A_ROW
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import FakeClock, new_scope
from tests.cut_off_spawns import ids
from tests.cut_off_terminates import cut_off_terminates, unfinished
from tests.failing_stores import StuckRows, warnings_of

pytestmark = pytest.mark.anyio

INITIAL = {"goal": "ship", "step": 3}
TERMINATE_SWEEP = "mcp_memory.services.terminate_sweep"


async def test_a_pass_goes_on_to_the_next_batch_when_the_last_session_of_a_batch_is_deleted_meanwhile(
    settings_on_every_store: Settings, clock: FakeClock
) -> None:
    async with MemoryRuntime(settings_on_every_store, clock=clock) as rt:
        first, last, next_batch = (new_scope(name) for name in ("first", "last-of-the-batch", "next-batch"))
        await cut_off_terminates(rt, clock, [first, last, next_batch], INITIAL)
        deleted = False

        async def delete_the_last(point: str) -> None:
            # The pass has listed its first batch and is finishing its first session: another call deletes the
            # batch's last one, which the pass then finds gone.
            nonlocal deleted
            if point == "terminate.claiming" and not deleted:
                deleted = True
                await rt.control.delete_session(*ids(last))

        with faults.on_fault(delete_the_last):
            assert await rt.terminate_sweep.run_once(batch=2) == 2
        assert deleted
        assert await rt.store.get_session(last) is None
        assert await unfinished(rt, clock) == []


async def test_the_pass_after_one_that_stopped_goes_on_when_the_session_it_stopped_at_is_deleted(
    settings_on_every_store: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, TERMINATE_SWEEP)
    async with (
        MemoryRuntime(settings_on_every_store, clock=clock) as rt,
        StuckRows(rt.settings.database_url or "") as rows,
    ):
        stuck = [new_scope(f"stuck-{n}") for n in range(FAILURES_IN_A_ROW)]
        good = [new_scope(f"good-{n}") for n in range(2)]
        await cut_off_terminates(rt, clock, stuck + good, INITIAL)
        # The durable store fails to claim the jobs of these (a write of their rows): the pass stops at the last.
        await rows.stick(stuck)
        assert await rt.terminate_sweep.run_once(batch=2) == 0
        [warning] = warnings_of(caplog, TERMINATE_SWEEP)
        assert "stopped" in warning and "stuck-0" in warning, warning

        # The session it stopped at is deleted before the next pass, which goes on with the ones after it.
        await rt.control.delete_session(*ids(stuck[-1]))
        assert await rt.terminate_sweep.run_once(batch=2) == len(good)
        assert warnings_of(caplog, TERMINATE_SWEEP) == []
        assert await unfinished(rt, clock) == [s.session_id for s in stuck[:-1]]

        # Having reached the listing's end, the next pass starts from the first again.
        await rows.unstick_all()
        assert await rt.terminate_sweep.run_once(batch=2) == len(stuck) - 1
        assert await unfinished(rt, clock) == []
