"""Input that is not a JSON-RPC message, refused the same way on every transport.

stdio answers each line (``server/stdio.py``); over HTTP, :class:`JsonRpcShapeMiddleware` answers a POST to the MCP
endpoint whose body is JSON but not a JSON-RPC 2.0 message with -32600 "Invalid Request" (echoing its id where one
can be read), before the SDK's transport sees it. The SDK's transport answers such a body -32600 on protocol
2026-07-28, but -32602 with a dump of pydantic's validation errors on the handshake protocol (2025-11-25 and earlier),
which most clients speak; a body that is not JSON at all is left to the SDK, which answers -32700 on both. A
message to an SSE session is answered here too, so that the SDK does not log it: JSON that is not a JSON-RPC message
gets the same 400 with -32600 as on the MCP endpoint; a body that is not JSON the SDK's 400 "Could not parse message".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mcp_types
import pydantic_core
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

_REASON_CHARS = 200
"""An error message or log reason is cut to this many characters; the offending input is never echoed whole."""


@dataclass(frozen=True)
class Refusal:
    """The answer to a line that is not a JSON-RPC message."""

    code: int
    message: str
    id: int | str | None

    def to_line(self) -> bytes:
        error = mcp_types.JSONRPCError(
            jsonrpc="2.0", id=self.id, error=mcp_types.ErrorData(code=self.code, message=self.message)
        )
        return error.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"


def _cut(text: str) -> str:
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def _as_object(line: bytes) -> dict[str, object] | None:
    try:
        value = pydantic_core.from_json(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _recover_id(line: bytes) -> int | str | None:
    """The ``id`` of a JSON object that is not a valid JSON-RPC message, if it is a valid id (else ``None``)."""
    candidate = (_as_object(line) or {}).get("id")
    # bool is an int in Python but not a JSON-RPC id; fractional numbers are not ids either.
    if isinstance(candidate, str) or (isinstance(candidate, int) and not isinstance(candidate, bool)):
        return candidate
    return None


def parse_line(line: bytes) -> mcp_types.JSONRPCMessage | Refusal | None:
    """One line of stdin as a message, or the error to answer it with; ``None`` for a blank line (ignored)."""
    if not line.strip():
        return None
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Refusal(mcp_types.PARSE_ERROR, f"Parse error: not UTF-8 (byte {exc.start})", None)
    try:
        message: mcp_types.JSONRPCMessage = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        invalid_json = [e for e in errors if e["type"] == "json_invalid"]
        if invalid_json:
            # pydantic's JSON parser refuses lone surrogates (they are not Unicode text) and nesting past its
            # recursion limit, as well as anything that is not JSON: all answered as a parse error.
            reason = str(invalid_json[0]["msg"]).removeprefix("Invalid JSON: ")
            if "hex escape" in reason:  # the parser's words for a lone surrogate are not self-explanatory
                reason += " (a \\uD800-\\uDFFF escape must be one half of a surrogate pair)"
            return Refusal(mcp_types.PARSE_ERROR, _cut(f"Parse error: {reason}"), None)
        return Refusal(
            mcp_types.INVALID_REQUEST,
            "Invalid Request: not a JSON-RPC 2.0 request, notification or response",
            _recover_id(line),
        )
    # The SDK reads a request whose id is not a string or an integer (1.5, 1.0, true, null, {}) as a notification,
    # dropping the id: it would be neither run nor answered, and its client would wait forever. MCP ids are strings
    # or integers (never null), so such a message is refused; its id cannot be echoed, hence null.
    if isinstance(message, mcp_types.JSONRPCNotification) and "id" in (_as_object(line) or {}):
        return Refusal(mcp_types.INVALID_REQUEST, "Invalid Request: an id must be a string or an integer", None)
    return message


class JsonRpcShapeMiddleware:
    """Refuses, with -32600, a POST to ``path`` or ``sse_path`` (a message to an SSE session) whose body is JSON but
    not a JSON-RPC message (see the module); and a POST to ``sse_path`` whose body is not JSON with the SDK's own
    answer (400 "Could not parse message"), because the SDK logs such a body with a traceback that quotes it, and a
    body may hold a value to be stored. A body past ``max_bytes`` is handed on unread beyond that, to the SDK's
    transport, which refuses it (413)."""

    def __init__(self, app: ASGIApp, path: str, max_bytes: int, sse_path: str | None = None) -> None:
        self.app = app
        self.path = path.rstrip("/")
        self.sse_path = sse_path.rstrip("/") if sse_path is not None else None
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].rstrip("/") if scope["type"] == "http" and scope["method"] == "POST" else None
        if path is None or path not in (self.path, self.sse_path):
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        size = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":  # the client went away: the app sees it
                await self.app(scope, _replay(read, receive), send)
                return
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self.app(scope, _replay(read, receive), send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in read)
        sse = path == self.sse_path
        empty = Refusal(mcp_types.PARSE_ERROR, "Parse error: an empty body", None) if sse else None
        refusal = parse_line(body) if body.strip() else empty
        if isinstance(refusal, Refusal):
            if sse:
                # The reason (never the input) is logged, as the SDK would log the error: once, at WARNING.
                logger.warning("refused a message to an SSE session (%d bytes): %s", len(body), refusal.message)
            if refusal.code == mcp_types.INVALID_REQUEST:
                # The same answer on both endpoints (and stdio's line): the JSON-RPC error, not the SDK's text.
                await _answer(send, "application/json", refusal.to_line().rstrip(b"\n"))
                return
            if sse:  # not JSON at all: the SDK's answer, without its log line that quotes the body
                await _answer(send, "text/plain; charset=utf-8", b"Could not parse message")
                return
        whole: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


async def _answer(send: Send, content_type: str, payload: bytes) -> None:
    """A 400 with ``payload``."""
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _replay(read: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives the messages already read, then the client's own."""
    pending = list(read)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


__all__ = ["JsonRpcShapeMiddleware", "Refusal", "parse_line"]
