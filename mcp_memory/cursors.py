"""The wire form of the position cursors the listings hand out (``list_checkpoints``' and ``list_sessions``'
``next_before``): a small JSON object, compact, in URL-safe base64 without padding.

One codec for both listings, so a cursor stays one opaque token a client copies as is, and the two cannot drift
apart in how they are read. What a cursor holds, and how its fields are checked, is each listing's own; times travel
as integer microseconds since the epoch (exact, unlike a float of seconds).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def encode_fields(fields: Mapping[str, str | int | float]) -> str:
    """The cursor for ``fields`` (kept in their order, so the same fields always give the same cursor)."""
    body = json.dumps(dict(fields), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def decode_fields(cursor: str) -> dict[str, object]:
    """The fields a cursor holds; ``ValueError`` if it is not one (bad base64, bad UTF-8, not a JSON object)."""
    try:
        data: object = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except ValueError as exc:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError("malformed cursor") from exc
    if not isinstance(data, dict):
        raise ValueError("malformed cursor")
    return data


def micros_of(at: datetime) -> int:
    """``at`` (timezone-aware) as integer microseconds since the epoch, the cursors' time field."""
    return (at - _EPOCH) // _MICROSECOND


def datetime_of_micros(micros: object) -> datetime:
    """A time field back as a UTC datetime; ``TypeError`` if it is not an integer (a bool is not one),
    ``OverflowError`` if it is out of datetime's range (a forged cursor)."""
    if not isinstance(micros, int) or isinstance(micros, bool):
        raise TypeError(micros)
    return _EPOCH + timedelta(microseconds=micros)


__all__ = ["datetime_of_micros", "decode_fields", "encode_fields", "micros_of"]
