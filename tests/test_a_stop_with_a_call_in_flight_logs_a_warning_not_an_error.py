"""SIGTERM while a tool call is in flight is a normal, documented stop: the server's stderr has no ERROR and no
traceback, and one WARNING says how many calls the stop cut off. Before, the call on the 2026 protocol (served in its
own HTTP request) outlived uvicorn's graceful timeout, which logged "ERROR: Cancel 1 running task(s), timeout
graceful shutdown exceeded" and an "Exception in ASGI application" traceback. Now the server cuts the call off
itself after its grace and answers it ``unavailable`` (the 2026 protocol's client, whose request is still open,
gets that answer); on the other transports the call ends with the stream the stop closes, and is counted too.

The call is held in flight by a Redis stopped with SIGSTOP (``tests.stopping_serve``, shared with the test of the
stop's time and exit code, test_serve_stops_on_signals.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.redis_servers import RedisServer
from tests.stopping_serve import sigterm_with_a_call_in_flight

pytestmark = pytest.mark.anyio

LOGGED_ERROR = re.compile(r"^ERROR:|\sERROR\s|Traceback", re.MULTILINE)
CUT_OFF = "stopping: cut off 1 call in flight"


@pytest.mark.parametrize("transport", ["http", "http-legacy", "sse"])
async def test_sigterm_during_a_slow_call_logs_one_warning_and_no_error(
    tmp_path: Path, own_redis: RedisServer, transport: str
) -> None:
    stop = await sigterm_with_a_call_in_flight(tmp_path, own_redis, transport)
    log = "".join(stop.log)
    assert not LOGGED_ERROR.search(log), log
    assert log.count(CUT_OFF) == 1, log
    assert next(line for line in stop.log if CUT_OFF in line).split()[2] == "WARNING", log
    if transport == "http":
        # Its request was still open: it got the answer, not a dropped connection.
        answers = stop.answers
        assert len(answers) == 1 and getattr(answers[0], "is_error", False), answers
        assert answers[0].content[0].text.startswith("unavailable: the server is stopping"), answers
