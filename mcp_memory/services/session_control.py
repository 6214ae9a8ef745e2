"""Taking memory back: deleting a checkpoint or a whole session (the tools), erasing a project, an agent or a
session across both stores (the operator's ``mcp-memory forget``), and the checkpoint retention policy pause applies.

Where working memory lives in Redis, ``delete_session`` first claims the session with the durable seal a terminate
takes (its own token and lease): a terminate of any server holding it makes the deletion ``conflict`` before it has
erased anything, and one arriving after is refused by it, so a terminate never consolidates a state the deletion has
half-erased; the seal is renewed while the deletion runs, so that one slower than the lease keeps terminates out
too. A deletion that meets another deletion's seal (another server's) waits for that one's answer instead of
answering ``conflict``. It then removes the Redis keys and the durable records second: if the second step fails (the
seal is then released), the session still exists durably and Redis re-opens it from its newest checkpoint at the
next call (as after a Redis restart), so nothing is left half-deleted in a way a caller could see; the deletion can
be repeated. The Redis keys are removed once more after the durable step, in case a call re-opened the session in
between; with them go the claims of the calls re-opening it now, whose Redis writes then land nothing, and the note
of an import staged for it, whose switch then leaves it deleted (:mod:`mcp_memory.stores.redis.store`). If that
second erase fails, the call fails with the record already gone: a deletion that finds no durable session therefore
erases what Redis still holds of it before it answers ``not_found`` (see :meth:`SessionControl.delete_session`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import anyio

from mcp_memory import deadlines, faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, InvalidArgument, MemoryServiceError, NotFound
from mcp_memory.models import Scope, SessionInfo, validate_identifier
from mcp_memory.services.renewal import renewed
from mcp_memory.stores.ports import (
    DurableStore,
    EventRecord,
    PauseCopies,
    ReclaimsErased,
    Removed,
    Retention,
    Vacuum,
    WorkingErase,
    WorkingStore,
    seal_lapses_in,
    sealed_by_another_call,
)
from mcp_memory.summary import counted

logger = logging.getLogger(__name__)

MAX_KEEP_LAST = 1_000_000
DELETION_TOKEN = "delete-"
"""How a deletion's seal token starts (a terminate's is a bare hex uuid): a deletion meeting another's seal waits."""
CLAIM_POLL_SECONDS = 0.05
"""How often a deletion waiting for another deletion of its session reads the session again."""
RENEWAL_SLACK_SECONDS = 2.0
"""How late past its period (a third of the lease) a live deletion's renewal may be (a slow store) before a
deletion meeting its seal takes its holder for stopped and answers ``conflict`` at once instead of waiting."""


def retention_policy(settings: Settings, keep_last: int | None = None) -> Retention:
    """The policy a pause applies: the configured checkpoint and event counts and ages (0: unbounded), the
    checkpoint count overridden by the call's ``keep_last`` (0: keep all) if given."""
    count = settings.checkpoint_retention_count
    if keep_last is not None:
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or not 0 <= keep_last <= MAX_KEEP_LAST:
            raise InvalidArgument(f"keep_last must be an integer from 0 (keep all) to {MAX_KEEP_LAST}")
        count = keep_last
    age = settings.checkpoint_retention_seconds
    return Retention(
        keep_last=count or None,
        max_age_seconds=age or None,
        events_keep_last=settings.event_retention_count or None,
        events_max_age_seconds=settings.event_retention_seconds or None,
    )


def removed_counts(removed: Removed) -> dict[str, int]:
    """A deletion's counts as the tools and the CLI report them."""
    return {
        "working_keys": removed.working_keys,
        "checkpoints": removed.checkpoints,
        "events": removed.events,
        "episodes": removed.episodes,
    }


@dataclass(frozen=True, slots=True)
class SessionDeleted:
    """What ``delete_session`` removed. The tool reports the counts; ``removed.episode_ids`` (the episodes that went
    with the session) is for their resources' subscribers, not for the model."""

    session_id: str
    removed: Removed

    def as_result(self) -> dict[str, Any]:
        """The tool's result."""
        return {"session_id": self.session_id, **removed_counts(self.removed)}


class SessionControl:
    """``delete_session``, ``delete_checkpoint`` and the operator's ``forget``.

    ``session_lock``: the lifecycle's per-session lock, so that a deletion does not interleave with a pause or a
    terminate of the same session in this process (other processes are ordered by the stores' transactions and, for
    a terminate, by the durable seal, held for at most ``seal_lease`` seconds)."""

    def __init__(
        self,
        durable: DurableStore,
        working: WorkingStore,
        clock: Callable[[], float],
        session_lock: Callable[[Scope], AbstractAsyncContextManager[Any]],
        seal_lease: float,
    ) -> None:
        self._durable = durable
        separate = working is not durable  # type: ignore[comparison-overlap]  # (one SQL store can be both)
        self._working = working if separate and isinstance(working, WorkingErase) else None
        self._clock = clock
        self._lock = session_lock
        self._lease = seal_lease

    async def delete_session(
        self, project_id: str | UUID, agent_instance_id: str | UUID, session_id: str, keep_episodes: bool = True
    ) -> SessionDeleted:
        """Delete one session: working memory, checkpoints, events, and its episodes unless ``keep_episodes``.
        A running, paused or terminated session may be deleted; one being terminated is ``conflict``.

        A session the durable store does not hold is ``not_found``, with working memory in Redis only once Redis
        holds nothing of it either (:meth:`_absent`): a deletion whose last Redis erase failed, after its durable
        step, leaves a session a call re-opened meanwhile, and its retry must take it. If that erase fails, the
        answer is Redis's error (``unavailable``), not ``not_found``: the caller retries until "deleted" holds."""
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        if not isinstance(keep_episodes, bool):
            raise InvalidArgument("keep_episodes must be true or false")
        async with self._lock(scope):
            session = await self._durable.get_session(scope)
            if session is None:
                raise await self._absent(scope)
            now = self._clock()
            # One store: one transaction, ordered with a terminate by its row lock; the store refuses a seal whose
            # lease is live and goes through one that lapsed, as the claim below takes it over.
            if self._working is None:
                removed = await self._durable.delete_session(scope, keep_episodes, now)
                return SessionDeleted(scope.session_id, removed)
            token = await self._claim(scope)
            now = self._clock()  # after the claim, which may have waited for another deletion
            deleted = False
            try:
                # The seal is renewed while the deletion runs: one slower than its lease (a stalled store, a large
                # session) must not let a terminate take the seal over and consolidate a half-erased state.
                async with renewed(partial(self._renew, scope, token), self._lease / 3, f"the deletion of {scope}"):
                    working = await self._working.erase_session(scope, now)
                    await faults.reached("delete.working_erased")
                    removed = await self._durable.delete_session(scope, keep_episodes, now, token)
                deleted = True
            finally:
                if not deleted:
                    # The session stays (Redis re-opens it from its newest checkpoint): a terminate may end it now.
                    with deadlines.compensation():
                        try:
                            await self._durable.unseal(scope, token)
                        except Exception:
                            logger.warning("could not unseal %s after a failed deletion", scope, exc_info=True)
            await faults.reached("delete.durable_deleted")
            await self._working.erase_session(scope, now)
        return SessionDeleted(scope.session_id, removed + Removed(working_keys=working))

    async def _absent(self, scope: Scope) -> NotFound:
        """The answer for a session the durable store does not hold, once Redis holds nothing left of it. Redis is
        asked what it holds of the session (nothing, the common case: done), the durable store is read again, and
        only then is the leftover erased, and only if its keys still note what they noted: a spawn of the id that
        completed after the first read is found by the second (its durable commit comes before its Redis one), and
        one that completes after the second notes another incarnation, so its working memory is never taken for a
        leftover. A spawn in progress (its staged state) and an import's staged state are left alone. Raises Redis's
        error if a step fails (see :meth:`delete_session`)."""
        working = self._working
        if working is not None:
            await faults.reached("delete.absent")
            noted = await working.leftover(scope)
            if noted is not None and await self._durable.get_session(scope) is None:
                await faults.reached("delete.leftover_checked")
                if await working.erase_leftover(scope, noted):
                    logger.info("erased the Redis keys left of %s, whose durable record a deletion had deleted", scope)
        return NotFound(f"session '{scope.session_id}' does not exist for this agent")

    async def _renew(self, scope: Scope, token: str) -> None:
        await faults.reached("delete.renewing")
        await self._durable.seal(scope, token, self._clock(), self._lease)

    async def _claim(self, scope: Scope) -> str:
        """Seal the session durably as a terminate does, under a token of this deletion's own, before Redis is
        touched; the token. A session terminated already is left as it is (the seal is a no-op there).
        ``Conflict`` if a terminate holds the seal (or a previous release's deletion, whose token does not say).
        Another deletion (of another server) holding it decides the answer, as if this one came after it: this one
        waits for it, and is ``NotFound`` once it has deleted the session, or goes on if it failed (and unsealed);
        ``Conflict`` if it is still at it when this call's deadline (or the lease) is near, and at once if its seal
        has not been renewed for longer than a renewal's period (that deletion stopped: only the lease's end
        frees the session, and waiting for it could not end otherwise)."""
        token = DELETION_TOKEN + uuid4().hex
        give_up = time.monotonic() + self._lease
        while True:
            now = self._clock()
            try:
                await self._durable.seal(scope, token, now, self._lease)
                return token
            except Conflict:
                held = await self._durable.get_session(scope)
            if held is None:
                raise await self._absent(scope) from None
            lapses = self._lapses_in(held, now)
            if held.sealed and not (held.seal_token or "").startswith(DELETION_TOKEN):
                raise sealed_by_another_call(scope.session_id, lapses) from None
            if self._lease - lapses > self._lease / 3 + RENEWAL_SLACK_SECONDS:
                raise Conflict(
                    f"session '{scope.session_id}' is held by a deletion that stopped before it finished (its "
                    f"seal has not been renewed for {counted(self._lease - lapses, 'second')}); retry once its "
                    f"seal lapses, within {counted(lapses, 'second')}"
                ) from None
            left = deadlines.remaining()
            if time.monotonic() >= give_up or (left is not None and left < 2 * CLAIM_POLL_SECONDS):
                raise Conflict(
                    f"session '{scope.session_id}' is being deleted by another call; retry (it is not_found once "
                    "that deletion is done)"
                )
            await faults.reached("delete.waiting")
            await anyio.sleep(CLAIM_POLL_SECONDS)

    def _lapses_in(self, held: SessionInfo, now: float) -> int:
        """Whole seconds (rounded up, at most the lease) until the seal on ``held`` lapses: the lease if the store
        does not say (a seal older than seals' leases, anyone's to take)."""
        until = None if held.seal_until is None else held.seal_until.timestamp()
        return seal_lapses_in(until, now, self._lease)

    async def delete_checkpoint(
        self, project_id: str | UUID, agent_instance_id: str | UUID, session_id: str, checkpoint_id: str
    ) -> dict[str, Any]:
        """Delete one checkpoint of the session, kept or newest included (pruning never takes those)."""
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        cp_id = validate_identifier(checkpoint_id, "checkpoint_id")
        started = time.perf_counter()
        event = EventRecord("delete_checkpoint", self._clock(), 0.0, "ok", {"checkpoint_id": cp_id}, started)
        async with self._lock(scope):
            if not await self._durable.delete_checkpoint(scope, cp_id, event):
                raise NotFound(f"checkpoint '{cp_id}' does not exist for this session")
            if isinstance(self._working, PauseCopies):
                # A pause's copy in Redis must not outlive its checkpoint (the id may be given again by an import).
                try:
                    await self._working.drop_copy(scope)
                except MemoryServiceError as exc:
                    logger.warning(
                        "could not drop the Redis copy of deleted checkpoint %s of %s: %s", cp_id, scope, exc
                    )
        return {"checkpoint_id": cp_id, "deleted": True}

    async def forget(
        self,
        project_id: UUID,
        agent_instance_id: UUID | None,
        session_id: str | None,
        dry_run: bool,
        vacuum: Vacuum = Vacuum.PLAIN,
    ) -> dict[str, Any]:
        """The operator's erase of a project (one agent's part, or one session) in both stores; what it removed
        (with ``dry_run``: would remove; nothing changes). Then, unless ``dry_run``, what the durable store keeps of
        the erased rows below them goes too, as far as it can (:mod:`~mcp_memory.stores.reclaim_port`): the report's
        ``on_disk`` says what was done, its ``not_done`` (present only then) what could not be. That step runs
        whatever the erase removed, so running the same forget again finishes it."""
        now = self._clock()
        redis_keys = redis_sessions = 0
        if self._working is not None:
            redis_keys, redis_sessions = await self._working.erase(
                project_id, agent_instance_id, session_id, now, dry_run
            )
        removed = await self._durable.erase(project_id, agent_instance_id, session_id, now, dry_run)
        if self._working is not None and not dry_run:
            await self._working.erase(project_id, agent_instance_id, session_id, now, False)
        scope: dict[str, Any] = {"project_id": str(project_id)}
        if agent_instance_id is not None:
            scope["agent_instance_id"] = str(agent_instance_id)
        if session_id is not None:
            scope["session_id"] = session_id
        report: dict[str, Any] = {
            "dry_run": dry_run,
            "scope": scope,
            "sessions": removed.sessions,
            **removed_counts(removed + Removed(working_keys=redis_keys)),
        }
        if self._working is not None:
            report["redis_sessions"] = redis_sessions
        if not dry_run and isinstance(self._durable, ReclaimsErased):
            reclaimed = await self._durable.reclaim_erased(project_id, vacuum)
            report["on_disk"] = reclaimed.done
            if reclaimed.left:
                report["not_done"] = list(reclaimed.left)
        return report


__all__ = ["MAX_KEEP_LAST", "SessionControl", "SessionDeleted", "removed_counts", "retention_policy"]
