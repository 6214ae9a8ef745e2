"""A readable summary of a session's working memory, for the episode that terminate writes.

Not ``str(state)[:1000]``: it names every key's type and size (as far as the budget allows), and shows the
most informative values first (text and structured values before flags and counters), each truncated,
within a fixed character budget. It reads types from the JSON text itself, so it decodes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from mcp_memory.models import Item

DEFAULT_BUDGET = 2000
_PREVIEW = 160

_TYPE_BY_FIRST_CHAR = {"{": "object", "[": "array", '"': "string", "t": "boolean", "f": "boolean", "n": "null"}


def json_type(raw: str) -> str:
    """The JSON type of a JSON text, from its first character."""
    return _TYPE_BY_FIRST_CHAR.get(raw[:1], "number")


def _informativeness(raw: str) -> tuple[int, int]:
    kind = json_type(raw)
    # Text and structures say more about a session than flags and numbers; longer says more, to a point.
    rank = {"string": 3, "object": 3, "array": 2, "number": 1, "boolean": 0, "null": 0}[kind]
    return (rank, min(len(raw), 400))


def summarize_state(items: Mapping[str, Item], budget: int = DEFAULT_BUDGET) -> str:
    """Summarise working memory in at most ``budget`` characters."""
    if not items:
        return "Working memory was empty."
    types = Counter(json_type(item.value) for item in items.values())
    total = sum(len(item.value) for item in items.values())
    head = (
        f"{len(items)} keys, {total} bytes of JSON ("
        + ", ".join(f"{n} {t}" for t, n in sorted(types.items(), key=lambda kv: -kv[1]))
        + ")."
    )
    lines = [head]
    used = len(head)
    ordered = sorted(items.items(), key=lambda kv: (_informativeness(kv[1].value), kv[0]), reverse=True)
    shown = 0
    for key, item in ordered:
        raw = item.value
        preview = raw if len(raw) <= _PREVIEW else raw[: _PREVIEW - 3] + "..."
        line = f"- {key} ({json_type(raw)}, {len(raw)} B): {preview}"
        if used + 1 + len(line) > budget:
            break
        lines.append(line)
        used += 1 + len(line)
        shown += 1
    if shown < len(items):
        rest = sorted(k for k, _ in ordered[shown:])
        tail = f"- and {len(rest)} more keys: " + ", ".join(rest)
        room = budget - used - 1
        if room > 20:
            lines.append(tail if len(tail) <= room else tail[: room - 3] + "...")
    return "\n".join(lines)


__all__ = ["DEFAULT_BUDGET", "json_type", "summarize_state"]
