"""What terminate's seal's lease decides besides the seal itself (:mod:`.lifecycle` seals and records): how long a
terminate waits for its episode's vector, and how a terminate that finds its session recorded terminated already
answers.

A terminate's job does not end with its record: it then marks working memory terminated (and clears it, if asked),
runs the terminate hooks, and only then marks the record *finished* (``finish_terminate``; until then the record says
``terminate_unfinished``). Just before the hooks it reads the record again: a session deleted since the record (its
seal holds no deletion off once it is recorded) runs no hook, and the terminate is ``not_found``. "Finished" is that
durable flag, nothing else: a session whose working memory is cleared may still owe its hooks, and one kept
(``cleanup_working=false``) or empty clears nothing either way.

A later terminate that finds the record unfinished while the recording call's lease holds takes that call for one
still at its last steps, on another server: it marks working memory terminated (and clears it) again, which is
idempotent, answers as a repeat and leaves the hooks to that call. But since the recording call may have died there,
its answer still tells its subscribers of the change (:attr:`Terminated.unfinished`): notifications may repeat, they
are never lost. Once the lease is over (or ended early: the recording call's last step failed) that call will never
finish; a later terminate *claims* the job (``claim_terminate``: the lease becomes its own, so that only one finisher
runs the hooks, and one that dies in turn leaves it to the next) and does it as the recording call would have, with
that call's metadata, answering as that call would have. The periodic sweep (:mod:`.terminate_sweep`) does the same
for a record no terminate comes back to. The hooks run at least once: twice only if a finisher dies (or its lease
runs out) after they ran and before it marked the record finished.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import anyio

from mcp_memory import deadlines, faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, NotFound, Respawned
from mcp_memory.models import Episode, LifecycleResult, Scope, SessionInfo, SessionStatus
from mcp_memory.services.episodic import EpisodicMemory, episode_text
from mcp_memory.stores.ports import DurableStore, Incarnation, WorkingErase, WorkingStore, session_not_found

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """What is left of a recorded terminate, to be done by the call that holds its lease: mark working memory
    terminated (``clear``: and clear it), run the hooks with ``metadata``, then mark the record finished."""

    token: str
    """The terminate that recorded the session (its seal's token, which the record keeps)."""
    recorded: Incarnation
    """The session recorded: only its working memory is marked and cleared, never one spawned again under its id."""
    clear: bool
    metadata: dict[str, Any]
    """The metadata the recording call was made with (its hooks' events carry it)."""


@dataclass(frozen=True, slots=True)
class Terminated:
    """terminate's work under the session lock: the result, and the job this call does (None: an earlier call did or
    is doing it; then the result is returned as it is, nothing recorded, no hook run)."""

    data: dict[str, Any]
    job: Job | None = None
    unfinished: bool = False
    """No job, but the record was unfinished (the recording call may be at its last steps, or may have died there):
    the call answers as a repeat, and tells its subscribers of the change all the same."""


async def terminated_before(
    durable: DurableStore, working: WorkingStore, scope: Scope, now: float, info: SessionInfo, lease: float
) -> Terminated:
    """terminate of a session recorded terminated (``info``, read at ``now``): the stored result, nothing recorded.
    Finished: its working memory is marked terminated (and cleared, if the recording call asked) again, cheap and
    idempotent (a failed terminate of another server may have unsealed it in Redis meanwhile). Unfinished: the job,
    claimed for this call (with a lease of ``lease`` seconds) if the recording call's lease is over; else marked as
    above, and left to that call. ``not_found`` (``conflict``: spawned again) if the claim failed because the
    session was deleted since ``info`` was read: nothing is marked."""
    stored = dict(info.terminate_result or {})
    recorded_as = Incarnation(info.created_at, info.seal_token)
    cleared = bool(stored.get("items_cleared"))
    token = info.seal_token
    if info.terminate_unfinished and token is not None:
        if not _may_be_finishing(info, now):
            await faults.reached("terminate.claiming")
            metadata = await durable.claim_terminate(scope, token, now, lease)
            if metadata is not None:
                return Terminated(stored, Job(token, recorded_as, cleared, metadata))
            # The claim also fails for a session deleted since ``info`` was read: marking it would put its
            # terminated marker back into Redis (for a day), where the deletion left nothing.
            await _still_recorded(durable, scope, token)
        await working.mark_terminated(scope, now, cleared, recorded_as)
        return Terminated(stored, unfinished=True)
    await working.mark_terminated(scope, now, cleared, recorded_as)
    return Terminated(stored)


async def close_working(durable: DurableStore, working: WorkingStore, scope: Scope, now: float, job: Job) -> None:
    """The job's first step: working memory is marked terminated whatever happened to it meanwhile (a failed terminate
    of another server may have unsealed it after reading the record as not terminated), and cleared if asked; only
    the session recorded, not one spawned again under its id since. If it fails, the lease ends."""
    try:
        await working.mark_terminated(scope, now, job.clear, job.recorded)
    except BaseException:
        await _end_lease(durable, scope, job)
        raise
    if isinstance(working, WorkingErase):  # a store of its own (Redis): a SQL one deletes with the record
        await _erased_if_deleted(durable, working, scope, job)
    await faults.reached("terminate.closed")


async def _erased_if_deleted(durable: DurableStore, working: WorkingErase, scope: Scope, job: Job) -> None:
    """Another server may have deleted the session since the job's record (its seal is a no-op on a terminated
    record), and its erase of working memory may have come before the marking, which then wrote the terminated marker
    into the emptied store, for a day: a key would name the deleted session and its writes answer ``conflict``. The
    record read after the marking says: gone (or another session under the id), the recorded session's working memory
    is erased (a deletion after this read erases it itself). A failure only leaves that marker: it is logged."""
    try:
        if _recorded_by(await durable.get_session(scope), job.token):
            return
        await working.erase_closed(scope, job.recorded)
    except Exception:
        logger.warning(
            "terminate of %s: could not check whether the session was deleted meanwhile, or erase its working "
            "memory if it was; its terminated marker may stay there until it expires",
            scope,
            exc_info=True,
        )


async def complete_job(
    durable: DurableStore, scope: Scope, job: Job, hooks: Callable[[UUID | None], Awaitable[LifecycleResult]]
) -> LifecycleResult:
    """The job's last steps, once working memory is closed (and the session lock let go): the record read again, then
    the ``hooks`` (which run the terminate hooks with the session's agent type and make the answer), then the record
    marked finished. A session deleted since the job's record (another server's deletion or forget, or one of this
    server's once the lock is let go) runs no hook: the call is ``not_found`` (``Respawned``, a ``conflict``, if its
    id was spawned again meanwhile, whose session is left as it is), and nothing is written, since nothing of the
    session is left to finish. A deletion after this read comes after the terminate, hooks included. A call cut off
    in its read or its hooks ends the lease; a record left unfinished after them has its hooks run again past the
    lease (at least once, never lost)."""
    await faults.reached("terminate.completing")
    try:
        current = await durable.get_session(scope)
    except BaseException:
        await _end_lease(durable, scope, job)
        raise
    if current is None:
        raise NotFound(
            f"session '{scope.session_id}' was deleted while this terminate was under way; no terminate hook ran"
        )
    if not _recorded_by(current, job.token):
        raise Respawned(
            f"session '{scope.session_id}' was deleted and spawned again while this terminate was under way; no "
            "terminate hook ran, and the new session was left as it is"
        )
    try:
        result = await hooks(current.agent_type_id)
    except BaseException:
        await _end_lease(durable, scope, job)
        raise
    try:
        await durable.finish_terminate(scope, job.token)
    except Exception:
        logger.warning("could not mark the terminate of %s finished; its hooks may run again", scope, exc_info=True)
    return result


async def _end_lease(durable: DurableStore, scope: Scope, job: Job) -> None:
    """Unfinished: the lease ends, so that a retry (or the sweep) finishes the job at once, hooks included, rather than
    take this call for one still at it."""
    with deadlines.compensation():
        try:
            await durable.end_terminate_lease(scope, job.token)
        except Exception:
            logger.warning("could not end the lease of an unfinished terminate of %s", scope, exc_info=True)


async def _still_recorded(durable: DurableStore, scope: Scope, token: str) -> None:
    """After a failed claim: the session is still the one the terminate ``token`` recorded (another call holds or
    has finished its job); ``not_found`` if it was deleted since, ``conflict`` if spawned again under its id."""
    current = await durable.get_session(scope)
    if current is None:
        raise session_not_found(scope)
    if not _recorded_by(current, token):
        raise Conflict(f"session '{scope.session_id}' was deleted and spawned again meanwhile; retry")


def _recorded_by(current: SessionInfo | None, token: str) -> bool:
    """Whether ``current`` (the session's record as read now; None: gone) is the session the terminate ``token``
    recorded, not a session spawned again under its id since."""
    return current is not None and current.status == SessionStatus.TERMINATED and current.seal_token == token


def _may_be_finishing(info: SessionInfo, now: float) -> bool:
    """Whether the call that holds the lease of the terminate that recorded ``info`` (the recording call, or one that
    claimed its job) may still be at it at ``now``: the lease holds (None: ended)."""
    return info.seal_until is not None and info.seal_until.timestamp() > now


async def embed_within_lease(
    episodic: EpisodicMemory,
    settings: Settings,
    clock: Callable[[], float],
    scope: Scope,
    episode: Episode,
    lease_ends: float,
) -> list[float] | None:
    """The episode's vector, or None if the provider fails or would keep terminate past its seal's lease (less the
    time left to record, half the lease at most): past it terminate records nothing (``conflict``), whereas an
    episode without a vector is embedded later (services.backfill)."""
    reserve = min(settings.terminate_lease_seconds / 2, settings.call_timeout_seconds)
    budget = lease_ends - clock() - reserve
    vectors = None
    with anyio.move_on_after(max(0.0, budget)) as wait:
        vectors = await episodic.embed([episode_text(episode)])
    if wait.cancelled_caught:
        logger.warning(
            "terminate of %s: its embedding was cut short after %.1f s to stay within terminate_lease_seconds; "
            "the episode is stored without a vector (embedded later)",
            scope,
            max(0.0, budget),
        )
    return vectors[0] if vectors else None


__all__ = ["Job", "Terminated", "close_working", "complete_job", "embed_within_lease", "terminated_before"]
