"""The error codes of docs/contract.md as exception classes.

Every failure that reaches a caller is one of these. The MCP layer turns them into a tool error whose text
starts with the code (``not_found: checkpoint 'c1' does not exist for this session``); the Python API raises
them as they are. Nothing else (no traceback, no driver message) is shown to a caller.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from pydantic import ValidationError


class MemoryServiceError(Exception):
    """Base class: a failure with a docs/contract.md code and a plain sentence for the caller."""

    code: ClassVar[str] = "internal"

    session_created_at: datetime | None = None
    """The creation time of the session record a store found as it refused a call on a session, read in the
    transaction (or statement) that refused; None: not known (nothing read yet, or no session found). Not shown to
    the caller: the lifecycle records the call's failure event on that session only, not on one spawned again under
    its id since."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def of_session(self, created_at: datetime | None) -> Self:
        """This error, noting the session record the refusing store found (:attr:`session_created_at`)."""
        self.session_created_at = created_at
        return self

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidArgument(MemoryServiceError):
    """The request is malformed: a wrong UUID, a bad session_id, a non-JSON value, an unknown outcome."""

    code = "invalid_argument"


class NotFound(MemoryServiceError):
    """The session, key, checkpoint or episode does not exist (or has expired)."""

    code = "not_found"


class Conflict(MemoryServiceError):
    """The request contradicts existing state: a reused checkpoint_id, a write to a terminated session."""

    code = "conflict"


class Respawned(Conflict):
    """A pause or resume whose session was deleted and spawned again under its id while it ran (between its
    working-memory step and its durable record, or its checkpoint's read and its restore), or a terminate whose
    session was between its record and its hooks: nothing of the old session lands on the new one, and the call
    records nothing on it."""


class TooLarge(MemoryServiceError):
    """A configured limit would be exceeded: key length, value size, keys per session."""

    code = "too_large"


class Forbidden(MemoryServiceError):
    """The caller may not touch this project."""

    code = "forbidden"


class Unavailable(MemoryServiceError):
    """A store is down or timed out; the caller may retry later."""

    code = "unavailable"


class Internal(MemoryServiceError):
    """An unexpected failure inside the server; details are in the server's log only."""

    code = "internal"


class ConfigurationError(ValueError):
    """The settings ask for something this build cannot do; the message says what to change.

    Not a docs/contract.md code: it stops the server (or the runtime) from starting, before any call."""


ECHO_LIMIT = 200
"""How much of anything the caller sent (a name, a URI, a value) an error repeats: a 1 MB argument must not give a
1 MB error."""


def echo(text: str) -> str:
    """``text`` as an error may repeat it: at most :data:`ECHO_LIMIT` characters, then an ellipsis."""
    return text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "…"


ERROR_CODES: tuple[str, ...] = (
    "invalid_argument",
    "not_found",
    "conflict",
    "too_large",
    "forbidden",
    "unavailable",
    "internal",
)


def describe_validation_error(exc: ValidationError, *, nothing: str = "invalid arguments") -> str:
    """A pydantic error as one plain sentence naming each bad argument or setting, never echoing its value (a
    token pasted where its hash belongs must not reach a log or a reply)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts) or nothing


__all__ = [
    "ECHO_LIMIT",
    "ERROR_CODES",
    "ConfigurationError",
    "Conflict",
    "Forbidden",
    "Internal",
    "InvalidArgument",
    "MemoryServiceError",
    "NotFound",
    "Respawned",
    "TooLarge",
    "Unavailable",
    "describe_validation_error",
    "echo",
]
