"""The durable port of a terminate's job after its record (:mod:`mcp_memory.services.terminate_lease`).

``record_terminate`` under a seal's token marks the session *unfinished* (``SessionInfo.terminate_unfinished``): the
call has yet to mark working memory terminated (and clear it, if asked) and to run the terminate hooks. It marks the
session finished once both are done. A server that dies (or a call cut off) in between leaves the mark, so whoever
comes next, a retried terminate or the periodic sweep (:mod:`mcp_memory.services.terminate_sweep`), can tell that
job undone and do it, once the recording call's lease is over (or ended: its last step failed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mcp_memory.models import Scope


@dataclass(frozen=True, slots=True)
class UnfinishedTerminate:
    """A session recorded terminated whose terminate has not finished its job; ``row`` (the store's id of the
    session's row) is its place in the listing's order, which a listing continues after."""

    scope: Scope
    row: int

    def __str__(self) -> str:
        # As the sweep's warnings name it: its session (the place says nothing to an operator).
        return str(self.scope)


@runtime_checkable
class UnfinishedTerminates(Protocol):
    """Terminated sessions whose terminate has not finished its job after the record, across every project."""

    async def unfinished_terminates(
        self, before: float, limit: int, after: UnfinishedTerminate | None = None
    ) -> list[UnfinishedTerminate]:
        """Up to ``limit`` sessions recorded terminated and not finished whose lease ran out at ``before`` (epoch
        seconds) or earlier, or was ended, in the order of their rows; only those listed after ``after`` (one an
        earlier listing returned, deleted since or not: its place in that order is all that counts), so that a
        sweep's pass goes on past terminates it could not finish. Reads only."""
        ...

    async def claim_terminate(
        self, scope: Scope, token: str, now: float, lease_seconds: float
    ) -> dict[str, Any] | None:
        """Take over the job of the terminate ``token``, which recorded the session and has not finished, if its
        lease ran out at ``now`` (or was ended): the lease is the caller's from then on, to ``now + lease_seconds``
        (a retry or a sweep coming meanwhile takes the caller for at work). Returns the ``metadata`` that terminate
        was called with (its event's; ``{}`` if that event is gone), or None, and nothing changes, if the session
        is not terminated under ``token``, is finished, or its lease holds."""
        ...

    async def finish_terminate(self, scope: Scope, token: str) -> None:
        """The job of the terminate ``token`` after its record is done: the session is finished from now on (no
        retry or sweep does it again). No-op unless the session is terminated under ``token``."""
        ...


__all__ = ["UnfinishedTerminate", "UnfinishedTerminates"]
