"""A readable summary of a session's working memory, for the episode that terminate writes.

Not ``str(state)[:1000]``: a headline (how many keys, how many bytes, of which JSON types), then one line per
key, most informative first, within a budget of UTF-8 bytes:

1. short strings, then numbers, then booleans, shown whole (``- status: "deployed"``): a session's facts;
2. long strings, shown by their length and beginning;
3. objects and arrays, shown by their shape (an object's keys, an array's length and element types), never
   dumped: a summary says what is there, the checkpoint holds the data;
4. nulls, and values kept out of the summary because they look like secrets (a key such as ``api_key``, ``password``
   or ``pin``, whether its value is text, a structure or a number, or a value such as ``sk-...``, ``ghp_...``, a JWT
   or a private key): their name, not their value.

Keys that do not fit are named at the end as far as the budget allows. Ties go by key, so the same state
always gives the same summary. Expired keys never reach here (the working store's snapshot skips them).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from mcp_memory.models import Item

DEFAULT_BUDGET = 2000
"""Bytes (UTF-8) of the summary at most."""

SHORT_STRING = 120
"""A string value (as JSON, quotes included) up to this many bytes is shown whole."""
_PREVIEW = 160
_SHAPE_KEYS = 8
_MAX_KEY_SHOWN = 60
_TAIL_ROOM = 300
_DECODE_LIMIT = 64 * 1024
"""Structures larger than this are described by type and size only (not decoded)."""

_TYPE_BY_FIRST_CHAR = {"{": "object", "[": "array", '"': "string", "t": "boolean", "f": "boolean", "n": "null"}

_SECRET_KEY = re.compile(
    r"passw|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credential|authorization|"
    r"cookie|bearer|signature|(?<![a-z])(pin|otp|cvv|cvc|ssn)(?![a-z])",
    re.IGNORECASE,
)
_COUNTING_KEY = re.compile(
    r"(max|min|num|total|n|prompt|completion|input|output)[_-]?tokens?|"
    r"tokens?[_-]?(count|limit|budget|used|usage|left|remaining|per)|tokens(?![a-z])",
    re.IGNORECASE,
)
"""What in a key names a count of tokens (``max_tokens``, ``token_count``, ``tokens``): a number there is a size,
not a secret."""
_SECRET_VALUE = re.compile(
    r'^"(sk-|sk_live_|rk_live_|ghp_|gho_|ghs_|github_pat_|xox[abposr]-|AKIA|ASIA|AIza|glpat-|'
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|-----BEGIN [A-Z ]*PRIVATE KEY)"
)


def json_type(raw: str) -> str:
    """The JSON type of a JSON text, from its first character."""
    return _TYPE_BY_FIRST_CHAR.get(raw[:1], "number")


def looks_secret(key: str, raw: str) -> bool:
    """Whether a value should stay out of summaries: a secret-sounding key holding text, a structure or a number
    (PINs, one-time codes and numeric passwords are numbers; a count of tokens such as ``max_tokens`` is not a
    secret), or a value shaped like a well-known credential. Booleans and nulls say nothing secret."""
    if _SECRET_VALUE.match(raw):
        return True
    kind = json_type(raw)
    if kind in {"boolean", "null"}:
        return False
    if kind == "number":
        key = _COUNTING_KEY.sub(" ", key)
    return bool(_SECRET_KEY.search(key))


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def clip(text: str, max_bytes: int, ellipsis: str = "...") -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes on a character boundary, marked with ``ellipsis``."""
    if _size(text) <= max_bytes:
        return text
    if max_bytes < _size(ellipsis):  # no room for the mark: just cut
        return text.encode("utf-8")[: max(0, max_bytes)].decode("utf-8", errors="ignore")
    cut = text.encode("utf-8")[: max_bytes - _size(ellipsis)].decode("utf-8", errors="ignore")
    return cut + ellipsis


def counted(n: float, noun: str) -> str:
    """``n`` and ``noun`` agreeing in number: ``1 key``, ``2 keys``, ``1.5 seconds`` (``noun`` is the singular;
    an s makes it plural; a float is shown as ``:g`` shows it). For texts a model or an operator reads, where
    ``1 keys`` is a small error that makes them doubt the rest (a configured limit of 1 is where it shows)."""
    shown = f"{n:g}" if isinstance(n, float) else str(n)
    return f"{shown} {noun}" if n == 1 else f"{shown} {noun}s"


def _show_key(key: str) -> str:
    """A key on one line (control characters escaped), long ones shortened."""
    escaped = json.dumps(key, ensure_ascii=False)[1:-1]
    return clip(escaped, _MAX_KEY_SHOWN)


def _py_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


def _shape(raw: str) -> str:
    """An object's or array's shape: ``object, 3 keys: a, b, c`` / ``array of 4: 3 object, 1 string``."""
    kind = json_type(raw)
    size = f"{_size(raw)} B"
    if _size(raw) > _DECODE_LIMIT:
        return f"{kind}, {size}"
    value: Any = json.loads(raw)
    if isinstance(value, dict):
        if not value:
            return "empty object"
        names = [_show_key(k) for k in sorted(value)[:_SHAPE_KEYS]]
        more = ", ..." if len(value) > _SHAPE_KEYS else ""
        return f"object, {counted(len(value), 'key')}: {', '.join(names)}{more}; {size}"
    if isinstance(value, list):
        if not value:
            return "empty array"
        kinds = Counter(_py_type(v) for v in value)
        parts = ", ".join(f"{n} {t}" for t, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
        first = value[0]
        fields = ""
        if isinstance(first, dict) and first:
            names = [_show_key(k) for k in sorted(first)[:_SHAPE_KEYS]]
            fields = " {" + ", ".join(names) + (", ..." if len(first) > _SHAPE_KEYS else "") + "}"
        return f"array of {len(value)}: {parts}{fields}; {size}"
    return f"{kind}, {size}"


def _line(key: str, raw: str) -> tuple[int, str]:
    """The key's tier (lower is shown first) and its line."""
    name = _show_key(key)
    kind = json_type(raw)
    if looks_secret(key, raw):
        return 5, f"- {name}: ({kind}, {_size(raw)} B, withheld: looks like a secret)"
    if kind == "string":
        if _size(raw) <= SHORT_STRING:
            return 0, f"- {name}: {raw}"
        return 3, f"- {name} (string, {_size(raw)} B): {clip(raw, _PREVIEW)}"
    if kind == "number":
        return 1, f"- {name}: {clip(raw, SHORT_STRING)}"
    if kind == "boolean":
        return 2, f"- {name}: {raw}"
    if kind == "null":
        return 5, f"- {name}: null"
    return 4, f"- {name} ({_shape(raw)})"


def summarize_state(items: Mapping[str, Item], budget: int = DEFAULT_BUDGET) -> str:
    """Summarise working memory in at most ``budget`` bytes of UTF-8 (see the module docstring)."""
    if not items:
        return "Working memory was empty."
    types = Counter(json_type(item.value) for item in items.values())
    total = sum(_size(item.value) for item in items.values())
    head = (
        f"{counted(len(items), 'key')}, {counted(total, 'byte')} of JSON ("
        + ", ".join(f"{n} {t}" for t, n in sorted(types.items(), key=lambda kv: (-kv[1], kv[0])))
        + ")."
    )
    lines = [clip(head, budget)]
    used = _size(lines[0])
    ordered = sorted((*_line(key, item.value), key) for key, item in items.items())
    need = used + sum(1 + _size(line) for _, line, _ in ordered)
    # If not every line fits, keep room for naming the keys left out.
    limit = budget if need <= budget else budget - min(_TAIL_ROOM, budget // 4)
    shown = 0
    for _, line, _ in ordered:
        if used + 1 + _size(line) > limit:
            break
        lines.append(line)
        used += 1 + _size(line)
        shown += 1
    rest = sorted(key for _, _, key in ordered[shown:])
    if rest:
        tail = f"- and {counted(len(rest), 'more key')}: " + ", ".join(_show_key(k) for k in rest)
        room = budget - used - 1
        if room > 30:
            lines.append(clip(tail, room))
    return "\n".join(lines)


__all__ = ["DEFAULT_BUDGET", "SHORT_STRING", "clip", "counted", "json_type", "looks_secret", "summarize_state"]
