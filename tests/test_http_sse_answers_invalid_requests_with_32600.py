"""A message posted to an SSE session (``/messages/``) that is JSON but not a JSON-RPC request, a request whose id is
not a string or an integer (1.5, 1.0, true, null, an object) included, is answered as Streamable HTTP and stdio
answer it: 400 with the JSON-RPC error -32600 "Invalid Request", echoing its id when it is one (else null). Before,
it got the SDK's plain-text 400 "Could not parse message", which names no JSON-RPC error. The session goes on
answering, and each refusal is one WARNING line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http_helpers import INITIALIZE, ServerProcess, server_env, sse_data
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio

POST = {"content-type": "application/json"}
NOT_IDS = {"fractional": b"1.5", "integral float": b"1.0", "boolean": b"true", "null": b"null", "object": b"{}"}
NOT_REQUESTS: dict[str, tuple[bytes, int | str | None]] = {
    "no jsonrpc member, numeric id": (b'{"id":5,"method":"ping"}', 5),
    "method that is not a string, string id": (b'{"jsonrpc":"2.0","id":"abc","method":7}', "abc"),
    "a batch": (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', None),
    **{
        f"id {name}": (b'{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"list_sessions"}}' % id, None)
        for name, id in NOT_IDS.items()
    },
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(server_env(tmp_path / "memory.db")) as proc:
        yield proc


async def test_an_sse_message_with_an_invalid_id_or_shape_gets_invalid_request(server: ServerProcess) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as h,
        h.stream("GET", "/sse") as stream,
    ):
        lines = stream.aiter_lines()
        endpoint = await sse_data(lines)
        assert (await h.post(endpoint, json=INITIALIZE, headers=POST)).status_code == 202
        assert json.loads(await sse_data(lines))["id"] == 1

        for name, (body, id) in NOT_REQUESTS.items():
            answer = await h.post(endpoint, content=body, headers=POST)
            assert answer.status_code == 400, (name, answer.text)
            assert answer.headers["content-type"] == "application/json", name
            error = answer.json()
            assert error["jsonrpc"] == "2.0" and error["id"] == id, (name, error)
            assert error["error"]["code"] == -32600, (name, error)
            assert error["error"]["message"].startswith("Invalid Request"), (name, error)

        # Nothing of them was run or answered on the stream: the next event is the ping's answer.
        assert (await h.post(endpoint, json={"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers=POST)).is_success
        assert json.loads(await sse_data(lines)) == {"jsonrpc": "2.0", "id": 3, "result": {}}

    refused = "refused a message to an SSE session"
    wait_until(lambda: "".join(server.log).count(refused) >= len(NOT_REQUESTS), what="the refusals logged")
    log = "".join(server.log)
    assert log.count(refused) == len(NOT_REQUESTS) and " ERROR " not in log, log
