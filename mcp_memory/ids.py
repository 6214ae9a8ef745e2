"""Identifiers that are unique and sort by creation time.

Checkpoint ids are ULID-like: 48 bits of milliseconds and 80 more bits in Crockford base32, behind a ``ck_``
prefix. The 80 bits are the microseconds within the millisecond (10 bits) then 70 random bits, so an id made for a
given creation time (:func:`new_sortable_id`'s ``at_us``: the time the checkpoint records) sorts with every other id
as that time does, whichever server made it. Ids of one microsecond in one process are strictly increasing (the
random part is incremented, as ULID's monotonic mode does, for any of the process's 4,096 latest times), so a
thousand pauses in one second give a thousand distinct ids in creation order. Across processes the random bits make
a collision practically impossible, and the store's unique constraint catches one anyway.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 70
_RECENT_TIMES = 4096
_lock = threading.Lock()
_recent: OrderedDict[int, int] = OrderedDict()
"""The last random part given for each of the latest times ids were made for (least recently used first)."""


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _fresh() -> int:
    # Leave headroom so increments within one microsecond cannot overflow into the time bits.
    return int.from_bytes(os.urandom(9), "big") >> (72 - _RANDOM_BITS + 1)


def new_sortable_id(prefix: str = "ck_", *, at_us: int) -> str:
    """A new time-sortable unique id (26 base32 characters after ``prefix``) for the time ``at_us`` (epoch
    microseconds: the creation time its record keeps)."""
    with _lock:
        us = at_us
        last = _recent.pop(us, None)
        # The same microsecond as an id made before (not only the previous one: a fake clock may come back to it):
        # bump that id's random part, so ids of one time sort in the order they were made.
        rand = _fresh() if last is None else last + 1
        if rand >= 1 << _RANDOM_BITS:  # pragma: no cover - 2**69 ids in one microsecond
            us, rand = us + 1, _fresh()
        _recent[us] = rand
        if len(_recent) > _RECENT_TIMES:
            _recent.popitem(last=False)
    ms, sub = divmod(us, 1000)
    return prefix + _encode(ms, 10) + _encode((sub << _RANDOM_BITS) | rand, 16)


__all__ = ["new_sortable_id"]
