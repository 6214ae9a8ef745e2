"""Exact vector search on SQLite over every episode of a project: a packed float32 matrix per project, in memory.

Each (project, embedding model, dimension) gets one matrix of its unit-length vectors, built on its first search
from the ``episodes.embedding`` BLOBs; a search is one matrix-vector product and an ``argpartition``: exact (recall
1.0 of a brute-force scan), ~5 ms for 100,000 x 384 on one core, whatever the project's size up to memory.

Staying correct when anything writes the file (this process, another process sharing it, an older release):
SQLite triggers (:data:`VECTOR_DDL`) keep one row per project in ``vector_projects``: ``top_id``, the highest
episode row id with a vector inserted, and ``changes``, a counter bumped by every other change of the project's
vectors (an episode deleted, a vector set or replaced, an insert below ``top_id``). Every search reads that row in
its own read transaction, then:

- ``changes`` moved: the project's matrices are rebuilt from the rows (rare: forgetting or re-embedding episodes);
- only ``top_id`` moved: the rows above the matrix's last one are appended (the common case: new episodes);
- neither: the matrix is current; one primary-key lookup was the whole cost of the check.

A project left without episodes loses its row (:func:`drop_project_version`, in the transaction that emptied it), so
the file names no forgotten project. A row made again later starts its ``changes`` above every value a dropped row
held (``vector_floor``, raised by each drop and added by a trigger on ``vector_projects``), so a process still
holding a matrix of the forgotten episodes rebuilds it; and a search that finds the row gone where its matrix was
made from one drops that matrix's vectors.

Only the project's own row is read, so no other project's writes touch a project's matrix or its results.
:meth:`VectorIndex.invalidate` drops matrices outright (the one entry point for code that wants memory back, as the
store does for a project a deletion of this process left without episodes, or that writes vectors by a path the
triggers cannot see; none does today).

Memory: a matrix takes dimension x 4 bytes per vector plus ~100 bytes of ids (100,000 x 384 -> ~150 MB + 10 MB),
with a quarter more room once built (appends fill it; a full matrix grows by half, one copy). A matrix is built
from the file in ~1 s at 100,000 x 384 (on a project's first search in a process and after a change). All
matrices together are held under ``budget_bytes`` (:data:`VECTOR_CACHE_BYTES` by default): least recently searched
projects are dropped first (and rebuilt from the file on their next search); the project being searched is always
kept, whatever its size.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mcp_memory.ranking import normalize

VECTOR_CACHE_BYTES = 1 << 30
"""How much memory the matrices of all projects may take together (1 GiB: ~6 projects of 100,000 x 384)."""

ID_BYTES = 100
"""Memory of one vector's ids besides the vector (its row id and its 36-character episode id in lists)."""

VECTOR_DDL = [
    """CREATE TABLE IF NOT EXISTS vector_projects (
        project_id TEXT PRIMARY KEY,
        changes INTEGER NOT NULL DEFAULT 0,
        top_id INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    # A vector inserted above top_id is appended by the next search; anywhere else (a reused row id) it is a change.
    """CREATE TRIGGER IF NOT EXISTS episodes_vector_insert AFTER INSERT ON episodes WHEN NEW.embedding IS NOT NULL
    BEGIN
        INSERT INTO vector_projects (project_id, changes, top_id) VALUES (NEW.project_id, 0, NEW.id)
        ON CONFLICT (project_id) DO UPDATE SET changes = changes + (excluded.top_id <= top_id),
            top_id = max(top_id, excluded.top_id);
    END""",
    """CREATE TRIGGER IF NOT EXISTS episodes_vector_update
    AFTER UPDATE OF embedding, embedding_model, project_id ON episodes
    WHEN OLD.embedding IS NOT NULL OR NEW.embedding IS NOT NULL
    BEGIN
        INSERT INTO vector_projects (project_id, changes) VALUES (OLD.project_id, 1), (NEW.project_id, 1)
        ON CONFLICT (project_id) DO UPDATE SET changes = changes + 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS episodes_vector_delete AFTER DELETE ON episodes WHEN OLD.embedding IS NOT NULL
    BEGIN
        INSERT INTO vector_projects (project_id, changes) VALUES (OLD.project_id, 1)
        ON CONFLICT (project_id) DO UPDATE SET changes = changes + 1;
    END""",
    # A project's vectors in row-id order, and those above a row id (an append) without reading the rest.
    "CREATE INDEX IF NOT EXISTS episodes_project_vectors ON episodes (project_id, id) WHERE embedding IS NOT NULL",
    # Above every ``changes`` a dropped row held (drop_project_version): a project's row made again starts there, so
    # its version never goes back to one that a matrix of its forgotten episodes was built at.
    "CREATE TABLE IF NOT EXISTS vector_floor (id INTEGER PRIMARY KEY CHECK (id = 1), changes INTEGER NOT NULL)",
    """CREATE TRIGGER IF NOT EXISTS vector_projects_above_floor AFTER INSERT ON vector_projects
    WHEN EXISTS (SELECT 1 FROM vector_floor)
    BEGIN
        UPDATE vector_projects SET changes = changes + (SELECT changes FROM vector_floor)
        WHERE project_id = NEW.project_id;
    END""",
]

FILTER_ROUND = 8
"""With filters, candidates are checked best first, ``top`` x this many at the first round, this times more at each
next round, until ``top`` pass or none is left (exact whatever the filter's selectivity)."""

Key = tuple[str, str | None, int]


@dataclass(eq=False)
class _Matrix:
    """One project's vectors of one model and dimension: rows ``[:size]`` of ``vectors`` are live."""

    dim: int
    changes: int = -1
    max_id: int = 0
    size: int = 0
    vectors: npt.NDArray[np.float32] = field(default_factory=lambda: np.empty((0, 0), np.float32))
    ids: list[str] = field(default_factory=list)
    pks: list[int] = field(default_factory=list)
    """Each vector's episode row id (filters are checked by it: an integer key, cheaper than the UUID)."""
    from_row: bool = False
    """Last checked against the project's ``vector_projects`` row (False: against its absence)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes) + ID_BYTES * len(self.ids)

    def reset(self) -> None:
        self.size, self.max_id, self.vectors, self.ids, self.pks = 0, 0, np.empty((0, self.dim), np.float32), [], []

    def append(self, rows: list[tuple[int, str, bytes]], headroom: float = 0.5) -> None:
        """Add rows (in row-id order) after the live ones, growing the matrix by ``headroom`` of its size when it is
        full (a growth copies the matrix: rare, not per insert). The live rows never move in place: a search that
        took ``vectors[:size]`` before keeps reading valid data while this grows the matrix."""
        if not rows:
            return
        block = np.frombuffer(b"".join(blob for _, _, blob in rows), dtype=np.float32).reshape(len(rows), self.dim)
        needed = self.size + len(rows)
        if needed > len(self.vectors):
            grown = np.empty((needed + int(needed * headroom) + 16, self.dim), np.float32)
            grown[: self.size] = self.vectors[: self.size]
            self.vectors = grown
        self.vectors[self.size : needed] = block
        self.ids.extend(episode_id for _, episode_id, _ in rows)
        self.pks.extend(pk for pk, _, _ in rows)
        self.size = needed
        self.max_id = max(self.max_id, rows[-1][0])


class VectorIndex:
    """The matrices of one SQLite file's projects (see the module docstring). Thread-safe: searches run on the
    reader connections' own threads, several at once."""

    def __init__(self, budget_bytes: int = VECTOR_CACHE_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._matrices: OrderedDict[Key, _Matrix] = OrderedDict()

    def invalidate(self, project_id: str | None = None) -> None:
        """Drop the matrices of ``project_id`` (of every project if None); they are rebuilt on the next search."""
        with self._lock:
            for key in [k for k in self._matrices if project_id is None or k[0] == project_id]:
                del self._matrices[key]

    @property
    def nbytes(self) -> int:
        """Memory held by all matrices."""
        with self._lock:
            return sum(m.nbytes for m in self._matrices.values())

    def nearest(
        self,
        db: sqlite3.Connection,
        project_id: str,
        model: str | None,
        query: Sequence[float],
        top: int,
        extra: str = "",
        params: dict[str, Any] | None = None,
    ) -> dict[str, float]:
        """The ``top`` best cosines, episode id -> cosine, of the project's vectors (of ``model`` if given, and of
        the query's dimension) that pass the filters ``extra`` (conditions on ``e``, with ``params``). Runs on
        ``db``'s thread, inside its open read transaction (one snapshot for the version check and the rows)."""
        if top <= 0 or not query:
            return {}
        q = np.asarray(normalize(query), dtype=np.float32)
        matrix = self._current(db, project_id, model, len(q))
        with matrix.lock:
            vectors, ids, pks, size = matrix.vectors, matrix.ids, matrix.pks, matrix.size
        if size == 0:
            return {}
        # numpy's own SIMD loop, not BLAS: half the CPU of OpenBLAS's sgemv on this row-major layout (6.5 against
        # 12.5 ms at 100,000 x 384 here), and no BLAS thread pool spinning on a loaded machine.
        scores = np.einsum("ij,j->i", vectors[:size], q)
        if not extra:
            best = _best(scores, min(top, size))
            return {ids[i]: float(scores[i]) for i in best}
        return _best_passing(db, scores, ids, pks, top, extra, params or {})

    def _current(self, db: sqlite3.Connection, project_id: str, model: str | None, dim: int) -> _Matrix:
        """The project's matrix brought up to the snapshot ``db`` reads."""
        row = db.execute("SELECT changes, top_id FROM vector_projects WHERE project_id = ?", (project_id,)).fetchone()
        changes, top_id = row if row is not None else (0, 0)
        key = (project_id, model, dim)
        with self._lock:
            matrix = self._matrices.get(key)
            if matrix is None:
                matrix = self._matrices[key] = _Matrix(dim)
            self._matrices.move_to_end(key)
        with matrix.lock:
            # A snapshot older than the matrix (changes or top_id below it) uses the matrix as it is: the rows it
            # has that this snapshot lacks are dropped when the results are read from this snapshot. No row where
            # the matrix was checked against one: the project's episodes were all forgotten, and its vectors go
            # (a file written before the triggers has vectors and no row: no row alone does not mean no vectors).
            if changes > matrix.changes or (row is None and matrix.from_row):
                matrix.reset()
                # Built with a quarter of room to grow: new episodes are appended without a copy for a while.
                matrix.append(_rows(db, project_id, model, dim, 0), headroom=0.25)
                matrix.changes = changes
                matrix.max_id = max(matrix.max_id, top_id)
            elif changes == matrix.changes and top_id > matrix.max_id:
                matrix.append(_rows(db, project_id, model, dim, matrix.max_id))
                matrix.max_id = max(matrix.max_id, top_id)
            matrix.from_row = row is not None
        self._evict(keep=key)
        return matrix

    def _evict(self, keep: Key) -> None:
        with self._lock:
            total = sum(m.nbytes for m in self._matrices.values())
            for key in list(self._matrices):
                if total <= self.budget_bytes:
                    break
                if key != keep:
                    total -= self._matrices.pop(key).nbytes


def drop_project_version(db: sqlite3.Connection, project_id: str) -> None:
    """Delete the project's ``vector_projects`` row, in the write transaction that left it without episodes (after
    their rows went: the delete trigger writes the row), and raise ``vector_floor`` above the row's ``changes``."""
    row = db.execute("DELETE FROM vector_projects WHERE project_id = ? RETURNING changes", (project_id,)).fetchone()
    if row is not None:
        db.execute(
            "INSERT INTO vector_floor (id, changes) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET changes = max(changes, excluded.changes)",
            (int(row[0]) + 1,),
        )


def _rows(
    db: sqlite3.Connection, project_id: str, model: str | None, dim: int, after: int
) -> list[tuple[int, str, bytes]]:
    """The project's vectors of ``model`` (any if None) and dimension ``dim`` with a row id above ``after``."""
    same_model = "" if model is None else " AND embedding_model = :model"
    return db.execute(
        "SELECT id, episode_id, embedding FROM episodes WHERE project_id = :p AND embedding IS NOT NULL "
        f"AND id > :after AND length(embedding) = :bytes{same_model} ORDER BY id",
        {"p": project_id, "after": after, "bytes": dim * 4, "model": model},
    ).fetchall()


def _best(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` highest scores, best first, equal scores the newest row first (a matrix's rows are in
    row-id order), at the cut too: of 60 equal vectors a pool of 50 holds the newest 50, those the final ranking
    prefers, not any 50. A total order, so the best ``k`` are the first ``k`` of the best ``k' > k`` (the filter
    rounds of :func:`_best_passing` rely on it). A score that is not a number ranks last."""
    n = len(scores)
    negated = -scores  # ascending: NaN sorts last
    if k >= n:
        part = np.arange(n)
    else:
        part = np.argpartition(negated, k - 1)[:k]
        cut = negated[part[k - 1]]  # the k-th best
        if np.count_nonzero(negated <= cut) > k:  # scores equal to it left out (rare): the newest of them taken
            above = np.flatnonzero(negated < cut)
            level = np.flatnonzero(negated == cut)
            part = np.concatenate((above, level[len(level) - (k - len(above)) :]))
    newest_first = np.sort(part)[::-1]
    return newest_first[np.argsort(negated[newest_first], kind="stable")]


def _best_passing(
    db: sqlite3.Connection,
    scores: npt.NDArray[np.float32],
    ids: list[str],
    pks: list[int],
    top: int,
    extra: str,
    params: dict[str, Any],
) -> dict[str, float]:
    """The ``top`` best scores among the episodes passing the filters: candidates checked best first, in rounds of
    growing size (see :data:`FILTER_ROUND`), by their row in this snapshot."""
    check = f"SELECT e.id FROM episodes e WHERE e.id IN (SELECT value FROM json_each(:pks)){extra}"
    found: dict[str, float] = {}
    checked = 0
    size = len(scores)
    want = top * FILTER_ROUND
    while len(found) < top and checked < size:
        order = _best(scores, min(want, size))
        batch = "[" + ",".join(str(pks[i]) for i in order[checked:]) + "]"
        passing = {r[0] for r in db.execute(check, {**params, "pks": batch})}
        for i in order[checked:]:
            if pks[i] in passing and len(found) < top:
                found[ids[i]] = float(scores[i])
        checked = len(order)
        want *= FILTER_ROUND
    return found
