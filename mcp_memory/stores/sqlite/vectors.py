"""Vectors on SQLite: stored as float32 BLOBs in ``episodes.embedding``, scaled to unit length when written, so a
cosine is a dot product. Searched exactly over every episode of a project by :mod:`.vector_index`."""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from mcp_memory.ranking import normalize


def vector_to_blob(vector: Sequence[float]) -> bytes:
    return array("f", normalize(vector)).tobytes()


def blob_to_vector(blob: bytes) -> array[float]:
    vec = array("f")
    vec.frombytes(blob)
    return vec
