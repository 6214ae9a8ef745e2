"""On stdio a line longer than ``http.max_request_bytes`` (the limit of an HTTP request body) is answered -32600
with id null and skipped up to its newline without being held: the server's peak memory does not grow with it,
and the next line is served. A line of exactly the limit is served. Before, the transport read a line of any length
into memory (a 200 MB line took the process to 800 MB)."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stdio_raw import RawStdioServer

LIMIT = 64 * 1024
HUGE = 64 * 1024 * 1024
"""A line a thousand times the limit: held whole (and parsed), it would add several times its size to the peak."""
ANSWER_WITHIN = 30.0
PROJECT = str(uuid.uuid4())
SCOPE = {"agent_instance_id": str(uuid.uuid4()), "session_id": "long-lines"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawStdioServer]:
    srv = RawStdioServer(
        tmp_path_factory.mktemp("stdio-long-lines"),
        MCP_MEMORY_PROJECT_ID=PROJECT,
        MCP_MEMORY_HTTP__MAX_REQUEST_BYTES=str(LIMIT),
    ).initialize()
    assert srv.call_tool("spawn", **SCOPE)["isError"] is False
    try:
        yield srv
    finally:
        srv.close()


def _memory_set(value_bytes: int, id: int) -> bytes:
    """A memory_set that would succeed if it were read (the value is within max_value_bytes)."""
    params = {"name": "memory_set", "arguments": {**SCOPE, "key": f"k{id}", "value": "v" * value_bytes}}
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).encode()


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def _refused_as_too_long(server: RawStdioServer) -> None:
    answer = server.answer(ANSWER_WITHIN)
    assert answer["id"] is None and answer["error"]["code"] == -32600, answer
    assert f"longer than {LIMIT} bytes" in answer["error"]["message"], answer


def test_a_line_past_the_limit_is_refused_and_the_next_one_served(server: RawStdioServer) -> None:
    logged_from = len(server.log)
    server.send(_memory_set(LIMIT * 4, id=7))
    _refused_as_too_long(server)
    server.wait_for_log(lambda text: f"answered -32600 to a line longer than {LIMIT}" in text, 5, start=logged_from)
    assert server.request("ping", id="after")["result"] == {}
    # It was not run either: nothing was stored under its key.
    assert server.call_tool("memory_get", **SCOPE, key="k7")["isError"] is True


def test_a_line_of_exactly_the_limit_is_served(server: RawStdioServer) -> None:
    head = b'{"jsonrpc":"2.0","id":"edge","method":"ping"'
    server.send(head + b" " * (LIMIT - len(head) - 1) + b"}")  # JSON allows whitespace: LIMIT bytes, then newline
    assert server.answer(ANSWER_WITHIN) == {"jsonrpc": "2.0", "id": "edge", "result": {}}
    server.send(head + b" " * (LIMIT - len(head)) + b"}")
    _refused_as_too_long(server)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc")
def test_a_huge_line_does_not_raise_the_peak_memory(server: RawStdioServer) -> None:
    before = _peak_kib(server.proc.pid)
    server.send(b'{"jsonrpc":"2.0","id":8,"method":"ping","params":{"x":"' + b"a" * HUGE + b'"}}')
    _refused_as_too_long(server)
    assert server.request("ping", id="after-huge")["result"] == {}
    grown = _peak_kib(server.proc.pid) - before
    assert grown < HUGE // 1024 // 4, f"the peak grew by {grown} KiB for a {HUGE >> 20} MiB line"
