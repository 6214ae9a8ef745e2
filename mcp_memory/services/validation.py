"""The argument rules of the services, each written once: the limits, and the checks that apply them where an
argument enters a service.

A Python caller (``MemoryRuntime``) passes anything, so the services check what they take here. The MCP tools'
schemas publish the same rules to the model (``server/tools/shared.py`` builds its argument types from these
constants, so a limit changed here changes the schema too); the tool layer adds no check of its own. Identifiers
(UUIDs, session and checkpoint ids, outcomes) are parsed by :mod:`mcp_memory.models`, next to the types they make.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from mcp_memory.errors import InvalidArgument, TooLarge, echo
from mcp_memory.json_values import encode_value, utf8_size
from mcp_memory.summary import DEFAULT_BUDGET

MAX_TASK_TYPE: Final = 100
MAX_TEXT: Final = 20_000
MAX_LESSONS: Final = 100
MAX_LESSON: Final = 4_000
MAX_QUERY: Final = 4_000
MAX_SEARCH_LIMIT: Final = 100
MAX_SESSION_PAGE: Final = 100
MAX_LABEL: Final = 256
MAX_CHECKPOINT_PAGE: Final = 500
MIN_IMPORTANCE: Final = 0
MAX_IMPORTANCE: Final = 1
MAX_CONTEXT_SUMMARY: Final = DEFAULT_BUDGET
"""UTF-8 bytes of an episode's ``context_summary``: the most terminate's summary of working memory takes."""
MIN_JSON_INTEGER: Final = -(2**63)
MAX_JSON_INTEGER: Final = 2**64 - 1
"""The integers a structured argument may hold: what orjson, which the stores and export write JSON with, can
write (a signed or unsigned 64-bit integer)."""


def check_text(value: object, what: str, max_len: int, *, required: bool = True) -> str:
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


def check_key(value: object, max_length: int | None, what: str = "key") -> str:
    """A working-memory key: a non-empty string of at most ``max_length`` characters (None: this server's limit is
    checked elsewhere, as an import does to name the line) with no NUL character or lone surrogate, which no store
    can hold; ``invalid_argument`` / ``too_large`` otherwise, naming it as ``what``. Every call naming a key and the
    import take this rule, so no key is stored that a call could not then read or delete."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty string")
    if max_length is not None and len(value) > max_length:
        raise TooLarge(f"{what} is {len(value)} characters long; the limit is {max_length}")
    if "\x00" in value:
        raise InvalidArgument(f"{what} must not contain NUL characters")
    utf8_size(value, what)
    return value


def check_lessons(value: object) -> list[str]:
    """``lessons_learned``: a list of strings."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument("lessons_learned must be a list of strings")
    if len(value) > MAX_LESSONS:
        raise TooLarge(f"lessons_learned has {len(value)} entries; the limit is {MAX_LESSONS}")
    return [check_text(v, "a lesson", MAX_LESSON) for v in value]


def check_context_summary(value: object) -> str:
    """An episode's ``context_summary`` (the Python API's ``record_episode`` takes one; terminate writes its own):
    text of at most :data:`MAX_CONTEXT_SUMMARY` UTF-8 bytes that a store can hold, the rule an import applies, so
    what a call writes an import of its export takes (``invalid_argument`` / ``too_large`` otherwise)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument("context_summary must be a string")
    size = utf8_size(value, "context_summary")
    if size > MAX_CONTEXT_SUMMARY:
        raise TooLarge(
            f"context_summary is {size} bytes; the limit is {MAX_CONTEXT_SUMMARY}, as much as terminate writes"
        )
    return value


def check_metadata(value: object, max_bytes: int) -> dict[str, Any]:
    """``metadata``: a JSON object within the value size limit."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument("metadata must be a JSON object")
    size = utf8_size(encode_value(value, "metadata"), "metadata")
    if size > max_bytes:
        raise TooLarge(f"metadata is {size} bytes serialised; the limit is {max_bytes}")
    check_json_integers(value, "metadata")
    return value


def check_json_integers(value: object, what: str) -> None:
    """Every integer in a structured argument stored as JSON (not a working-memory value, which is kept as its
    text) is one orjson can write: Postgres would refuse the write and export would fail on the record, so it is
    ``invalid_argument`` naming its path, on every store. ``value`` must already be JSON (:func:`encode_value`)."""
    try:
        orjson.dumps(value)  # in C: the usual answer, without a walk in Python
    except orjson.JSONEncodeError:
        pass
    else:
        return
    stack: list[tuple[object, str]] = [(value, what)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((child, path + _member(key)) for key, child in reversed(node.items()))
        elif isinstance(node, list | tuple):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(node))))
        elif isinstance(node, int) and not MIN_JSON_INTEGER <= node <= MAX_JSON_INTEGER:
            raise InvalidArgument(
                f"{echo(path)} is an integer outside the 64-bit range this server stores "
                f"({MIN_JSON_INTEGER} to {MAX_JSON_INTEGER}); send it as a string"
            )


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _member(key: str) -> str:
    """An object member in a path: ``.name``, or ``["other text"]`` where a dot would be ambiguous."""
    return f".{key}" if _PLAIN_NAME.fullmatch(key) else f"[{json.dumps(key, ensure_ascii=False)}]"


def parse_since(value: object, what: str = "since") -> float | None:
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


def check_importance(value: object) -> float:
    """``importance_score``: a number from 0 to 1 (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument("importance_score must be a number between 0 and 1")
    try:
        score = float(value)
    except OverflowError:  # an integer past a double (JSON allows any): out of range, and too long to echo
        assert isinstance(value, int)  # only an int overflows the conversion
        # str() of an int over 4,300 digits raises: 13,000 bits stay under that.
        digits = len(str(abs(value))) if value.bit_length() < 13_000 else "thousands of"
        raise InvalidArgument(f"importance_score must be between 0 and 1, got an integer of {digits} digits") from None
    if not math.isfinite(score) or not MIN_IMPORTANCE <= score <= MAX_IMPORTANCE:
        raise InvalidArgument(f"importance_score must be between 0 and 1, got {value}")
    return score


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
    "MAX_CONTEXT_SUMMARY",
    "MAX_IMPORTANCE",
    "MAX_JSON_INTEGER",
    "MAX_LABEL",
    "MAX_LESSON",
    "MAX_LESSONS",
    "MAX_QUERY",
    "MAX_SEARCH_LIMIT",
    "MAX_SESSION_PAGE",
    "MAX_TASK_TYPE",
    "MAX_TEXT",
    "MIN_IMPORTANCE",
    "MIN_JSON_INTEGER",
    "check_context_summary",
    "check_flag",
    "check_importance",
    "check_json_integers",
    "check_key",
    "check_lessons",
    "check_metadata",
    "check_page_limit",
    "check_text",
    "parse_since",
]
