"""Stores that stop answering: a private ``redis-server`` or a private Postgres (pgserver) frozen with SIGSTOP
(every process of it: the postmaster and its backends) and thawed with SIGCONT. Only processes these helpers
started are signalled."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mcp import Client


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: the fields after the last ")" are fixed.
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


@contextmanager
def frozen(pid: int) -> Iterator[Callable[[], None]]:
    """SIGSTOP the process tree of ``pid`` for the block, SIGCONT it after (whatever happens); the function it gives
    thaws the tree before the block ends (a test that lets the store answer again while it still runs)."""
    stopped = descendants(pid)
    for each in stopped:
        os.kill(each, signal.SIGSTOP)

    def thaw() -> None:
        for each in stopped:
            try:
                os.kill(each, signal.SIGCONT)
            except ProcessLookupError:
                pass

    try:
        yield thaw
    finally:
        thaw()


def unread_at(port: int) -> int:
    """Bytes sent to the server listening on 127.0.0.1:``port`` that it has not read, over all its connections (their
    receive queues, from /proc/net/tcp): while the server is frozen, requests that wait for it."""
    unread = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, _, state, queues, *_ = line.split()
        if state == "01" and int(local.rpartition(":")[2], 16) == port:  # 01: an established connection
            unread += int(queues.partition(":")[2], 16)  # tx_queue:rx_queue
    return unread


class PrivatePostgres:
    """A Postgres 16 + pgvector of its own (pgserver in a temporary directory), migrated, for one test."""

    def __init__(self) -> None:
        import pgserver
        from sqlalchemy.engine import make_url

        self.directory = tempfile.mkdtemp(prefix="mcpmem-pg-stall-")
        self.server: Any = pgserver.get_server(self.directory, cleanup_mode="delete")
        self.url = make_url(self.server.get_uri()).set(drivername="postgresql+asyncpg").render_as_string(False)

    @property
    def pid(self) -> int:
        pid: int | None = self.server.get_pid()
        assert pid is not None
        return pid

    def close(self) -> None:
        self.server.cleanup()


async def timed_call(c: Client, tool: str, **arguments: Any) -> tuple[bool, Any, float]:
    """(success, structured result or error text, seconds taken) of one tool call."""
    started = time.monotonic()
    result = await c.call_tool(tool, arguments)
    elapsed = time.monotonic() - started
    if result.is_error:
        return False, result.content[0].text, elapsed  # type: ignore[union-attr]
    return True, result.structured_content, elapsed
