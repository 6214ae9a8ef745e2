"""Identifiers that are unique and sort by creation time.

Checkpoint ids are ULID-like: 48 bits of milliseconds and 80 random bits in Crockford base32, behind a
``ck_`` prefix. Within one process they are strictly increasing, also when many are made in the same
millisecond (the random part is incremented, as ULID's monotonic mode does), so a thousand pauses in one
second give a thousand distinct ids in creation order. Across processes the 80 random bits make a
collision practically impossible, and the store's unique constraint catches one anyway.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_sortable_id(prefix: str = "ck_") -> str:
    """A new time-sortable unique id (26 base32 characters after ``prefix``)."""
    global _last_ms, _last_rand
    with _lock:
        ms = int(time.time() * 1000)
        if ms <= _last_ms:
            # Same (or a backwards-stepped) millisecond: keep the last time, bump the random part.
            ms = _last_ms
            rand = _last_rand + 1
            if rand >= 1 << _RANDOM_BITS:  # pragma: no cover - 2**80 ids in one millisecond
                ms += 1
                rand = int.from_bytes(os.urandom(10), "big") >> 1
        else:
            # Leave headroom so increments within this millisecond cannot overflow.
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms, _last_rand = ms, rand
    return prefix + _encode(ms, 10) + _encode(rand, 16)


__all__ = ["new_sortable_id"]
