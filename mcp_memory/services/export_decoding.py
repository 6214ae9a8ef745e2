"""Decoding one line of an export file (docs/export-format.md) into the JSON values its record models validate.

One idea: the bytes of a line to Python values, checked where the decoded value alone can tell (so, once for every
field of every kind). A line is decoded once by orjson; refused are a NUL character anywhere in it, a nesting deeper
than :data:`MAX_LINE_DEPTH`, and an integer beyond 64 bits (re-read exactly by the standard library, since orjson
reads one as a float). Times, which JSON carries as strings, are read here too (:data:`TimeText`, :data:`Time`), and
an error names its line and the place in the record (:func:`line_problem`). The records themselves are
:mod:`~mcp_memory.services.export_format`'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import orjson
from pydantic import AfterValidator, ConfigDict, PlainValidator, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from mcp_memory.errors import InvalidArgument
from mcp_memory.models import iso
from mcp_memory.services.validation import MAX_JSON_INTEGER, MIN_JSON_INTEGER

# -- times -------------------------------------------------------------------------------------------------
EARLIEST_TIME = datetime(1700, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""The times a record may carry: those every store keeps to the microsecond. The stores take a time as epoch
seconds in a float (SQLite keeps it so), which names every microsecond only within 2**33 seconds of 1970 (1697 to
2242); outside, SQLite gave back another time, and Postgres stored year 1 as ``-infinity``, which no export could
then write."""


_DATETIME = TypeAdapter[datetime](datetime, config=ConfigDict(strict=True))


_DATE_FIRST = re.compile(r"\d{4}-\d{2}-\d{2}")


def _time_text(value: object) -> datetime:
    """A time as a JSON string (a number is not a time), read as pydantic reads a datetime from JSON text. An ISO
    8601 date and time only: pydantic would also read a string of digits as epoch seconds, or as milliseconds past
    a size, which docs/export-format.md rules out (no offset means UTC, see :func:`_storable_time`)."""
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be a valid datetime")
    if not _DATE_FIRST.match(value):
        raise PydanticCustomError(
            "datetime_from_string",
            "Input should be a valid datetime: an ISO 8601 date and time such as 2026-12-04T17:25:27.123456Z",
        )
    try:
        return _DATETIME.validate_strings(value)
    except ValidationError as exc:
        raise PydanticCustomError("datetime_from_string", "{reason}", {"reason": exc.errors()[0]["msg"]}) from None


def _storable_time(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # naive means UTC, as for the tools' time arguments (not the host's zone)
    if not EARLIEST_TIME <= dt <= LATEST_TIME:
        raise ValueError(
            f"{dt.isoformat()} is outside the times every store keeps exactly ({iso(EARLIEST_TIME)} to "
            f"{iso(LATEST_TIME)})"
        )
    return dt


TimeText = Annotated[datetime, PlainValidator(_time_text)]
"""A time as the file writes it, any time (the header's ``created_at``)."""
Time = Annotated[datetime, PlainValidator(_time_text), AfterValidator(_storable_time)]
"""A time a store keeps: from :data:`EARLIEST_TIME` to :data:`LATEST_TIME`, UTC when it names no offset."""


# -- errors ------------------------------------------------------------------------------------------------
def field_path(path: Sequence[str | int]) -> str:
    """A place in a record, as an error names it: ``session.metadata.note``, ``episode.lessons_learned[0]``,
    ``checkpoint.state['']`` (a key that is not a name is shown quoted; pydantic's ``[key]`` marker is dropped)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        elif part != "[key]":
            out += f"[{part!r}]"
    return out


_IN_JSON_TERMS = {
    "dict_type": "Input should be an object",
    "model_type": "Input should be an object",
    "model_attributes_type": "Input should be an object",
    "list_type": "Input should be a valid array",
    "tuple_type": "Input should be a valid array",
}
"""Pydantic's messages for a value of the wrong shape, in the file's terms (it says "dictionary" and "list" of the
decoded line)."""


def line_problem(line_no: int, exc: ValidationError | orjson.JSONDecodeError) -> InvalidArgument:
    """``invalid_argument`` for a line that is not JSON, or whose record failed its model, naming the line."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = field_path(first["loc"])
        message = _IN_JSON_TERMS.get(first["type"], first["msg"])
        return InvalidArgument(f"line {line_no} of the export file is not a valid record: {where}: {message}")
    return InvalidArgument(f"line {line_no} of the export file is not JSON: {exc}")


def _in_record(raw: object, path: tuple[str | int, ...]) -> str:
    """A path in a decoded line as an error names it, led by the record's kind when the line has one."""
    kind = raw.get("kind") if isinstance(raw, dict) else None
    return field_path((kind, *path) if isinstance(kind, str) else path)


# -- the checks on a decoded line --------------------------------------------------------------------------
def _nul_at(value: object) -> tuple[str | int, ...] | None:
    """Where in a decoded line a NUL character is (the path to the string or the object key holding it), or None."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    return (*path, key)
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(node))
    return None


MAX_LINE_DEPTH = 200
"""Objects and arrays nest at most this deep in a line: export writes at most 102 levels (an event's detail holding
metadata nested 100 levels, the most a call takes). orjson reads 1,023 levels but writes only 254, so a record
deeper than that would be imported and then no export of it could be written."""


def _deeper_than(value: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep(line: bytes, raw: object) -> bool:
    """Whether the decoded ``line`` nests deeper than :data:`MAX_LINE_DEPTH`. Walked only when the line has brackets
    enough, and not into a checkpoint's state: the one large field, whose shape (``{key: [text, number]}``) its
    model checks, so that a state nested deeper fails its validation at its first level."""
    if line.count(b"{") + line.count(b"[") <= MAX_LINE_DEPTH:
        return False
    if not isinstance(raw, dict):
        return _deeper_than(raw, MAX_LINE_DEPTH)
    return any(_deeper_than(value, MAX_LINE_DEPTH - 1) for name, value in raw.items() if name != "state")


_LONG_NUMBER = re.compile(rb"\d{19}")
"""19 digits in a row: the shortest integer beyond 64 bits (-9223372036854775809) has as many; a line without them
holds none."""


def _wide_integer_at(line: bytes) -> tuple[str | int, ...] | None:
    """Where in ``line`` an integer beyond 64 bits is (the path to it), or None. orjson reads one as the float
    nearest to it, so the line is read again by the standard library, whose integers are exact (orjson has refused
    one of 309 digits or more, as infinity, so none is past Python's limit on an integer's digits)."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(json.loads(line), ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((child, (*path, key)) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(node))
        elif type(node) is int and not MIN_JSON_INTEGER <= node <= MAX_JSON_INTEGER:
            return path
    return None


def _nested_too_deep(line_no: int) -> InvalidArgument:
    """The refusal of a line nested deeper than :data:`MAX_LINE_DEPTH` (made only for such a line, not per line)."""
    return InvalidArgument(
        f"line {line_no} of the export file is not a valid record: it is nested deeper than {MAX_LINE_DEPTH} "
        "levels, more than any record export writes; nothing was imported"
    )


def decode_line(line: bytes, line_no: int) -> object:
    """A line's JSON, or ``invalid_argument`` naming the line. A NUL character anywhere in it (a text field, a
    metadata value or key, a working key) is refused here, once for every field of every kind: no store can hold
    one (Postgres text and jsonb cannot), and the tools refuse it too; and so is a line nested deeper than
    :data:`MAX_LINE_DEPTH`, and an integer beyond 64 bits (a hand-written file's: export writes none), which orjson
    would read as another number, a float, and which the tools refuse in metadata (``check_json_integers``)."""
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise line_problem(line_no, exc) from None
    if _too_deep(line, raw):
        raise _nested_too_deep(line_no)
    if _LONG_NUMBER.search(line):
        try:
            wide = _wide_integer_at(line)
        except RecursionError:
            # The standard library recurses once per level and stops short of the 1,024 orjson reads: only a line
            # deeper than MAX_LINE_DEPTH where _too_deep does not walk (a checkpoint's state) gets here.
            raise _nested_too_deep(line_no) from None
        if wide is not None:
            raise InvalidArgument(
                f"line {line_no} of the export file is not a valid record: {_in_record(raw, wide)}: an integer "
                f"outside the 64-bit range every store keeps ({MIN_JSON_INTEGER} to {MAX_JSON_INTEGER}), which no "
                "call takes either; nothing was imported"
            )
    # JSON text cannot hold a raw NUL (orjson refuses control characters): only its escape makes one.
    if b"\\u0000" in line and (where := _nul_at(raw)) is not None:
        raise InvalidArgument(
            f"line {line_no} of the export file is not a valid record: {_in_record(raw, where)}: contains a NUL "
            "character (U+0000), which no store can hold; nothing was imported"
        )
    return raw


__all__ = [
    "EARLIEST_TIME",
    "LATEST_TIME",
    "MAX_LINE_DEPTH",
    "Time",
    "TimeText",
    "decode_line",
    "field_path",
    "line_problem",
]
