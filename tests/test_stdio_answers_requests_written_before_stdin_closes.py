"""On stdio, requests a client writes and then closes stdin after are all run to their answers before the server
exits 0: end of input waits for them (each call answers within its deadline). Before, the SDK's session cancelled
whatever was still running when input ended, so such requests got "Connection closed" or no answer, and a write
could be cut off. The wait is bounded: a client that closes stdin and never reads its answers does not hold the
server."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.stdio_raw import INITIALIZE, RawStdioServer
from tests.test_stdio import EXE, server_env

PROJECT = str(uuid.uuid4())
SCOPE = {"agent_instance_id": str(uuid.uuid4()), "session_id": "closing"}
KEYS = 10
EXIT_WITHIN = 30
"""Seconds: end of input waits call_timeout + call_cleanup + 1 s (3 s by default) at most, then the stores close."""


def _line(id: int | str, method: str, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


def _call(id: int, name: str, **arguments: Any) -> bytes:
    return _line(id, "tools/call", {"name": name, "arguments": {**SCOPE, **arguments}})


def _start(tmp_path: Path) -> subprocess.Popen[bytes]:
    env = server_env(tmp_path, MCP_MEMORY_PROJECT_ID=PROJECT)
    return subprocess.Popen(
        [str(EXE), "serve"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


HANDSHAKE = json.dumps(INITIALIZE).encode() + b'\n{"jsonrpc":"2.0","method":"notifications/initialized"}\n'


def test_requests_written_before_stdin_closes_are_all_answered(tmp_path: Path) -> None:
    writes = [_call(1, "spawn")] + [_call(10 + i, "memory_set", key=f"k{i}", value=i) for i in range(KEYS)]
    writes.append(_call(2, "pause", label="written before the end"))
    writes.append(_line(3, "ping"))
    proc = _start(tmp_path)
    # The requests arrive in one write, and stdin closes right behind them (communicate closes it).
    out, err = proc.communicate(HANDSHAKE + b"".join(writes), timeout=EXIT_WITHIN)
    assert proc.returncode == 0, err.decode()[-2000:]
    answers = {a["id"]: a for a in map(json.loads, out.splitlines()) if "id" in a}  # notifications aside
    expected = {"init", 1, 2, 3, *(10 + i for i in range(KEYS))}
    assert set(answers) == expected, f"unanswered: {expected - set(answers)}; stderr: {err.decode()[-1000:]}"
    for id in expected - {"init", 3}:
        assert "result" in answers[id] and answers[id]["result"]["isError"] is False, answers[id]
    # ...and what they wrote is there, whole, for the next process.
    again = RawStdioServer(tmp_path, MCP_MEMORY_PROJECT_ID=PROJECT).initialize()
    try:
        assert again.call_tool("memory_list", **SCOPE)["structuredContent"]["keys"] == sorted(
            f"k{i}" for i in range(KEYS)
        )
        checkpoints = again.call_tool("list_checkpoints", id=2, **SCOPE)["structuredContent"]["checkpoints"]
        assert [c["label"] for c in checkpoints] == ["written before the end"]
    finally:
        again.close()


def test_a_client_that_closes_stdin_and_never_reads_does_not_hold_the_server(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(HANDSHAKE + _call(1, "spawn") + _call(2, "memory_set", key="big", value="x" * 500_000))
    proc.stdin.flush()
    for _ in range(3):
        assert b'"error"' not in proc.stdout.readline()
    # Twenty answers of 500 kB each: far more than the pipe holds, and no one reads them.
    proc.stdin.write(b"".join(_call(100 + i, "memory_get", key="big") for i in range(20)))
    proc.stdin.close()
    try:
        assert proc.wait(EXIT_WITHIN) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
