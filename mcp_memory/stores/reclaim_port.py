"""The durable port of what the operator's ``mcp-memory forget`` does below the rows, once its erase has committed.

Deleting a row does not take its bytes off the disk. SQLite keeps the old page images in its WAL file until a
checkpoint truncates it (the deletions themselves overwrite what they free, see
:mod:`~mcp_memory.stores.sqlite.secure_delete`); Postgres keeps the deleted rows (their TOAST, their index entries)
as dead tuples in their pages until VACUUM, and the planner's statistics keep sampled values until ANALYZE. An
operator erasing data on request runs this step after the erase (and again, by running the same forget again, if
it could not finish); a tool call does not (Postgres's autovacuum comes to the dead rows in its own time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable
from uuid import UUID


class Vacuum(StrEnum):
    """How Postgres vacuums the tables a forget deleted from (SQLite needs none: its deletions overwrote)."""

    PLAIN = "plain"
    """``VACUUM (ANALYZE)``: no dead row, TOAST chunk or B-tree entry of the erased rows remains (unless a
    transaction begun before the erase's commit still runs: VACUUM keeps what it may still see), nor a sampled
    value in the planner's statistics; the pages' freed space may still hold their bytes until reused, as may the
    keys of a GIN index. Runs beside the server's calls."""
    FULL = "full"
    """``VACUUM (FULL, ANALYZE)``: the tables and all their indexes rewritten into new files, so the erased bytes
    are in none of them; each table is locked against every other use (the server's calls on it wait) while it is
    rewritten, its indexes rebuilt."""
    NONE = "none"
    """No VACUUM (a store too large to vacuum now): autovacuum comes to the dead rows in its own time."""


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """What the step did, for the forget's report, and what it could not do."""

    done: dict[str, str | list[str]] = field(default_factory=dict)
    """Each step and its outcome, as the report shows them."""
    left: tuple[str, ...] = ()
    """What could not be done: one sentence each, saying why; running the same forget again tries it again."""


@runtime_checkable
class ReclaimsErased(Protocol):
    """A durable store that can reclaim what an erase left below the rows."""

    async def reclaim_erased(self, project_id: UUID, vacuum: Vacuum) -> Reclaimed:
        """After an erase of (part of) the project has committed, whatever it removed (a forget run again for what
        the previous run left does this part alone): take the erased rows' bytes out of the store's files as far
        as it can (``vacuum``: Postgres's VACUUM, see :class:`Vacuum`), and drop what the store kept for the project
        outside its transaction (Postgres: the project's vector index, if it holds no episode any more)."""
        ...


__all__ = ["Reclaimed", "ReclaimsErased", "Vacuum"]
