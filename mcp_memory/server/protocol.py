"""JSON-RPC errors for requests the server cannot serve: an unknown tool or prompt, a resource it cannot read.

A tool that runs and fails answers an ``isError`` result (docs/contract.md); a request that names nothing the server
has is a protocol error instead: -32602 (invalid params) for an unknown tool or prompt, and the spec's
resource-not-found code for a resource. That code depends on the protocol version the request speaks: -32002
up to 2025-11-25, -32602 from 2026-07-28, which retired -32002 for good (SEP-2164: it must not be sent).
Each message still starts with a docs/contract.md code, and nothing the caller sent is echoed back at full length.
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ResourceError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from mcp_types.version import is_version_at_least

# echo and ECHO_LIMIT live with the errors (models bound what they repeat too); here as before, for the server.
from mcp_memory.errors import ECHO_LIMIT, InvalidArgument, MemoryServiceError, NotFound, echo

RESOURCE_NOT_FOUND = -32002
"""The resource-not-found code of protocol versions 2024-11-05 to 2025-11-25."""

_NOT_FOUND_IS_INVALID_PARAMS = "2026-07-28"
"""The first protocol version whose resource-not-found code is -32602 (SEP-2164)."""

MAX_URI_LENGTH = 4096
"""Our longest resource URI (two UUIDs and two 128-character ids) is about 400 characters; a longer one names
nothing (and the SDK matches no template past 64 KiB), so it is refused as malformed, before any matching."""


def resource_not_found_code(protocol_version: str | None) -> int:
    """The JSON-RPC code of "resource not found" in ``protocol_version`` (None: a call from Python, the
    handshake era's -32002)."""
    if protocol_version is not None and is_version_at_least(protocol_version, _NOT_FOUND_IS_INVALID_PARAMS):
        return INVALID_PARAMS
    return RESOURCE_NOT_FOUND


class RefusedRead(ResourceError):
    """A resource function refused a read with a docs/contract.md error; :func:`resource_error` turns it into the
    JSON-RPC error of the request's protocol version (a resource function does not know it)."""

    def __init__(self, error: MemoryServiceError) -> None:
        super().__init__(str(error))
        self.error = error


def resource_error(err: MemoryServiceError, uri: str, protocol_version: str | None) -> MCPError:
    """The JSON-RPC error for a resource read that failed with ``err``.

    ``forbidden`` carries the same code as ``not_found``: to a token, a resource of a project it may not read is
    one it cannot have, and the two never differ in code (the grant is checked before any lookup, so neither
    tells whether the resource exists)."""
    if err.code in ("not_found", "forbidden"):
        code = resource_not_found_code(protocol_version)
    elif err.code in ("invalid_argument", "too_large"):
        code = INVALID_PARAMS
    else:
        code = INTERNAL_ERROR
    return MCPError(code=code, message=str(err), data={"uri": echo(uri)})


def no_such_resource(uri: str) -> NotFound:
    """The error for a URI that matches none of the server's resources or templates."""
    return NotFound(f"no resource matches {echo(uri)!r}")


def check_resource_uri(uri: str) -> None:
    """Refuse a URI longer than :data:`MAX_URI_LENGTH`, and a ``memory://`` URI with a percent escape: our
    identifiers (UUIDs and ``A-Z a-z 0-9 . _ -``) never need one, and decoding it would read another id than the
    one given (``sessions/%66ix`` is not ``fix``)."""
    if len(uri) > MAX_URI_LENGTH:
        raise InvalidArgument(f"resource URI has {len(uri)} characters; none is longer than {MAX_URI_LENGTH}")
    if uri.startswith("memory://") and "%" in uri:
        raise InvalidArgument("resource URIs take identifiers exactly as written: '%' is not allowed in one")


def unknown_tool(name: str) -> MCPError:
    """The JSON-RPC error for ``tools/call`` of a tool the server does not have."""
    return MCPError(code=INVALID_PARAMS, message=f"not_found: tool {echo(name)!r} does not exist")


def unknown_prompt(name: str) -> MCPError:
    """The JSON-RPC error for ``prompts/get`` of a prompt the server does not have."""
    return MCPError(code=INVALID_PARAMS, message=f"not_found: prompt {echo(name)!r} does not exist")


def request_error(err: MemoryServiceError) -> MCPError:
    """The JSON-RPC error for a request (``prompts/get``, ``resources/list``) that failed with ``err``: the caller's
    mistakes are invalid params (the spec's code for a bad prompt name or arguments), the server's own failures
    (``unavailable``, ``internal``) internal errors; the message is ``<code>: <sentence>`` either way."""
    caller = err.code in ("invalid_argument", "not_found", "forbidden", "too_large")
    return MCPError(code=INVALID_PARAMS if caller else INTERNAL_ERROR, message=str(err))


__all__ = [
    "ECHO_LIMIT",
    "MAX_URI_LENGTH",
    "RESOURCE_NOT_FOUND",
    "RefusedRead",
    "check_resource_uri",
    "echo",
    "no_such_resource",
    "request_error",
    "resource_error",
    "resource_not_found_code",
    "unknown_prompt",
    "unknown_tool",
]
