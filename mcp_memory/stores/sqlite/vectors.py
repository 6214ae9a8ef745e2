"""Vector search on SQLite: a linear scan of a project's stored vectors, in Python, off the event loop.

Vectors are stored as float32 BLOBs, scaled to unit length when written, so a cosine is a dot product.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.ranking import normalize

VECTOR_SCAN_LIMIT = 20_000
"""How many of the project's newest vectors a search compares (a linear scan: its cost bound)."""


async def nearest(
    conn: AsyncConnection,
    params: dict[str, Any],
    extra: str,
    embedding_model: str | None,
    query_embedding: Sequence[float],
    top: int,
) -> dict[str, float]:
    """The ``top`` best cosines, episode_id -> cosine, of the project ``:p``'s vectors (of ``embedding_model`` if
    given; ``extra``, ``params``: the search filters on ``e``) against the query's."""
    same_model = "" if embedding_model is None else " AND e.embedding_model = :model"
    result = await conn.execute(
        text(
            "SELECT e.episode_id, e.embedding FROM episodes e WHERE e.project_id = :p "
            f"AND e.embedding IS NOT NULL{same_model}{extra} ORDER BY e.created_at DESC LIMIT :scan"
        ),
        {**params, "scan": VECTOR_SCAN_LIMIT, "model": embedding_model},
    )
    rows = [(r.episode_id, r.embedding) for r in result]
    # A linear scan in Python: off the event loop, so other calls go on meanwhile.
    return await anyio.to_thread.run_sync(top_cosines, rows, normalize(query_embedding), top)


def top_cosines(rows: list[tuple[str, bytes]], query: list[float], top: int) -> dict[str, float]:
    """The ``top`` best cosines of stored (unit-length) vectors against a unit-length query."""
    q = array("f", query)
    scored = []
    for episode_id, blob in rows:
        vec = blob_to_vector(blob)
        if len(vec) == len(q):
            scored.append((sum(a * b for a, b in zip(vec, q, strict=True)), episode_id))
    scored.sort(reverse=True)
    return {episode_id: cos for cos, episode_id in scored[:top]}


def vector_to_blob(vector: Sequence[float]) -> bytes:
    return array("f", normalize(vector)).tobytes()


def blob_to_vector(blob: bytes) -> array[float]:
    vec = array("f")
    vec.frombytes(blob)
    return vec
