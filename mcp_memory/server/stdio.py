"""The stdio transport: one JSON-RPC message per line on stdin, one per line on stdout, logs on stderr.

Why not the SDK's ``mcp.server.stdio.stdio_server`` as it is:

- It hands a line it cannot parse to the session as an exception, and the session drops it without a word:
  a lone surrogate escape (``"\\ud800"``), JSON nested deeper than the parser's limit (~200 levels), a line that
  is not JSON, or JSON that is not a JSON-RPC message all left the client waiting for its own timeout. Here every
  such line is answered at once (-32700 parse error, or -32600 invalid request echoing the id when one can be
  read) and logged to stderr, bounded.
- It decodes stdin with ``errors="replace"``, silently turning bytes that are not UTF-8 into U+FFFD; here such a
  line is refused with -32700 instead (a request is never changed on its way in).
- It reads a line of any length into memory (a 200 MB line took 800 MB). Here a line longer than
  ``http.max_request_bytes`` (the limit of an HTTP request body) is answered -32600 as soon as the limit is passed,
  and the rest of it is skipped unread (never held), up to the next newline.
- At end of input the SDK's session cancels the requests still running, so requests a client wrote just before
  closing stdin got "Connection closed" or nothing (and a write may have been cut off halfway). Here end of input
  reaches the session only once every request read has been answered (each call answers within its deadline),
  bounded by ``eof_grace_seconds``.
- It reads stdin in an AnyIO worker thread that cannot be cancelled and is joined at exit, so Ctrl-C waited for
  the client's next line, forever. Here a daemon thread reads (and another writes), and :func:`serve_stdio` turns
  SIGINT/SIGTERM into end-of-input at once (requests in flight are cancelled): the session ends, the stores close,
  and the process exits within a second.

The SDK's descriptor claim is reused: while serving, fd 0 reads the null device and fd 1 goes to stderr, so a
stray ``print`` cannot corrupt the protocol.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import anyio
import anyio.from_thread
import anyio.lowlevel
import mcp_types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.stdio import _claim_fd, _open_stdin_diversion, _open_stdout_diversion
from mcp.shared.message import SessionMessage

from mcp_memory.server.jsonrpc_input import Refusal, parse_line
from mcp_memory.summary import counted

if TYPE_CHECKING:
    from mcp_memory.server.app import MemoryServer

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 0.7
"""After SIGINT/SIGTERM, how long the session may take to finish (stores closing) before it is cancelled."""

_DRAIN_SECONDS = 0.25
"""At the end, how long the writer may take to send what is already answered (the client may not be reading)."""
_LOGGED_PREFIX_BYTES = 60
"""How much of a refused line the log shows (as a bytes repr, so control characters stay visible)."""
_SKIP_CHUNK_BYTES = 64 * 1024
"""The rest of a line past the limit is read and dropped this much at a time."""
_EOF_MARGIN_SECONDS = 1.0
"""At end of input, the wait for answers to requests already read: their calls' deadline plus this margin."""


def _log_refusal(line: bytes, refusal: Refusal) -> None:
    prefix = line[:_LOGGED_PREFIX_BYTES]
    logger.warning(
        "stdio: answered %d to a line of %d bytes that is not a JSON-RPC message (%s); it starts %r%s",
        refusal.code,
        len(line),
        refusal.message,
        prefix,
        "..." if len(line) > len(prefix) else "",
    )


class _TooLong:
    """Stands for a line longer than the limit, whose rest the reader skips once this is answered."""


def _read_lines(
    stdin: BinaryIO,
    lines: MemoryObjectSendStream[bytes | _TooLong],
    token: anyio.lowlevel.EventLoopToken,
    max_bytes: int,
) -> None:
    """Reader thread: each line of stdin to the event loop (waiting until it is taken), then end-of-input.

    A line is read at most ``max_bytes`` (newline aside) at a time, so a longer one is never held whole."""
    try:
        while line := stdin.readline(max_bytes + 1):
            if len(line) > max_bytes and not line.endswith(b"\n"):
                anyio.from_thread.run(lines.send, _TooLong(), token=token)
                while (rest := stdin.readline(_SKIP_CHUNK_BYTES)) and not rest.endswith(b"\n"):
                    pass
            else:
                anyio.from_thread.run(lines.send, line, token=token)
    except (OSError, ValueError) as exc:
        logger.info("stdio: stdin ended: %r", exc)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.RunFinishedError):
        return  # the transport has ended input itself (shutdown)
    with suppress(anyio.RunFinishedError, RuntimeError):
        anyio.from_thread.run_sync(lines.close, token=token)


def _write_lines(
    stdout: BinaryIO,
    lines: MemoryObjectReceiveStream[bytes],
    done: anyio.Event,
    token: anyio.lowlevel.EventLoopToken,
) -> None:
    """Writer thread: each encoded message to stdout, flushed, until every sender has closed."""
    try:
        while True:
            try:
                line = anyio.from_thread.run(lines.receive, token=token)
            except anyio.EndOfStream:
                break
            stdout.write(line)
            stdout.flush()
    except OSError as exc:  # the client closed our stdout: nothing more can be said to it
        logger.info("stdio: stdout closed: %r", exc)
    except (anyio.ClosedResourceError, anyio.RunFinishedError):
        return
    with suppress(anyio.RunFinishedError, RuntimeError):
        anyio.from_thread.run_sync(lines.close, token=token)  # senders now fail instead of waiting forever
        anyio.from_thread.run_sync(done.set, token=token)


class _Unanswered:
    """The ids of requests read but not answered yet, so that end of input can wait for their answers."""

    def __init__(self) -> None:
        self._ids: Counter[int | str] = Counter()
        self._none_left = anyio.Event()
        self._none_left.set()

    def add(self, message: mcp_types.JSONRPCMessage) -> None:
        if isinstance(message, mcp_types.JSONRPCRequest):
            self._ids[message.id] += 1
            if self._none_left.is_set():
                self._none_left = anyio.Event()
        elif isinstance(message, mcp_types.JSONRPCNotification) and message.method == "notifications/cancelled":
            # A request the client cancelled is never answered (the spec forbids it): no longer waited for.
            request_id = (message.params or {}).get("requestId")
            if isinstance(request_id, int | str):
                self.settle(request_id)

    def answered(self, message: mcp_types.JSONRPCMessage) -> None:
        if isinstance(message, mcp_types.JSONRPCResponse | mcp_types.JSONRPCError) and message.id is not None:
            self.settle(message.id)

    def settle(self, request_id: int | str) -> None:
        if self._ids[request_id] > 1:
            self._ids[request_id] -= 1
            return
        self._ids.pop(request_id, None)
        if not self._ids:
            self._none_left.set()

    def __len__(self) -> int:
        return sum(self._ids.values())

    async def wait(self) -> None:
        while self._ids:
            await self._none_left.wait()


@dataclass
class StdioStreams:
    """What the session reads and writes, and ``end_input`` to end the session as if stdin had closed."""

    read_stream: MemoryObjectReceiveStream[SessionMessage | Exception]
    write_stream: MemoryObjectSendStream[SessionMessage]
    end_input: Callable[[], None]


@asynccontextmanager
async def stdio_transport(
    max_line_bytes: int,
    eof_grace_seconds: float,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> AsyncIterator[StdioStreams]:
    """Serve JSON-RPC over ``stdin``/``stdout`` (the process's, claimed as the SDK does, by default).

    A line longer than ``max_line_bytes`` is refused unread; at end of input, requests already read have up to
    ``eof_grace_seconds`` to be answered before the session sees the end (and cancels what still runs)."""
    releases: list[Callable[[], None] | None] = []
    try:
        if stdin is None:
            stdin, release = _claim_fd(0, sys.stdin, "rb", _open_stdin_diversion)
            releases.append(release)
        if stdout is None:
            stdout, release = _claim_fd(1, sys.stdout, "wb", _open_stdout_diversion)
            releases.append(release)
        async with _serve_streams(stdin, stdout, max_line_bytes, eof_grace_seconds) as streams:
            yield streams
    finally:
        for release in reversed(releases):
            if release is not None:
                release()


@asynccontextmanager
async def _serve_streams(
    stdin: BinaryIO, stdout: BinaryIO, max_line_bytes: int, eof_grace_seconds: float
) -> AsyncIterator[StdioStreams]:
    raw_send, raw_receive = anyio.create_memory_object_stream[bytes | _TooLong](0)
    message_send, message_receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_send, write_receive = anyio.create_memory_object_stream[SessionMessage](0)
    out_send, out_receive = anyio.create_memory_object_stream[bytes](0)
    answers = out_send.clone()  # the pump's refusals share the writer with the session's messages
    written = anyio.Event()
    token = anyio.lowlevel.current_token()
    input_scope = anyio.CancelScope()
    unanswered = _Unanswered()
    too_long = Refusal(
        mcp_types.INVALID_REQUEST,
        f"Invalid Request: line longer than {max_line_bytes} bytes (http.max_request_bytes); skipped unread",
        None,
    )

    async def pump() -> None:
        with input_scope:
            async with message_send, answers, raw_receive:
                async for line in raw_receive:
                    parsed = too_long if isinstance(line, _TooLong) else parse_line(line)
                    if parsed is None:
                        continue
                    if isinstance(parsed, Refusal):
                        if isinstance(line, _TooLong):
                            logger.warning(
                                "stdio: answered %d to a line longer than %d bytes", parsed.code, max_line_bytes
                            )
                        else:
                            _log_refusal(line, parsed)
                        try:
                            await answers.send(parsed.to_line())
                        except anyio.BrokenResourceError:
                            return  # stdout is closed: end input, as the session cannot answer either
                    else:
                        unanswered.add(parsed)
                        await message_send.send(SessionMessage(parsed))
                # End of input closes the session's stream, and the session then cancels whatever still runs:
                # first let the requests already read finish, as the client may still be reading their answers.
                with anyio.move_on_after(eof_grace_seconds) as waited:
                    await unanswered.wait()
                if waited.cancelled_caught:
                    logger.warning(
                        "stdio: stdin ended; cancelled %s not answered within %.1f s",
                        counted(len(unanswered), "request"),
                        eof_grace_seconds,
                    )

    async def encode() -> None:
        stdout_closed = False
        async with out_send, write_receive:
            async for message in write_receive:
                if stdout_closed:
                    continue  # taken and dropped, so that the session ends instead of blocking on its send
                text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                try:
                    await out_send.send(text.encode() + b"\n")
                    unanswered.answered(message.message)
                except anyio.BrokenResourceError:
                    stdout_closed = True  # the writer thread met a closed stdout: the client is gone
                    input_scope.cancel()

    # Daemon threads: a thread blocked in a read or write of a pipe must never hold the process at exit.
    threading.Thread(
        target=_read_lines, args=(stdin, raw_send, token, max_line_bytes), name="stdio-reader", daemon=True
    ).start()
    threading.Thread(
        target=_write_lines, args=(stdout, out_receive, written, token), name="stdio-writer", daemon=True
    ).start()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        tg.start_soon(encode)
        try:
            yield StdioStreams(message_receive, write_send, input_scope.cancel)
        finally:
            input_scope.cancel()
            write_send.close()
            # What the session answered before it ended still reaches the client, within a bound.
            with anyio.move_on_after(_DRAIN_SECONDS, shield=True):
                await written.wait()
            tg.cancel_scope.cancel()


async def serve_stdio(server: MemoryServer) -> int:
    """Serve ``server`` on stdio until stdin ends (exit code 0) or SIGINT/SIGTERM (128 + the signal's number).
    A store that cannot start is raised as it is, before anything is read. When stdin ends, the requests already
    read are answered first (within their calls' deadline).

    A signal ends input at once, without that wait: requests in flight are cancelled, the lifespan closes the
    stores, and answers already made are written. If that takes longer than :data:`SHUTDOWN_GRACE_SECONDS`, or
    a second signal comes, the session is cancelled outright.
    """
    lowlevel = server._lowlevel_server
    settings = server.runtime.settings
    # A call answers within its deadline plus cleanup (mcp_memory.deadlines); the margin covers queueing.
    eof_grace = settings.call_timeout_seconds + settings.call_cleanup_seconds + _EOF_MARGIN_SECONDS
    received: list[int] = []

    async def watch_signals(streams: StdioStreams, hard_stop: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if received:
                    logger.warning("stdio: second signal, stopping now")
                    hard_stop.cancel()
                    return
                received.append(signum)
                logger.info("stdio: %s received, shutting down", signal.Signals(signum).name)
                streams.end_input()
                hard_stop.deadline = anyio.current_time() + SHUTDOWN_GRACE_SECONDS

    with anyio.CancelScope() as hard_stop:
        # The stores open before the transport (the session's lifespan opens them again, counted): a store that
        # cannot start is raised as itself, not inside the session's task groups as a long traceback.
        transport = stdio_transport(settings.http.max_request_bytes, eof_grace)
        async with server.runtime, transport as streams, anyio.create_task_group() as tg:
            logger.info("serving on stdio: the stores are open")
            if sys.platform != "win32":  # no signal receivers there: Ctrl-C raises KeyboardInterrupt instead
                tg.start_soon(watch_signals, streams, hard_stop)
            await lowlevel.run(streams.read_stream, streams.write_stream, lowlevel.create_initialization_options())
            tg.cancel_scope.cancel()
    if hard_stop.cancelled_caught:
        logger.warning("stdio: the session did not end within %.1f s of the signal; cancelled", SHUTDOWN_GRACE_SECONDS)
    return 128 + received[0] if received else 0


__all__ = ["SHUTDOWN_GRACE_SECONDS", "Refusal", "StdioStreams", "parse_line", "serve_stdio", "stdio_transport"]
