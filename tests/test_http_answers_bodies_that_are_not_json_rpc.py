"""Over Streamable HTTP, a POST whose body is JSON but not a JSON-RPC 2.0 message is answered 400 with -32600
"Invalid Request", echoing its id when it can be read, as stdio answers such a line, whichever protocol version
the request speaks (the SDK's transport answered -32602 with pydantic's validation errors on the handshake protocol);
a body that is not JSON gets -32700; a session's requests go on being served. A request whose id is not a string or
an integer (1.5, true, null) is refused the same way, with id null, instead of being taken for a notification (202)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http_helpers import ServerProcess, server_env

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
NOT_MESSAGES: dict[str, tuple[bytes, int | str | None]] = {
    "no jsonrpc member, numeric id": (b'{"id":5,"method":"ping"}', 5),
    "method that is not a string, string id": (b'{"jsonrpc":"2.0","id":"abc","method":7}', "abc"),
    "wrong jsonrpc version": (b'{"jsonrpc":"1.0","id":8,"method":"ping"}', 8),
    "a batch": (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', None),
    "a number": (b"42", None),
}

NOT_IDS = {"fractional": b"1.5", "integral float": b"1.0", "boolean": b"true", "null": b"null", "object": b"{}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db: Path = tmp_path_factory.mktemp("http-shape") / "memory.db"
    with ServerProcess(server_env(db)) as srv:
        yield srv


def _handshake(client: httpx.Client, url: str) -> dict[str, str]:
    """The headers of a session opened with the 2025-11-25 handshake."""
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    opened = client.post(url, headers=ACCEPT, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init})
    assert opened.status_code == 200
    headers = {**ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    client.post(url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return headers


@pytest.mark.parametrize(("body", "id"), NOT_MESSAGES.values(), ids=NOT_MESSAGES.keys())
def test_json_that_is_not_a_message_gets_invalid_request_on_every_protocol(
    server: ServerProcess, body: bytes, id: int | str | None
) -> None:
    url = f"{server.url}/mcp"
    with httpx.Client(timeout=10) as client:
        session = _handshake(client, url)
        for headers in (ACCEPT, session, {**ACCEPT, "mcp-protocol-version": "2026-07-28"}):
            answer = client.post(url, headers=headers, content=body)
            assert answer.status_code == 400, answer.text
            error = answer.json()
            assert error["id"] == id and error["error"]["code"] == -32600, error
            assert error["error"]["message"].startswith("Invalid Request"), error
        ping = client.post(url, headers=session, json={"jsonrpc": "2.0", "id": 2, "method": "ping"})
        assert ping.status_code == 200 and '"result":{}' in ping.text


def test_a_body_that_is_not_json_gets_a_parse_error(server: ServerProcess) -> None:
    url = f"{server.url}/mcp"
    with httpx.Client(timeout=10) as client:
        session = _handshake(client, url)
        for headers in (ACCEPT, session):
            answer = client.post(url, headers=headers, content=b"hello, server")
            assert answer.status_code == 400 and answer.json()["error"]["code"] == -32700


@pytest.mark.parametrize("id", NOT_IDS.values(), ids=NOT_IDS.keys())
def test_a_request_whose_id_is_not_a_string_or_integer_is_refused_not_accepted(
    server: ServerProcess, id: bytes
) -> None:
    url = f"{server.url}/mcp"
    body = b'{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"list_sessions","arguments":{}}}' % id
    with httpx.Client(timeout=10) as client:
        session = _handshake(client, url)
        for headers in (ACCEPT, session, {**ACCEPT, "mcp-protocol-version": "2026-07-28"}):
            answer = client.post(url, headers=headers, content=body)
            assert answer.status_code == 400, answer.text
            error = answer.json()
            assert error["id"] is None and error["error"]["code"] == -32600, error
