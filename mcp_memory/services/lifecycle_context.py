"""What :class:`~mcp_memory.services.lifecycle.AgentLifecycleManager` and its two strategies
(:mod:`~mcp_memory.services.strategies`, :mod:`~mcp_memory.services.two_step_strategy`) share: the stores, the
settings, the clock and the session locks of one process (:class:`LifecycleContext`), when a call began
(:class:`Call`), what a pause stored and a resume restored, and how a pause's checkpoint gets its id and time.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import anyio

from mcp_memory import deadlines
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, MemoryServiceError, NotFound, Respawned
from mcp_memory.ids import new_sortable_id
from mcp_memory.models import Scope, SessionInfo, SessionStatus, to_datetime
from mcp_memory.services.session_control import retention_policy
from mcp_memory.services.working import WorkingMemory
from mcp_memory.stores.ports import DurableStore, EventRecord, nothing_to_resume, session_not_found

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Call:
    """When a lifecycle call began: by the service clock (recorded times, TTL) and by perf_counter (durations); and,
    once the call has learned it, the session it works on."""

    at: float
    perf: float
    session_created_at: datetime | None = None
    """The creation time of the durable session record the call works on, as first learned (a read of the record, or
    a snapshot or checkpoint naming it); None until then. A failure of the call is recorded only on that session, not
    on one spawned again under its id while the call ran."""

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.perf) * 1000.0

    def learned(self, created_at: datetime | None) -> None:
        """Note the session the call works on (its record's creation time; None: not known). The first noted stays:
        a later read that finds another is of a session spawned again since, not the call's."""
        if self.session_created_at is None:
            self.session_created_at = created_at


@dataclass(frozen=True, slots=True)
class Checkpointed:
    """What a pause stored."""

    checkpoint_id: str
    items: int
    bytes: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Restored:
    """What a resume restored."""

    checkpoint_id: str
    items: int
    checkpoint_created_at: datetime


@dataclass
class LifecycleContext:
    """What the manager and its strategy share: the stores, the settings, the clock, and this process's session
    locks (a session's two-step spawn, pauses, resumes and terminates run one at a time; writes do not take it)."""

    working: WorkingMemory
    durable: DurableStore
    settings: Settings
    clock: Callable[[], float]
    _locks: weakref.WeakValueDictionary[Scope, anyio.Lock] = field(default_factory=weakref.WeakValueDictionary)

    def session_lock(self, scope: Scope) -> anyio.Lock:
        lock = self._locks.get(scope)
        if lock is None:
            lock = self._locks[scope] = anyio.Lock(fast_acquire=True)
        return lock

    def start(self) -> Call:
        return Call(self.clock(), time.perf_counter())

    def event(self, event_type: str, started: Call, outcome: str, detail: Mapping[str, Any]) -> EventRecord:
        # The store measures the duration as it writes the event, so its own work is counted.
        return EventRecord(event_type, started.at, started.elapsed_ms(), outcome, dict(detail), started.perf)

    async def record_failure(
        self, scope: Scope, event_type: str, started: Call, exc: MemoryServiceError, metadata: Mapping[str, Any]
    ) -> None:
        """A failed lifecycle call on an existing session is recorded too (best effort), on the session the call
        learned it works on (``started.session_created_at``), else on the one the refusing store found (the error's
        ``session_created_at``, read in the transaction that refused: a one-transaction pause, resume or spawn
        reads no session before); neither known: whichever holds the id. Not one whose session was deleted and
        spawned again while it ran (``Respawned``, or a record created at another time): the session now holding
        the id is not the call's. Nor a ``not_found`` of no known session: the call found none, so a session
        holding the id by now was spawned after it looked."""
        if isinstance(exc, Respawned):
            return
        made_from = started.session_created_at or exc.session_created_at
        if made_from is None and isinstance(exc, NotFound):
            return
        detail: dict[str, Any] = {"error": exc.message, "metadata": dict(metadata)}
        try:
            # The call's deadline may be spent (that may be why it failed): recorded within the compensation window.
            with deadlines.compensation():
                event = self.event(event_type, started, exc.code, detail)
                retention = retention_policy(self.settings)
                await self.durable.record_event(scope, event, retention, made_from=made_from)
        except Exception:
            logger.warning("could not record the failed %s event", event_type, exc_info=True)

    async def session(self, scope: Scope, call: Call | None = None) -> SessionInfo:
        """The session's record, or ``not_found``; noted as the session ``call`` works on (:meth:`Call.learned`)."""
        info = await self.durable.get_session(scope)
        if info is None:
            raise session_not_found(scope)
        if call is not None:
            call.learned(info.created_at)
        return info

    async def live_session(self, scope: Scope, action: str, call: Call | None = None) -> SessionInfo:
        info = await self.session(scope, call)
        if info.status == SessionStatus.TERMINATED:
            raise Conflict(f"session '{scope.session_id}' is terminated; cannot {action}")
        return info

    async def no_checkpoint(self, scope: Scope, wanted: str | None, call: Call | None = None) -> NoReturn:
        """Why there is nothing to resume (:func:`~mcp_memory.stores.records.nothing_to_resume`), from a read of
        the session."""
        info = await self.session(scope, call)
        raise nothing_to_resume(scope, wanted, info.status)


def checkpoint_id_and_time(given_id: str | None, taken: float) -> tuple[str, datetime]:
    """A pause's checkpoint id (``given_id``, or one generated) and creation time, both from ONE clock reading
    ``taken`` (to the microsecond the stores keep): generated ids then sort as the recorded creation times do, also
    across servers (where each server's clock at its pause decides)."""
    created = to_datetime(taken)
    at_us = max(0, (created - _EPOCH) // timedelta(microseconds=1))
    return given_id or new_sortable_id(at_us=at_us), created


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


__all__ = ["Call", "Checkpointed", "LifecycleContext", "Restored", "checkpoint_id_and_time"]
