"""On stdio every line gets an answer at once: a line that is not a JSON-RPC message gets a JSON-RPC error
(-32700 parse error with id null, or -32600 invalid request echoing the id when it can be read) and a short log
line on stderr, and the server goes on serving. Before, the SDK's transport dropped such lines without a word
and the client waited for its own timeout (issue 10 defect 4, issue 12 item 7).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.stdio_raw import RawStdioServer

ANSWER_WITHIN = 1.0
"""Seconds: a refused line is answered at once (the parse fails at depth ~200 whatever the line's length)."""

PROJECT = str(uuid.uuid4())
AGENT = str(uuid.uuid4())
SCOPE = {"agent_instance_id": AGENT, "session_id": "raw-1"}
DEEP = 10_000


def _call(arguments_json: bytes, id: int = 41) -> bytes:
    """A tools/call of memory_set whose ``arguments`` are given as raw JSON text."""
    return (
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"memory_set","arguments":' % id
        + arguments_json
        + b"}}"
    )


def _scope_json(**more: bytes) -> bytes:
    fields = [b'"%s":"%s"' % (k.encode(), v.encode()) for k, v in SCOPE.items()]
    fields += [b'"%s":%s' % (k.encode(), v) for k, v in more.items()]
    return b"{" + b",".join(fields) + b"}"


PARSE_ERRORS = {
    "lone high surrogate in a value": _call(_scope_json(key=b'"k"', value=b'"a\\ud800b"')),
    "lone low surrogate in a key": _call(_scope_json(key=b'"\\udc00"', value=b"1")),
    "surrogate as raw UTF-8 bytes": _call(_scope_json(key=b'"k"', value=b'"\xed\xa0\x80"')),
    "bytes that are not UTF-8": _call(_scope_json(key=b'"k"', value=b'"\xff\xfe"')),
    "10,000-deep arrays in a value": _call(_scope_json(key=b'"k"', value=b"[" * DEEP + b"]" * DEEP)),
    "10,000-deep objects in a value": _call(_scope_json(key=b'"k"', value=b'{"a":' * DEEP + b"1" + b"}" * DEEP)),
    "10,000-deep bare array": b"[" * DEEP + b"]" * DEEP,
    "not JSON": b"hello, server",
    "truncated JSON": b'{"jsonrpc":"2.0","id":3,"method":"ping"',
}

INVALID_REQUESTS: dict[str, tuple[bytes, int | str | None]] = {
    "object without jsonrpc or method, numeric id": (b'{"id":5,"foo":1}', 5),
    "method that is not a string, string id": (b'{"jsonrpc":"2.0","id":"abc","method":7}', "abc"),
    "wrong jsonrpc version": (b'{"jsonrpc":"1.0","id":8,"method":"ping"}', 8),
    "boolean id is no id": (b'{"jsonrpc":"2.0","id":true,"method":7}', None),
    "a batch (arrays are not messages)": (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', None),
    "a number": (b"42", None),
}


NOT_IDS = {
    "fractional": b"1.5",
    "integral float": b"1.0",
    "exponent": b"1e3",
    "boolean": b"true",
    "null": b"null",
    "object": b"{}",
    "array": b"[]",
}
"""Ids a request may not have (MCP: a string or an integer, never null); the SDK read each as a notification."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawStdioServer]:
    srv = RawStdioServer(tmp_path_factory.mktemp("stdio-lines"), MCP_MEMORY_PROJECT_ID=PROJECT).initialize()
    assert srv.call_tool("spawn", **SCOPE)["isError"] is False
    try:
        yield srv
    finally:
        srv.close()


def _refused(server: RawStdioServer, line: bytes) -> tuple[dict[str, object], str]:
    """Send ``line``; its answer (within a second) and the log line it caused."""
    logged_from = len(server.log)
    server.send(line)
    answer = server.answer(ANSWER_WITHIN)
    code = answer["error"]["code"]  # type: ignore[index]
    log = server.wait_for_log(lambda text: f"answered {code}" in text, ANSWER_WITHIN, start=logged_from)
    return answer, log


def _still_serving(server: RawStdioServer) -> None:
    assert server.request("ping", id="after")["result"] == {}


@pytest.mark.parametrize("line", PARSE_ERRORS.values(), ids=PARSE_ERRORS.keys())
def test_unparseable_line_gets_parse_error_and_log_line(server: RawStdioServer, line: bytes) -> None:
    answer, log = _refused(server, line)
    assert answer["jsonrpc"] == "2.0" and answer["id"] is None
    assert answer["error"]["code"] == -32700  # type: ignore[index]
    assert answer["error"]["message"].startswith("Parse error")  # type: ignore[index]
    assert f"a line of {len(line) + 1} bytes" in log
    if b"\\ud" in line:
        assert "surrogate" in answer["error"]["message"]  # type: ignore[index]
    _still_serving(server)


@pytest.mark.parametrize(("line", "id"), INVALID_REQUESTS.values(), ids=INVALID_REQUESTS.keys())
def test_json_that_is_not_a_message_gets_invalid_request_with_its_id(
    server: RawStdioServer, line: bytes, id: int | str | None
) -> None:
    answer, _ = _refused(server, line)
    assert answer["id"] == id
    assert answer["error"]["code"] == -32600  # type: ignore[index]
    _still_serving(server)


@pytest.mark.parametrize("id", NOT_IDS.values(), ids=NOT_IDS.keys())
def test_a_request_whose_id_is_not_a_string_or_integer_is_refused_not_run(server: RawStdioServer, id: bytes) -> None:
    """Before, it was read as a notification: neither run nor answered, and the client waited forever."""
    key = b"id-" + id.replace(b'"', b"")
    line = _call(_scope_json(key=b'"' + key + b'"', value=b"1")).replace(b'"id":41', b'"id":' + id)
    answer, _ = _refused(server, line)
    assert answer["id"] is None and answer["error"]["code"] == -32600, answer  # type: ignore[index]
    assert server.call_tool("memory_get", **SCOPE, key=key.decode())["isError"] is True  # not stored
    _still_serving(server)


def test_refused_lines_change_no_data(server: RawStdioServer) -> None:
    """A lone surrogate is refused, not replaced: nothing is stored under any spelling of the key."""
    _refused(server, _call(_scope_json(key=b'"surrogate-\\ud800"', value=b"1")))
    _refused(server, _call(_scope_json(key=b'"k"', value=b'"\\udfff"')))
    listed = server.call_tool("memory_list", **SCOPE)
    assert listed["isError"] is False and listed["structuredContent"]["keys"] == []
    # ...and a normal write and read still work.
    assert server.call_tool("memory_set", **SCOPE, key="k", value="ok ✓")["isError"] is False
    assert server.call_tool("memory_get", **SCOPE, key="k")["structuredContent"]["value"] == "ok ✓"


def test_megabyte_line_is_answered_and_logged_briefly(server: RawStdioServer) -> None:
    line = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"y" * (1 << 20)  # never closed
    answer, log = _refused(server, line)
    assert answer["error"]["code"] == -32700  # type: ignore[index]
    assert len(log) < 500, log
    _still_serving(server)


def test_blank_lines_are_ignored(server: RawStdioServer) -> None:
    """A blank line is no message (and not worth an error): the next request's answer comes next."""
    server.send(b"")
    server.send(b"   \r")
    answer = server.request("ping", id="after-blank")
    assert answer["result"] == {}


def test_string_and_nesting_within_limits_are_accepted(server: RawStdioServer) -> None:
    """The refusals above are not over-broad: a valid surrogate pair and 100-deep nesting are stored as sent."""
    value = json.loads("[" * 100 + '"\\ud83d\\ude00"' + "]" * 100)
    assert server.call_tool("memory_set", **SCOPE, key="deep", value=value)["isError"] is False
    assert server.call_tool("memory_get", **SCOPE, key="deep")["structuredContent"]["value"] == value
