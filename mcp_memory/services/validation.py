"""The argument checks of the services, in one place: each argument is checked once, where it enters a service.

The MCP tools' schemas already hold their arguments to JSON types; a Python caller (``MemoryRuntime``) passes
anything, so the services check what they take here and the tool layer adds no check of its own. Identifiers
(UUIDs, session and checkpoint ids, outcomes) are parsed by :mod:`mcp_memory.models`, next to the types they make.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mcp_memory.errors import InvalidArgument, TooLarge
from mcp_memory.models import encode_value, utf8_size

MAX_TASK_TYPE = 100
MAX_TEXT = 20_000
MAX_LESSONS = 100
MAX_LESSON = 4_000
MAX_QUERY = 4_000
MAX_SEARCH_LIMIT = 100
MAX_LABEL = 256
MAX_CHECKPOINT_PAGE = 500


def check_text(value: Any, what: str, max_len: int, *, required: bool = True) -> str:
    """A string argument within limits (``invalid_argument`` / ``too_large`` otherwise)."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string")
    if required and not value.strip():
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > max_len:
        raise TooLarge(f"{what} is {len(value)} characters; the limit is {max_len}")
    utf8_size(value, what)
    return value


def check_lessons(value: Any) -> list[str]:
    """``lessons_learned``: a list of strings."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument("lessons_learned must be a list of strings")
    if len(value) > MAX_LESSONS:
        raise TooLarge(f"lessons_learned has {len(value)} entries; the limit is {MAX_LESSONS}")
    return [check_text(v, "a lesson", MAX_LESSON) for v in value]


def check_metadata(value: Any, max_bytes: int) -> dict[str, Any]:
    """``metadata``: a JSON object within the value size limit."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument("metadata must be a JSON object")
    size = utf8_size(encode_value(value, "metadata"), "metadata")
    if size > max_bytes:
        raise TooLarge(f"metadata is {size} bytes serialised; the limit is {max_bytes}")
    return value


def parse_since(value: Any, what: str = "since") -> float | None:
    """``since`` (or another time argument, ``what``): an ISO 8601 date-time (naive means UTC), as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise InvalidArgument(f"{what} must be an ISO 8601 date-time, got {shown!r}") from None
    else:
        raise InvalidArgument(f"{what} must be an ISO 8601 date-time string")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def check_flag(value: object, what: str) -> bool:
    """A true/false argument (``invalid_argument`` for anything else, 0 and 1 included)."""
    if not isinstance(value, bool):
        raise InvalidArgument(f"{what} must be true or false")
    return value


def check_page_limit(value: object, maximum: int) -> int:
    """A page size from 1 to ``maximum`` (a bool is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidArgument(f"limit must be an integer from 1 to {maximum}")
    return value


__all__ = [
    "MAX_CHECKPOINT_PAGE",
    "MAX_LABEL",
    "MAX_LESSON",
    "MAX_LESSONS",
    "MAX_QUERY",
    "MAX_SEARCH_LIMIT",
    "MAX_TASK_TYPE",
    "MAX_TEXT",
    "check_flag",
    "check_lessons",
    "check_metadata",
    "check_page_limit",
    "check_text",
    "parse_since",
]
