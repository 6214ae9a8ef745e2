"""When the client stops reading (its end of our stdout is closed), ``serve`` on stdio ends cleanly (exit 0,
stores closed) instead of failing with a traceback or blocking on a write that can never complete."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.stdio_raw import INITIALIZE
from tests.test_stdio import EXE, server_env


def test_closed_stdout_ends_serve_cleanly(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [str(EXE), "serve"], env=server_env(tmp_path), stdin=subprocess.PIPE, stdout=write_end, stderr=subprocess.PIPE
    )
    os.close(write_end)
    try:
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
        proc.stdin.flush()
        with os.fdopen(read_end, "rb") as stdout:
            assert b'"serverInfo"' in stdout.readline()
        # Our read end is closed now: the next answers meet a broken pipe. stdin stays open.
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            proc.stdin.write(b'{"jsonrpc":"2.0","id":2,"method":"ping"}\nnot json\n')
            proc.stdin.flush()
            time.sleep(0.05)
        code = proc.wait(5)
    except BrokenPipeError:
        code = proc.wait(5)  # the server has already gone and closed its stdin
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    log = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, log
    assert "Traceback" not in log
    assert "stdout closed" in log and "stopped (exit code 0)" in log
    assert not (tmp_path / "desktop.db-wal").exists()
