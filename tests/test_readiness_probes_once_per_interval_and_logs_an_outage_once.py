"""``/readyz``'s :class:`Readiness`: requests arriving while a probe is in flight wait for it instead of starting
their own (a request that goes away does not cancel it for the others); a result answers for ``reuse_seconds``;
an outage is logged when it starts (or another store joins it) and when it ends, not once per request.

A probe of our own (counted, held until released) and a clock of our own, so nothing here waits on time."""

from __future__ import annotations

import logging

import anyio
import pytest

from mcp_memory.server.readiness import Readiness, Report

pytestmark = pytest.mark.anyio

UP: Report = {"durable": {}, "working": {"reachable": True}}
REDIS_DOWN: Report = {"durable": {}, "working": {"reachable": False, "error": "Redis is not reachable"}}
BOTH_DOWN: Report = {"durable": {"reachable": False, "error": "did not answer"}, "working": REDIS_DOWN["working"]}


class Probe:
    """Answers ``report``; counts its runs; each run waits for ``release`` while ``hold`` is set."""

    def __init__(self) -> None:
        self.report: Report = UP
        self.runs = 0
        self.hold = False
        self.release = anyio.Event()
        self.started = anyio.Event()

    async def __call__(self) -> Report:
        self.runs += 1
        self.started.set()
        if self.hold:
            await self.release.wait()
        return self.report


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_requests_during_a_probe_share_it() -> None:
    probe, clock = Probe(), Clock()
    readiness = Readiness(probe, clock=clock)
    probe.hold = True
    answers: list[bool] = []

    async def ask() -> None:
        answers.append(await readiness.ready())

    async with anyio.create_task_group() as group:
        for _ in range(30):
            group.start_soon(ask)
        await probe.started.wait()
        await anyio.sleep(0.01)  # every request is waiting on the one probe
        assert probe.runs == 1 and answers == []
        probe.release.set()
    assert answers == [True] * 30 and probe.runs == 1


async def test_a_request_that_goes_away_does_not_cancel_the_probe() -> None:
    probe, clock = Probe(), Clock()
    readiness = Readiness(probe, clock=clock)
    probe.hold = True
    async with anyio.create_task_group() as group:
        group.start_soon(readiness.ready)
        await probe.started.wait()
        group.cancel_scope.cancel()  # the client disconnected
    probe.release.set()
    assert await readiness.ready() is True
    assert probe.runs == 1


async def test_a_result_answers_for_the_reuse_interval_then_a_new_probe_runs() -> None:
    probe, clock = Probe(), Clock()
    readiness = Readiness(probe, clock=clock, reuse_seconds=1.0)
    assert await readiness.ready() is True
    probe.report = REDIS_DOWN
    clock.now += 0.9
    assert await readiness.ready() is True  # still the last result
    assert probe.runs == 1
    clock.now += 0.1
    assert await readiness.ready() is False
    assert probe.runs == 2


async def test_an_outage_is_logged_when_it_starts_and_ends_not_per_request(caplog: pytest.LogCaptureFixture) -> None:
    probe, clock = Probe(), Clock()
    readiness = Readiness(probe, clock=clock)

    async def probes(report: Report, times: int) -> list[bool]:
        probe.report = report
        answers = []
        for _ in range(times):
            clock.now += 1.0
            answers.append(await readiness.ready())
        return answers

    def said() -> list[tuple[int, str]]:
        records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "mcp_memory.server.readiness"]
        caplog.clear()
        return records

    with caplog.at_level(logging.INFO, logger="mcp_memory.server.readiness"):
        assert await probes(UP, 3) == [True] * 3
        assert said() == []
        assert await probes(REDIS_DOWN, 5) == [False] * 5
        [(level, message)] = said()
        assert level == logging.WARNING and "not ready" in message and "Redis is not reachable" in message
        assert await probes(BOTH_DOWN, 3) == [False] * 3  # another store joins the outage: said once
        [(level, message)] = said()
        assert level == logging.WARNING and "did not answer" in message
        assert await probes(REDIS_DOWN, 3) == [False] * 3  # one fewer: nothing new to say
        assert said() == []
        assert await probes(UP, 3) == [True] * 3
        assert said() == [(logging.INFO, "ready again: every store answers")]
        assert await probes(REDIS_DOWN, 2) == [False] * 2  # a new outage
        assert [level for level, _ in said()] == [logging.WARNING]
