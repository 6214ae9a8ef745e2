"""AgentLifecycleManager: spawn / pause / resume / terminate / list_checkpoints, with hooks.

The seed's API and argument names, without its weaknesses:

- pause takes one atomic snapshot of working memory (one store call, whatever the number of keys) and
  stores it as a durable checkpoint with a unique, time-sortable id; a caller-given id that exists is a
  ``conflict`` and nothing is overwritten.
- resume restores a checkpoint in one atomic store call: readers see the old state or the new one.
- terminate seals the session (its durable record and its working memory: no write, pause or resume of any process
  gets in; the seal is the call's own, with a lease: another terminate is ``conflict`` until it lapses, and a failed
  terminate unseals only its own seal), writes the episode (with a real summary, :mod:`.terminate_episode`) and
  marks the session terminated in one transaction, and only then clears working memory, runs its hooks and marks its
  record finished (a session deleted before the hooks runs none: ``not_found``); a second call returns the same
  result and records nothing, also one of another server while the first still clears, and finishes the job of a
  first call cut off after its record (:mod:`.terminate_lease`; the sweep, :mod:`.terminate_sweep`, finishes it if no
  call comes). Checkpoints outlive it.
- Every call records its event (type, time, duration, outcome) durably; failures raise a
  :class:`~mcp_memory.errors.MemoryServiceError` instead of returning ``success=False``.
- Hooks run after the core operation, each with a timeout; a failing hook is logged, never raised.
- How a transition reaches the stores is a strategy (:mod:`.strategies`): one transaction when the working store
  *is* the durable store and offers :class:`~mcp_memory.stores.ports.SameStoreLifecycle` (SQLite, Postgres), two
  steps with compensation when working memory is in Redis. This module validates, records failures, runs the hooks
  and shapes the results, the same for both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

import anyio

from mcp_memory import deadlines, faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, MemoryServiceError, NotFound, Respawned
from mcp_memory.models import (
    Episode,
    LifecycleEvent,
    LifecycleResult,
    Outcome,
    Scope,
    SessionInfo,
    SessionStatus,
    iso,
    parse_outcome,
    parse_uuid,
    validate_identifier,
)
from mcp_memory.services.checkpoint_cursor import CheckpointBound, decode_before, encode_cursor
from mcp_memory.services.episodic import EpisodicMemory
from mcp_memory.services.hooks import LifecycleHooks
from mcp_memory.services.lifecycle_context import Call, LifecycleContext
from mcp_memory.services.session_control import retention_policy
from mcp_memory.services.strategies import LifecycleStrategy, OneTransaction
from mcp_memory.services.terminate_episode import DEFAULT_TERMINATE_TASK_TYPE, consolidated, draft_episode
from mcp_memory.services.terminate_lease import (
    Job,
    Terminated,
    close_working,
    complete_job,
    embed_within_lease,
    terminated_before,
)
from mcp_memory.services.two_step_strategy import TwoStep
from mcp_memory.services.validation import (
    MAX_CHECKPOINT_PAGE,
    MAX_LABEL,
    check_flag,
    check_metadata,
    check_page_limit,
    check_text,
)
from mcp_memory.services.working import WorkingMemory
from mcp_memory.stores.ports import DurableStore, Incarnation, SameStoreLifecycle

logger = logging.getLogger(__name__)

Id = str | UUID
"""A project, agent or agent type id: a UUID, or its text."""
JSONObject = dict[str, Any]
"""Caller metadata or initial state: a JSON object (its values are any JSON)."""


class AgentLifecycleManager:
    """Lifecycle of agent sessions over a working store and a durable store."""

    def __init__(
        self,
        working: WorkingMemory,
        durable: DurableStore,
        episodic: EpisodicMemory,
        settings: Settings,
        hooks: LifecycleHooks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ctx = LifecycleContext(working, durable, settings, clock)
        self._working = working
        self._durable = durable
        self._episodic = episodic
        self._settings = settings
        self._hooks = hooks or LifecycleHooks(settings.hook_timeout_seconds)
        self._clock = clock
        # One store holding working memory and the records: each transition is one transaction in it.
        same: object = working.store
        self._strategy: LifecycleStrategy = (
            OneTransaction(self._ctx, durable)
            if same is durable and isinstance(durable, SameStoreLifecycle)
            else TwoStep(self._ctx)
        )

    def session_lock(self, scope: Scope) -> anyio.Lock:
        """The per-session lock of this process (pause, resume, terminate and deletions of one session queue)."""
        return self._ctx.session_lock(scope)

    async def _agent_type(self, scope: Scope) -> UUID | None:
        """The agent type the session's spawn named, for hooks only (read only when a hook runs; a failed read
        leaves it out rather than failing an operation that has succeeded)."""
        try:
            session = await self._durable.get_session(scope)
        except Exception:
            logger.warning("reading the agent type of %s for its hooks failed", scope, exc_info=True)
            return None
        return session.agent_type_id if session is not None else None

    @property
    def hooks(self) -> LifecycleHooks:
        """The lifecycle hooks (register more with ``hooks.on_pause(...)`` etc.)."""
        return self._hooks

    async def session(self, scope: Scope) -> SessionInfo:
        """The session's record, or ``not_found``."""
        return await self._ctx.session(scope)

    async def _finish(
        self,
        event_type: str,
        scope: Scope,
        started: Call,
        data: dict[str, Any],
        metadata: dict[str, Any],
        agent_type_id: UUID | None = None,
        agent_type_known: bool = False,
    ) -> LifecycleResult:
        """Run the call's hooks and make its answer. ``agent_type_known``: ``agent_type_id`` is the session's (spawn's
        argument, or the record terminate's job read last), else it is read here if a hook runs."""
        if self._hooks.wanted(event_type):
            with deadlines.not_counted():  # hooks have their own timeout (hook_timeout_seconds)
                if not agent_type_known:
                    agent_type_id = await self._agent_type(scope)
                event = LifecycleEvent(
                    event_type=event_type,
                    project_id=scope.project_id,
                    agent_instance_id=scope.agent_instance_id,
                    agent_type_id=agent_type_id,
                    session_id=scope.session_id,
                    metadata=metadata,
                    checkpoint_id=data.get("checkpoint_id"),
                    episode_id=None if data.get("episode_id") is None else UUID(data["episode_id"]),
                )
                await self._hooks.run(event)
        duration_ms = started.elapsed_ms()
        logger.info("%s %s: %s", event_type, scope, data)
        return LifecycleResult(
            success=True,
            event_type=event_type,
            message=f"{event_type} succeeded",
            data=data,
            duration_ms=duration_ms,
        )

    # -- spawn -----------------------------------------------------------------------------------------
    async def spawn(
        self,
        project_id: Id,
        agent_instance_id: Id,
        session_id: str,
        agent_type_id: Id | None = None,
        initial_state: JSONObject | None = None,
        metadata: JSONObject | None = None,
    ) -> LifecycleResult:
        """Create a running session with (optionally) initial working memory.

        ``conflict`` if the session exists already (use resume to continue it)."""
        started = self._ctx.start()
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        agent_type = None if agent_type_id is None else parse_uuid(agent_type_id, "agent_type_id")
        meta = check_metadata(metadata, self._settings.max_value_bytes)
        items = self._working.prepare(initial_state)
        event = self._ctx.event("spawn", started, "ok", {"initial_items": len(items), "metadata": meta})
        try:
            written = await self._strategy.spawn(scope, agent_type, meta, started, event, items)
        except Conflict as exc:
            # Recorded on the existing session (if there is one): an operator sees the double spawn.
            await self._ctx.record_failure(scope, "spawn", started, exc, meta)
            raise
        return await self._finish(
            "spawn",
            scope,
            started,
            {"session_id": scope.session_id, "status": "running", "initial_items": written},
            meta,
            agent_type,
            agent_type_known=True,
        )

    # -- pause -----------------------------------------------------------------------------------------
    async def pause(
        self,
        project_id: Id,
        agent_instance_id: Id,
        session_id: str,
        checkpoint_id: str | None = None,
        label: str | None = None,
        metadata: JSONObject | None = None,
        keep: bool = False,
        keep_last: int | None = None,
    ) -> LifecycleResult:
        """Checkpoint working memory: one atomic snapshot, stored durably. Returns the checkpoint's id. The same
        transaction prunes the session's checkpoints by the retention policy (``keep_last`` overrides the
        configured count for this call); ``keep``: this checkpoint is never pruned."""
        started = self._ctx.start()
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        given_id = None if checkpoint_id is None else validate_identifier(checkpoint_id, "checkpoint_id")
        label_text = None if label is None else check_text(label, "label", MAX_LABEL)
        meta = check_metadata(metadata, self._settings.max_value_bytes)
        retention = retention_policy(self._settings, keep_last)
        kept = check_flag(keep, "keep")
        try:
            async with self._ctx.session_lock(scope):
                saved = await self._strategy.pause(scope, started, given_id, label_text, meta, retention, kept)
        except MemoryServiceError as exc:
            await self._ctx.record_failure(scope, "pause", started, exc, meta)
            raise
        return await self._finish(
            "pause",
            scope,
            started,
            {
                "checkpoint_id": saved.checkpoint_id,
                "items_saved": saved.items,
                "bytes": saved.bytes,
                "created_at": iso(saved.created_at),
            },
            meta,
        )

    # -- resume ----------------------------------------------------------------------------------------
    async def resume(
        self,
        project_id: Id,
        agent_instance_id: Id,
        session_id: str,
        checkpoint_id: str | None = None,
        clear_current: bool = True,
        metadata: JSONObject | None = None,
    ) -> LifecycleResult:
        """Restore a checkpoint (default: the newest) into working memory, atomically.

        With ``clear_current`` (the default) working memory becomes exactly the checkpoint's state; without
        it the checkpoint's keys are written over the current ones. Keys whose TTL has passed since the
        pause are not restored. ``not_found`` for an unknown checkpoint, with working memory untouched."""
        started = self._ctx.start()
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        wanted = None if checkpoint_id is None else validate_identifier(checkpoint_id, "checkpoint_id")
        clear = check_flag(clear_current, "clear_current")
        meta = check_metadata(metadata, self._settings.max_value_bytes)
        # The event bounds a pause applies, applied by the resume too: resumes in a row stay within them.
        retention = retention_policy(self._settings)
        try:
            restored = await self._strategy.resume(scope, started, wanted, clear, meta, retention)
        except MemoryServiceError as exc:
            await self._ctx.record_failure(scope, "resume", started, exc, meta)
            raise
        return await self._finish(
            "resume",
            scope,
            started,
            {
                "checkpoint_id": restored.checkpoint_id,
                "items_restored": restored.items,
                "checkpoint_created_at": iso(restored.checkpoint_created_at),
            },
            meta,
        )

    # -- terminate -------------------------------------------------------------------------------------
    async def terminate(
        self,
        project_id: Id,
        agent_instance_id: Id,
        session_id: str,
        task_description: str | None = None,
        outcome: Outcome | str = Outcome.SUCCESS,
        lessons_learned: Sequence[str] | None = None,
        consolidate_to_episodic: bool = True,
        cleanup_working: bool = True,
        metadata: JSONObject | None = None,
        task_type: str = DEFAULT_TERMINATE_TASK_TYPE,
    ) -> LifecycleResult:
        """End the session: consolidate working memory into an episode (of ``task_type``), then (optionally)
        clear it.

        Idempotent: a second call returns the first call's result (same ``episode_id``) and records
        nothing. The episode is written before working memory is cleared; checkpoints are kept."""
        started = self._ctx.start()
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        result_outcome = parse_outcome(outcome)
        consolidate = check_flag(consolidate_to_episodic, "consolidate_to_episodic")
        cleanup = check_flag(cleanup_working, "cleanup_working")
        meta = check_metadata(metadata, self._settings.max_value_bytes)
        draft = draft_episode(self._episodic, scope, task_type, task_description, result_outcome, lessons_learned, meta)

        # One terminate (and no pause or resume) of this session at a time in this process: a terminate that
        # failed and unsealed cannot let a write slip between a concurrent terminate's snapshot and its clear.
        async with self._ctx.session_lock(scope):
            done = await self._terminate_locked(scope, started, draft, meta, result_outcome, consolidate, cleanup)
            if done.job is not None:
                await close_working(self._durable, self._working.store, scope, started.at, done.job)
        if done.job is None:
            message = "session was already terminated"
            return LifecycleResult(True, "terminate", message, done.data, 0.0, repeat=True, unfinished=done.unfinished)
        return await self._complete(scope, started, done.data, done.job)

    async def finish_cut_off_terminate(self, scope: Scope) -> bool:
        """Finish the job of a terminate cut off after its record once its lease is over, as a retried terminate
        would (:mod:`.terminate_lease`), for the sweep of such records (:mod:`.terminate_sweep`). Whether this call
        did it (False: the session is gone or finished, or its job is another call's)."""
        started = self._ctx.start()
        async with self._ctx.session_lock(scope):
            info = await self._durable.get_session(scope)
            if info is None or info.status != SessionStatus.TERMINATED or not info.terminate_unfinished:
                return False
            try:
                done = await self._terminated_before(scope, started.at, info)
            except (NotFound, Conflict):
                return False  # deleted (and maybe spawned again) since it was listed: nothing left to finish
            if done.job is None:
                return False
            await close_working(self._durable, self._working.store, scope, started.at, done.job)
        try:
            await self._complete(scope, started, done.data, done.job)
        except (NotFound, Respawned):
            return False  # deleted (and maybe spawned again) since its claim: its hooks did not run
        return True

    async def _terminated_before(self, scope: Scope, now: float, info: SessionInfo) -> Terminated:
        lease = self._settings.terminate_lease_seconds
        return await terminated_before(self._durable, self._working.store, scope, now, info, lease)

    async def _complete(self, scope: Scope, started: Call, data: dict[str, Any], job: Job) -> LifecycleResult:
        async def hooks(agent_type: UUID | None) -> LifecycleResult:
            return await self._finish(
                "terminate", scope, started, data, job.metadata, agent_type, agent_type_known=True
            )

        return await complete_job(self._durable, scope, job, hooks)

    async def _terminate_locked(
        self,
        scope: Scope,
        started: Call,
        draft: Episode,
        meta: dict[str, Any],
        result_outcome: Outcome,
        consolidate_to_episodic: bool,
        cleanup_working: bool,
    ) -> Terminated:
        """terminate's work under the session lock."""
        # The session read is the one a failure of this call is recorded on (not one spawned again under its id).
        info = await self._ctx.session(scope, started)
        if info.status == SessionStatus.TERMINATED:
            return await self._terminated_before(scope, started.at, info)

        # The seal's owner: only this call unseals what it sealed, and another terminate of the session (of any
        # process) is refused until this one is done or its lease runs out.
        token = uuid4().hex
        lease = self._settings.terminate_lease_seconds
        # The session this call seals and records: its last step clears that one only.
        recording = Incarnation(info.created_at, token)
        try:
            sealed_at = self._clock()
            sealed = await self._strategy.seal(scope, token, sealed_at, lease, recording)
        except MemoryServiceError as exc:
            # Nothing was sealed: record the failed call (every lifecycle call records its event) and stop.
            await self._ctx.record_failure(scope, "terminate", started, exc, meta)
            raise
        if not sealed:
            # Another server's terminate recorded the session since the read above: this call is its repeat.
            again = await self._ctx.session(scope)  # (not_found if it was deleted meanwhile)
            if again.status != SessionStatus.TERMINATED:
                raise Conflict(f"session '{scope.session_id}' was deleted and spawned again meanwhile; retry")
            return await self._terminated_before(scope, started.at, again)
        recorded = False
        try:
            await faults.reached("terminate.sealed")
            # The state as of now, after the wait for the lock and the seals: a key whose TTL ran out meanwhile is
            # neither consolidated nor counted.
            items = await self._working.store.snapshot(scope, self._clock())
            episode = None
            vector = None
            if consolidate_to_episodic:
                episode = consolidated(draft, result_outcome, items, meta)
                vector = await embed_within_lease(
                    self._episodic, self._settings, self._clock, scope, episode, sealed_at + lease
                )
            result = {
                "episode_id": str(episode.episode_id) if episode else None,
                "state_items_consolidated": len(items) if consolidate_to_episodic else 0,
                "items_cleared": len(items) if cleanup_working else 0,
                "outcome": result_outcome.value,
            }
            event = self._ctx.event("terminate", started, "ok", {**result, "metadata": meta})
            # A failed or slow embedding leaves the episode without a vector, embedded later (services.backfill).
            model = self._episodic.embedding_model if vector is not None else None
            if self._clock() >= sealed_at + lease:
                # Overran its lease: another terminate may have taken the seal over (and failed, and unsealed), so
                # this snapshot may miss writes acknowledged since. Give up (the unseal below leaves a newer
                # owner's seal alone); a retry starts afresh.
                raise Conflict(
                    f"terminating session '{scope.session_id}' took longer than its seal's lease of {lease:g} "
                    "seconds; nothing was recorded, retry"
                )
            stored = await self._durable.record_terminate(scope, episode, vector, result, event, model, token)
            recorded = True
        except MemoryServiceError as exc:
            await self._ctx.record_failure(scope, "terminate", started, exc, meta)
            raise
        finally:
            if not recorded:
                with deadlines.compensation():
                    try:
                        # Unless a concurrent terminate has recorded it meanwhile: then it stays sealed.
                        current = await self._durable.get_session(scope)
                        if current is not None and current.status != SessionStatus.TERMINATED:
                            await self._strategy.unseal(scope, token)
                    except Exception:
                        logger.warning("could not unseal %s after a failed terminate", scope, exc_info=True)
        if stored != result:
            # A concurrent terminate won the race; its result is the answer and its job is under way.
            return Terminated(stored, unfinished=True)
        # Recorded, unfinished: its job (services.terminate_lease) is this call's, under the session recorded.
        await faults.reached("terminate.recorded")
        return Terminated(result, Job(token, recording, cleanup_working, meta))

    # -- list_checkpoints ------------------------------------------------------------------------------
    async def list_checkpoints(
        self,
        project_id: Id,
        agent_instance_id: Id,
        session_id: str,
        limit: int = 50,
        before: str | None = None,
    ) -> list[dict[str, Any]]:
        """The session's checkpoints, newest first; page with ``before`` (a checkpoint id, or the ``next_before`` of
        :meth:`checkpoint_page`)."""
        page = await self.checkpoint_page(project_id, agent_instance_id, session_id, limit, before)
        rows: list[dict[str, Any]] = page["checkpoints"]
        return rows

    async def checkpoint_page(
        self,
        project_id: Id,
        agent_instance_id: Id,
        session_id: str,
        limit: int = 50,
        before: str | None = None,
    ) -> dict[str, Any]:
        """``{"checkpoints": [...], "next_before": cursor | None}``: one page of :meth:`list_checkpoints`, and what
        to pass as ``before`` for the next (None on the last page): a position cursor
        (:mod:`~mcp_memory.services.checkpoint_cursor`), which goes on even if its checkpoint is deleted meanwhile."""
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        page = check_page_limit(limit, MAX_CHECKPOINT_PAGE)
        bound = CheckpointBound(None) if before is None else decode_before(before)
        await self._ctx.session(scope)
        # One row more than the page: a cursor only when another page exists (null on the last, also when full).
        infos = await self._durable.list_checkpoints(scope, page + 1, bound.checkpoint_id, bound.created_at)
        rows = [
            {
                "checkpoint_id": i.checkpoint_id,
                "created_at": iso(i.created_at),
                "keys_count": i.keys_count,
                "bytes": i.bytes,
                "label": i.label,
                "keep": i.keep,
            }
            for i in infos[:page]
        ]
        return {"checkpoints": rows, "next_before": encode_cursor(infos[page - 1]) if len(infos) > page else None}


__all__ = ["AgentLifecycleManager"]
