"""``mcp-memory serve`` on stdio driven by raw lines: what a client writes byte for byte, and what comes back.

The SDK's client only sends well-formed messages; these tests need to send anything (a lone surrogate,
10,000-deep nesting, a line that is not JSON) and read each answer line as the server wrote it.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.test_stdio import EXE, server_env

STARTUP_TIMEOUT = 60
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": "init",
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


class RawStdioServer:
    """The server process with its stdin, stdout and stderr as pipes; stdout and stderr are read by threads."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.db = tmp_path / "desktop.db"
        self.proc = subprocess.Popen(
            [str(EXE), "serve"],
            env=server_env(tmp_path, **env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.answers: queue.Queue[bytes] = queue.Queue()
        self.log: list[str] = []
        self._log_changed = threading.Condition()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.answers.put(line)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._log_changed:
                self.log.append(raw.decode("utf-8", "replace"))
                self._log_changed.notify_all()

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def answer(self, within: float) -> dict[str, Any]:
        """The next line of stdout, which must come within ``within`` seconds and be a JSON object."""
        try:
            line = self.answers.get(timeout=within)
        except queue.Empty:
            raise AssertionError(f"no answer within {within} s; stderr:\n{''.join(self.log[-5:])}") from None
        value = json.loads(line)
        assert isinstance(value, dict), line[:200]
        return value

    def request(self, method: str, params: dict[str, Any] | None = None, id: int | str = 1) -> dict[str, Any]:
        """A well-formed request and its answer (which must carry the same id)."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(json.dumps(message).encode())
        answer = self.answer(STARTUP_TIMEOUT)
        assert answer.get("id") == id, answer
        return answer

    def initialize(self) -> RawStdioServer:
        answer = self.request("initialize", INITIALIZE["params"], id="init")
        assert answer["result"]["serverInfo"]["name"] == "mcp-memory", answer
        self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        return self

    def call_tool(self, name: str, id: int | str = 1, **arguments: Any) -> dict[str, Any]:
        """A tools/call's result (``isError`` included) as the server answered it."""
        answer = self.request("tools/call", {"name": name, "arguments": arguments}, id=id)
        result: dict[str, Any] = answer["result"]
        return result

    def wait_for_log(self, predicate: Callable[[str], bool], within: float, start: int = 0) -> str:
        """The first stderr line from index ``start`` on that satisfies ``predicate``, waiting up to ``within`` s."""
        deadline = time.monotonic() + within
        with self._log_changed:
            while True:
                for line in self.log[start:]:
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such log line within {within} s; stderr:\n{''.join(self.log[-5:])}")
                self._log_changed.wait(left)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
