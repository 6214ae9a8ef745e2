"""The durable port of the sweep of spawns cut off by a crash (:mod:`mcp_memory.services.spawn_sweep`), and the
refusal that names such a spawn to a later spawn of its session which would take it over (:class:`SpawnLapsed`).

A two-step spawn (working memory in Redis, :mod:`mcp_memory.services.staged_spawn`) that dies before it completes
leaves its session *incomplete* in the durable store, held by its token until its lease (``spawn_until``) runs out.
Only a later spawn of the same session id (which takes it over) or a forget removed it; a session id never spawned
again kept its row, and its staged keys in Redis, for ever. The sweep finds such rows here and removes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from mcp_memory.errors import Conflict
from mcp_memory.models import Scope


@dataclass(frozen=True, slots=True)
class LapsedSpawn:
    """An incomplete session whose spawn's lease has run out, and the token of the spawn that holds it (its staged
    state in a working store apart is held under the same token); ``until`` (the lease's end, epoch seconds) and
    ``row`` (the store's id of the row) are its place in the listing's order, which a listing continues after."""

    scope: Scope
    token: str
    until: float
    row: int

    def __str__(self) -> str:
        # As the sweep's warnings name it: its session (the token and place say nothing to an operator).
        return str(self.scope)


class SpawnLapsed(Conflict):
    """``begin_spawn`` refused to take over the session of the lapsed spawn ``token`` without being told so
    (``replacing``): the caller drops that spawn's staged state from the working store first, then asks again. A
    ``Conflict`` with the message of a spawn in progress, should it reach a caller (a spawn that gave up taking
    over)."""

    def __init__(self, message: str, token: str) -> None:
        super().__init__(message)
        self.token = token


@runtime_checkable
class LapsedSpawns(Protocol):
    """Optional, for a durable store: the incomplete sessions of spawns that never completed, across every project."""

    async def lapsed_spawns(self, before: float, limit: int, after: LapsedSpawn | None = None) -> list[LapsedSpawn]:
        """Up to ``limit`` incomplete sessions whose spawn lease ran out at ``before`` (epoch seconds) or earlier,
        the longest lapsed first; only those listed after ``after`` (one an earlier listing returned, deleted since
        or not), so that a sweep's pass goes on past spawns it could not drop. Reads only."""
        ...

    async def drop_lapsed_spawn(self, spawn: LapsedSpawn, before: float) -> bool:
        """Delete the incomplete session of ``spawn``, with its events and working-memory rows, in one short
        transaction of its own, but only while that very spawn (its token) still holds it, incomplete and lapsed at
        ``before``: a spawn that took the session over since (another token) or one that completed it keeps it.
        Whether it deleted the session. One spawn per call, so that a deletion that fails (it raises: a lock or
        statement timeout on that row, a constraint error) is that spawn's alone, and the sweep goes on with the
        others; a session the failure left in place, the next pass finds again."""
        ...


__all__ = ["LapsedSpawn", "LapsedSpawns", "SpawnLapsed"]
