"""A message posted to an SSE session (``/messages/``) that is not a JSON-RPC message is refused (400: -32600 for
JSON that is not JSON-RPC, the SDK's "Could not parse message" for anything else), and neither the body nor any part
of it reaches the log: the SDK logged such a body at ERROR with a traceback quoting it, and a body may hold a value
meant to be stored. One WARNING line says why, without the input; the session goes on answering.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http_helpers import INITIALIZE, ServerProcess, server_env, sse_data
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio

SECRET = "sk-not-for-the-log-7f3a"
NOT_MESSAGES = {
    "not JSON (cut off)": '{"jsonrpc":"2.0","id":1,"params":{"value":"' + SECRET + '"}',
    "JSON, not JSON-RPC": json.dumps({"jsonrpc": "1.0", "id": 2, "method": "x", "params": {"value": SECRET}}),
    "a JSON string": json.dumps(SECRET),
    "empty": "",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(server_env(tmp_path / "memory.db")) as proc:
        yield proc


async def test_a_malformed_sse_message_is_refused_without_logging_it(server: ServerProcess) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as h,
        h.stream("GET", "/sse") as stream,
    ):
        lines = stream.aiter_lines()
        endpoint = await sse_data(lines)
        post = {"content-type": "application/json"}
        assert (await h.post(endpoint, json=INITIALIZE, headers=post)).status_code == 202
        assert json.loads(await sse_data(lines))["id"] == 1

        for name, body in NOT_MESSAGES.items():
            answer = await h.post(endpoint, content=body, headers=post)
            assert answer.status_code == 400 and SECRET not in answer.text, name
            if name.startswith(("not JSON", "empty")):
                assert answer.text == "Could not parse message", name
            else:  # tests/test_http_sse_answers_invalid_requests_with_32600.py
                assert answer.json()["error"]["code"] == -32600, name

        assert (await h.post(endpoint, json={"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers=post)).is_success
        assert json.loads(await sse_data(lines)) == {"jsonrpc": "2.0", "id": 3, "result": {}}

    refused = "refused a message to an SSE session"

    def logged() -> bool:
        log = "".join(server.log)
        return SECRET in log or log.count(refused) == len(NOT_MESSAGES)

    wait_until(logged, what="the refusals logged")
    log = "".join(server.log)
    assert SECRET not in log and "Traceback" not in log and " ERROR " not in log, log
    assert log.count(refused) == len(NOT_MESSAGES), log
