"""JSON values as working memory and metadata hold them: checked (JSON types only, string keys, bounded nesting,
text every store can hold) and encoded to compact JSON text once, when a caller gives them; stores then move the text
(:data:`RawJSON`) and only a reader that wants the value decodes it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mcp_memory.errors import InvalidArgument

RawJSON = str
"""A JSON document as text, exactly as stored; decoded only when a caller needs the value."""

MAX_JSON_DEPTH = 100
"""Deepest nesting of objects and arrays a value may have."""


def _check_containers(value: Any) -> None:
    """Dict keys must be strings (json.dumps would silently turn 1 into "1") and nesting is bounded.

    Walks containers only, iteratively; scalars are left to json.dumps, which rejects everything else.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
            for k in node:
                if not isinstance(k, str):
                    raise InvalidArgument(f"value is not JSON: object keys must be strings, got {type(k).__name__}")
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise InvalidArgument(f"value is nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))


def _nul_refused(what: str) -> InvalidArgument:
    # Postgres text and jsonb cannot hold U+0000; refusing it on every store gives one answer everywhere.
    return InvalidArgument(f"{what} contains a NUL character (U+0000), which no store can hold; remove it")


ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""``\\u0000`` in JSON text that is a NUL character's escape (not a backslash followed by ``u0000``)."""


def utf8_size(text: str, what: str) -> int:
    """Size of a text in UTF-8. Text that no store can hold is ``invalid_argument``: a lone surrogate (not
    encodable) or a NUL character (Postgres cannot store it)."""
    if "\x00" in text:
        raise _nul_refused(what)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} is not valid Unicode text (it contains a lone surrogate)") from None


def encode_value(value: Any, what: str = "value") -> RawJSON:
    """Serialise a JSON value (working memory, metadata) to compact JSON text, or raise ``invalid_argument``.

    Only JSON types pass: dict (with string keys), list, str, int, float (finite), bool and None, nested at
    most ``MAX_JSON_DEPTH`` levels, and no string or key with a NUL character (found as its ``\\u0000`` escape
    in the text, so the value is not walked twice).
    """
    if isinstance(value, dict | list | tuple):
        _check_containers(value)
    try:
        raw = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{what} is not JSON-serialisable: {exc}") from None
    if "\\u0000" in raw and ESCAPED_NUL.search(raw):
        raise _nul_refused(what)
    return raw


def decode_value(raw: RawJSON) -> Any:
    """Decode stored JSON text back to a Python value."""
    return json.loads(raw)


__all__ = ["ESCAPED_NUL", "MAX_JSON_DEPTH", "RawJSON", "decode_value", "encode_value", "utf8_size"]
