"""AgentLifecycleManager: spawn / pause / resume / terminate / list_checkpoints, with hooks.

The seed's API and argument names, without its weaknesses:

- pause takes one atomic snapshot of working memory (one store call, whatever the number of keys) and
  stores it as a durable checkpoint with a unique, time-sortable id; a caller-given id that exists is a
  ``conflict`` and nothing is overwritten.
- resume restores a checkpoint in one atomic store call: readers see the old state or the new one.
- terminate seals the session (its durable record and its working memory: no write, pause or resume of any
  process gets in; the seal is the call's own, with a lease: another terminate is ``conflict`` until it lapses,
  and a failed terminate unseals only its own seal), writes the episode (with a real summary) and marks the
  session terminated in one transaction, and only then clears working memory; a second call returns the same
  result and records nothing. Checkpoints outlive it.
- Every call records its event (type, time, duration, outcome) durably; failures raise a
  :class:`~mcp_memory.errors.MemoryServiceError` instead of returning ``success=False``.
- Hooks run after the core operation, each with a timeout; a failing hook is logged, never raised.
- With no Redis the working store *is* the durable store; if it offers
  :class:`~mcp_memory.stores.ports.SameStoreLifecycle` (SQLite and Postgres do), spawn, pause and resume are each
  one transaction in it: a spawn is never half-done, a resume is restored and recorded together or not at all.
  With separate stores (Redis) they are two steps, with the compensation described at each.
"""

from __future__ import annotations

import importlib
import logging
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import anyio

from mcp_memory import deadlines
from mcp_memory.config import HookSettings, Settings
from mcp_memory.episodic import EpisodicMemory, check_metadata, check_text, episode_text
from mcp_memory.errors import Conflict, InvalidArgument, MemoryServiceError, NotFound
from mcp_memory.ids import new_sortable_id
from mcp_memory.models import (
    CheckpointInfo,
    Episode,
    Item,
    LifecycleEvent,
    LifecycleResult,
    Outcome,
    Scope,
    SessionInfo,
    SessionStatus,
    content_hash,
    iso,
    parse_outcome,
    parse_uuid,
    to_datetime,
    validate_identifier,
)
from mcp_memory.services.session_control import retention_policy
from mcp_memory.staged_spawn import spawn_staged
from mcp_memory.stores.ports import DurableStore, EventRecord, Retention, SameStoreLifecycle, StagedSpawn
from mcp_memory.summary import summarize_state
from mcp_memory.working import WorkingMemory

logger = logging.getLogger(__name__)

LifecycleHook = Callable[[LifecycleEvent], Coroutine[Any, Any, None]]
EVENT_TYPES = ("spawn", "pause", "resume", "terminate")
MAX_LABEL = 256
MAX_CHECKPOINT_PAGE = 500
DEFAULT_TERMINATE_TASK_TYPE = "session_completion"
"""The task_type of the episode terminate records when the caller names none."""


@dataclass(frozen=True, slots=True)
class _Call:
    """When a lifecycle call began: by the service clock (recorded times, TTL) and by perf_counter (durations)."""

    at: float
    perf: float

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.perf) * 1000.0


class LifecycleHooks:
    """Hooks per lifecycle event, run after the core operation (the seed's class, with timeouts)."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self._hooks: dict[str, list[LifecycleHook]] = {name: [] for name in EVENT_TYPES}
        self.timeout_seconds = timeout_seconds

    def _register(self, event_type: str, hook: LifecycleHook) -> LifecycleHook:
        self._hooks[event_type].append(hook)
        return hook

    def on_spawn(self, hook: LifecycleHook) -> LifecycleHook:
        """Register a spawn hook (usable as a decorator)."""
        return self._register("spawn", hook)

    def on_pause(self, hook: LifecycleHook) -> LifecycleHook:
        """Register a pause hook."""
        return self._register("pause", hook)

    def on_resume(self, hook: LifecycleHook) -> LifecycleHook:
        """Register a resume hook."""
        return self._register("resume", hook)

    def on_terminate(self, hook: LifecycleHook) -> LifecycleHook:
        """Register a terminate hook."""
        return self._register("terminate", hook)

    def hooks_for(self, event_type: str) -> list[LifecycleHook]:
        """The hooks registered for an event type."""
        return list(self._hooks[event_type])

    async def run(self, event: LifecycleEvent) -> None:
        """Run the event's hooks in order; each failure or timeout is logged and swallowed."""
        for hook in self._hooks[event.event_type]:
            name = getattr(hook, "__qualname__", repr(hook))
            try:
                with anyio.fail_after(self.timeout_seconds):
                    await hook(event)
            except Exception:
                logger.warning("%s hook %s failed; the operation stands", event.event_type, name, exc_info=True)

    async def run_spawn_hooks(self, event: LifecycleEvent) -> None:
        """Run all spawn hooks (seed API)."""
        await self.run(event)

    async def run_pause_hooks(self, event: LifecycleEvent) -> None:
        """Run all pause hooks (seed API)."""
        await self.run(event)

    async def run_resume_hooks(self, event: LifecycleEvent) -> None:
        """Run all resume hooks (seed API)."""
        await self.run(event)

    async def run_terminate_hooks(self, event: LifecycleEvent) -> None:
        """Run all terminate hooks (seed API)."""
        await self.run(event)


def import_hook(spec: str) -> LifecycleHook:
    """Import ``package.module:function``; a clear ``ValueError`` if it cannot be loaded."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"hook {spec!r} must look like 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"hook {spec!r} cannot be loaded: {exc}") from exc
    if not callable(target):
        raise ValueError(f"hook {spec!r} is not callable")
    hook: LifecycleHook = target
    return hook


def load_hooks(config: HookSettings, timeout_seconds: float = 10.0) -> LifecycleHooks:
    """Hooks named in settings, imported now so that a typo fails at start-up, not at the first call."""
    hooks = LifecycleHooks(timeout_seconds)
    for event_type in EVENT_TYPES:
        for spec in getattr(config, event_type):
            hooks._register(event_type, import_hook(spec))
    return hooks


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
        self._working = working
        self._durable = durable
        self._episodic = episodic
        self._settings = settings
        self._hooks = hooks or LifecycleHooks(settings.hook_timeout_seconds)
        self._clock = clock
        self._locks: weakref.WeakValueDictionary[Scope, anyio.Lock] = weakref.WeakValueDictionary()
        # One store holding working memory and the records: each transition is one transaction in it.
        same: object = working.store
        self._same: SameStoreLifecycle | None = (
            durable if same is durable and isinstance(durable, SameStoreLifecycle) else None
        )

    def session_lock(self, scope: Scope) -> anyio.Lock:
        """The per-session lock of this process (pause, resume, terminate and deletions of one session queue)."""
        return self._session_lock(scope)

    def _session_lock(self, scope: Scope) -> anyio.Lock:
        """This process's lock for one session: its two-step spawn, pauses, resumes and terminates run one at a
        time (writes do not take it)."""
        lock = self._locks.get(scope)
        if lock is None:
            lock = self._locks[scope] = anyio.Lock()
        return lock

    @property
    def hooks(self) -> LifecycleHooks:
        """The lifecycle hooks (register more with ``hooks.on_pause(...)`` etc.)."""
        return self._hooks

    # -- helpers ---------------------------------------------------------------------------------------
    async def session(self, scope: Scope) -> SessionInfo:
        """The session's record, or ``not_found``."""
        info = await self._durable.get_session(scope)
        if info is None:
            raise NotFound(
                f"session '{scope.session_id}' does not exist for agent {scope.agent_instance_id} "
                f"in project {scope.project_id}"
            )
        return info

    async def _live_session(self, scope: Scope, action: str) -> SessionInfo:
        info = await self.session(scope)
        if info.status == SessionStatus.TERMINATED:
            raise Conflict(f"session '{scope.session_id}' is terminated; cannot {action}")
        return info

    def _start(self) -> _Call:
        return _Call(self._clock(), time.perf_counter())

    def _event(self, event_type: str, started: _Call, outcome: str, detail: Mapping[str, Any]) -> EventRecord:
        # The store measures the duration as it writes the event, so its own work is counted.
        return EventRecord(event_type, started.at, started.elapsed_ms(), outcome, dict(detail), started.perf)

    async def _record_failure(
        self, scope: Scope, event_type: str, started: _Call, exc: MemoryServiceError, metadata: Any
    ) -> None:
        """A failed lifecycle call on an existing session is recorded too (best effort)."""
        detail: dict[str, Any] = {"error": exc.message}
        if isinstance(metadata, dict):
            detail["metadata"] = metadata
        try:
            # The call's deadline may be spent (that may be why it failed): recorded within the compensation window.
            with deadlines.compensation():
                await self._durable.record_event(scope, self._event(event_type, started, exc.code, detail))
        except Exception:
            logger.warning("could not record the failed %s event", event_type, exc_info=True)

    async def _finish(
        self,
        event_type: str,
        scope: Scope,
        started: _Call,
        data: dict[str, Any],
        metadata: dict[str, Any],
        agent_type_id: Any = None,
    ) -> LifecycleResult:
        event = LifecycleEvent(
            event_type=event_type,
            project_id=scope.project_id,
            agent_instance_id=scope.agent_instance_id,
            agent_type_id=agent_type_id,
            session_id=scope.session_id,
            metadata={**metadata, **{k: v for k, v in data.items() if k.endswith("_id")}},
        )
        with deadlines.not_counted():  # hooks have their own timeout (hook_timeout_seconds)
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
        project_id: Any,
        agent_instance_id: Any,
        session_id: Any,
        agent_type_id: Any = None,
        initial_state: Any = None,
        metadata: Any = None,
    ) -> LifecycleResult:
        """Create a running session with (optionally) initial working memory.

        ``conflict`` if the session exists already (use resume to continue it)."""
        started = self._start()
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        agent_type = None if agent_type_id is None else parse_uuid(agent_type_id, "agent_type_id")
        meta = check_metadata(metadata, self._settings.max_value_bytes)
        items = self._working.prepare(initial_state)
        event = self._event("spawn", started, "ok", {"initial_items": len(items), "metadata": meta})
        if self._same is not None:
            try:
                _, written = await self._same.spawn_session(
                    scope, agent_type, meta, started.at, event, items, self._working.limits
                )
            except Conflict as exc:
                await self._record_failure(scope, "spawn", started, exc, meta)
                raise
        else:
            # Under the session lock: no pause, resume or terminate of this process comes between the two steps.
            async with self._session_lock(scope):
                written = await self._spawn_two_step(scope, agent_type, meta, started, event, items)
        return await self._finish(
            "spawn",
            scope,
            started,
            {"session_id": scope.session_id, "status": "running", "initial_items": written},
            meta,
            agent_type,
        )

    async def _spawn_two_step(
        self,
        scope: Scope,
        agent_type: UUID | None,
        meta: dict[str, Any],
        started: _Call,
        event: EventRecord,
        items: Mapping[str, Item],
    ) -> int:
        """spawn with separate stores: create the session durably, then open its working memory."""
        store: object = self._working.store
        if isinstance(store, StagedSpawn):
            try:
                return await spawn_staged(
                    self._durable,
                    store,
                    scope,
                    agent_type,
                    meta,
                    started.at,
                    event,
                    items,
                    self._working.limits,
                    self._settings.spawn_lease_seconds,
                    self._clock,
                )
            except Conflict as exc:
                # Recorded on the existing session (if there is one): an operator sees the double spawn.
                await self._record_failure(scope, "spawn", started, exc, meta)
                raise
        # A working store without staging: create, then open (a re-open between the two is merged by ``open``).
        try:
            created = await self._durable.create_session(scope, agent_type, meta, started.at, event)
        except Conflict as exc:
            # Recorded on the existing session: an operator sees the double spawn.
            await self._record_failure(scope, "spawn", started, exc, meta)
            raise
        try:
            return await self._working.store.open(scope, items, started.at, self._working.limits)
        except Conflict as exc:
            # Another server terminated the session between the two steps (it exists, durably): it stays.
            await self._record_failure(scope, "spawn", started, exc, meta)
            raise
        except BaseException:
            # Leave no half-spawned session behind: a retry of spawn must succeed. Shielded, with the compensation
            # window of the call's deadline: attempted even when the deadline cut the open short.
            with deadlines.compensation():
                await self._durable.discard_session(scope)
                # A call of another server may have re-opened the session in working memory from its durable
                # record meanwhile: with the record gone (unless a pause kept it), that must not stay writable.
                try:
                    if await self._durable.get_session(scope) is None:
                        await self._working.store.forget(scope, created)
                except Exception:
                    logger.warning("could not drop the working memory of discarded session %s", scope, exc_info=True)
            raise

    # -- pause -----------------------------------------------------------------------------------------
    async def pause(
        self,
        project_id: Any,
        agent_instance_id: Any,
        session_id: Any,
        checkpoint_id: Any = None,
        label: Any = None,
        metadata: Any = None,
        keep: Any = False,
        keep_last: Any = None,
    ) -> LifecycleResult:
        """Checkpoint working memory: one atomic snapshot, stored durably. Returns the checkpoint's id. The same
        transaction prunes the session's checkpoints by the retention policy (``keep_last`` overrides the
        configured count for this call); ``keep``: this checkpoint is never pruned."""
        started = self._start()
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        given_id = None if checkpoint_id is None else validate_identifier(checkpoint_id, "checkpoint_id")
        label_text = None if label is None else check_text(label, "label", MAX_LABEL)
        meta = check_metadata(metadata, self._settings.max_value_bytes)
        retention = retention_policy(self._settings, keep_last)
        if not isinstance(keep, bool):
            raise InvalidArgument("keep must be true or false")
        try:
            async with self._session_lock(scope):
                cp_id, saved, size, created = await self._pause_locked(
                    scope, started, given_id, label_text, meta, retention, keep
                )
        except MemoryServiceError as exc:
            await self._record_failure(scope, "pause", started, exc, meta)
            raise
        return await self._finish(
            "pause",
            scope,
            started,
            {"checkpoint_id": cp_id, "items_saved": saved, "bytes": size, "created_at": iso(created)},
            meta,
        )

    async def _pause_locked(
        self,
        scope: Scope,
        started: _Call,
        given_id: str | None,
        label_text: str | None,
        meta: dict[str, Any],
        retention: Retention,
        keep: bool,
    ) -> tuple[str, int, int, datetime]:
        # No separate session check: record_pause refuses an unknown or terminated session itself.
        taken = self._clock()  # after waiting for the lock: the checkpoint's time is its snapshot's
        if self._same is not None:
            # One transaction: snapshot, checkpoint (its size and hash computed by the store), status, event.
            cp_id = given_id or new_sortable_id()
            draft = CheckpointInfo(
                checkpoint_id=cp_id,
                created_at=to_datetime(taken),
                keys_count=0,
                bytes=0,
                label=label_text,
                content_hash="",
                metadata=meta,
                keep=keep,
            )
            event = self._event("pause", started, "ok", {"checkpoint_id": cp_id, "metadata": meta})
            saved = await self._same.pause_session(scope, draft, taken, event, retention)
            return cp_id, saved.keys_count, saved.bytes, saved.created_at
        items = await self._working.store.snapshot(scope, taken)
        digest, size = content_hash(items)
        created = to_datetime(taken)
        # Generated inside the session's lock, so ids, creation times and listing order always agree.
        cp_id = given_id or new_sortable_id()
        info = CheckpointInfo(
            checkpoint_id=cp_id,
            created_at=created,
            keys_count=len(items),
            bytes=size,
            label=label_text,
            content_hash=digest,
            metadata=meta,
            keep=keep,
        )
        event = self._event("pause", started, "ok", {"checkpoint_id": cp_id, "items": len(items), "metadata": meta})
        await self._durable.record_pause(scope, info, items, event, retention)
        return cp_id, len(items), size, created

    # -- resume ----------------------------------------------------------------------------------------
    async def resume(
        self,
        project_id: Any,
        agent_instance_id: Any,
        session_id: Any,
        checkpoint_id: Any = None,
        clear_current: bool = True,
        metadata: Any = None,
    ) -> LifecycleResult:
        """Restore a checkpoint (default: the newest) into working memory, atomically.

        With ``clear_current`` (the default) working memory becomes exactly the checkpoint's state; without
        it the checkpoint's keys are written over the current ones. Keys whose TTL has passed since the
        pause are not restored. ``not_found`` for an unknown checkpoint, with working memory untouched."""
        started = self._start()
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        wanted = None if checkpoint_id is None else validate_identifier(checkpoint_id, "checkpoint_id")
        if not isinstance(clear_current, bool):
            raise InvalidArgument("clear_current must be true or false")
        meta = check_metadata(metadata, self._settings.max_value_bytes)
        if self._same is not None:
            return await self._resume_same(self._same, scope, started, wanted, clear_current, meta)
        try:
            # Under the session lock, as pause and terminate: a pause overtaken by this resume cannot then mark
            # the resumed session paused.
            async with self._session_lock(scope):
                checkpoint = await self._durable.get_checkpoint(scope, wanted)
                if checkpoint is None:
                    await self._live_session(scope, "resume")  # the better error if the session is the problem
                    if wanted is None:
                        raise NotFound(f"session '{scope.session_id}' has no checkpoints to resume from")
                    raise NotFound(f"checkpoint '{wanted}' does not exist for this session")
                if checkpoint.session_sealed:
                    # A terminate (of any process) has sealed the durable record: working memory is its to
                    # consolidate, even if its Redis seal has not landed yet.
                    await self._live_session(scope, "resume")  # terminated: that error
                    raise Conflict(
                        f"session '{scope.session_id}' is being terminated; cannot resume "
                        "(if a terminate was interrupted, call terminate again to finish it once its seal lapses)"
                    )
                restored = await self._working.store.restore(
                    scope, checkpoint.items, clear_current, started.at, self._working.limits
                )
                cp_id = checkpoint.info.checkpoint_id
                details = {"checkpoint_id": cp_id, "items": restored, "metadata": meta}
                try:
                    await self._durable.record_resume(scope, self._event("resume", started, "ok", details))
                except Conflict:
                    # A terminate sealed the durable record after the read above, and its working-memory seal came
                    # after this restore: the resume lost the race (conflict, recorded as such below); what it
                    # restored is in the terminate's snapshot, taken after its seal, consolidated or cleared there.
                    raise
                except MemoryServiceError as exc:
                    # Working memory is restored (committed): the resume has happened, so it is reported as such
                    # even if recording it fails (a store that just went away), logged loudly.
                    logger.error("resume of %s restored checkpoint %s but could not record it: %s", scope, cp_id, exc)
        except MemoryServiceError as exc:
            await self._record_failure(scope, "resume", started, exc, meta)
            raise
        return await self._finish(
            "resume",
            scope,
            started,
            {
                "checkpoint_id": cp_id,
                "items_restored": restored,
                "checkpoint_created_at": iso(checkpoint.info.created_at),
            },
            meta,
        )

    async def _resume_same(
        self,
        store: SameStoreLifecycle,
        scope: Scope,
        started: _Call,
        wanted: str | None,
        clear: bool,
        meta: dict[str, Any],
    ) -> LifecycleResult:
        """resume in one transaction of a store holding working memory and the records: restored and recorded
        together, or neither."""
        try:
            event = self._event("resume", started, "ok", {"metadata": meta})
            async with self._session_lock(scope):
                done = await store.resume_session(scope, wanted, clear, started.at, self._working.limits, event)
            if done is None:
                await self._live_session(scope, "resume")  # the better error if the session is the problem
                if wanted is None:
                    raise NotFound(f"session '{scope.session_id}' has no checkpoints to resume from")
                raise NotFound(f"checkpoint '{wanted}' does not exist for this session")
        except MemoryServiceError as exc:
            await self._record_failure(scope, "resume", started, exc, meta)
            raise
        info, restored = done
        return await self._finish(
            "resume",
            scope,
            started,
            {
                "checkpoint_id": info.checkpoint_id,
                "items_restored": restored,
                "checkpoint_created_at": iso(info.created_at),
            },
            meta,
        )

    # -- terminate -------------------------------------------------------------------------------------
    async def terminate(
        self,
        project_id: Any,
        agent_instance_id: Any,
        session_id: Any,
        task_description: Any = None,
        outcome: Any = Outcome.SUCCESS,
        lessons_learned: Any = None,
        consolidate_to_episodic: bool = True,
        cleanup_working: bool = True,
        metadata: Any = None,
        task_type: Any = DEFAULT_TERMINATE_TASK_TYPE,
    ) -> LifecycleResult:
        """End the session: consolidate working memory into an episode (of ``task_type``), then (optionally)
        clear it.

        Idempotent: a second call returns the first call's result (same ``episode_id``) and records
        nothing. The episode is written before working memory is cleared; checkpoints are kept."""
        started = self._start()
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        result_outcome = parse_outcome(outcome)
        for name, flag in (("consolidate_to_episodic", consolidate_to_episodic), ("cleanup_working", cleanup_working)):
            if not isinstance(flag, bool):
                raise InvalidArgument(f"{name} must be true or false")
        meta = check_metadata(metadata, self._settings.max_value_bytes)
        description = None if task_description is None else check_text(task_description, "task_description", 20_000)
        # Validate the episode's fields before anything is written.
        draft = self._episodic.build(
            scope.project_id,
            scope.agent_instance_id,
            task_type,
            description or f"Session {scope.session_id} completed",
            result_outcome,
            session_id=scope.session_id,
            lessons_learned=lessons_learned,
            importance_score=0.6,
            metadata=meta,
        )

        # One terminate (and no pause or resume) of this session at a time in this process: a terminate that
        # failed and unsealed cannot let a write slip between a concurrent terminate's snapshot and its clear.
        async with self._session_lock(scope):
            done = await self._terminate_locked(
                scope, started, draft, meta, result_outcome, consolidate_to_episodic, cleanup_working
            )
        if isinstance(done, LifecycleResult):
            return done
        return await self._finish("terminate", scope, started, done, meta)

    async def _terminate_locked(
        self,
        scope: Scope,
        started: _Call,
        draft: Episode,
        meta: dict[str, Any],
        result_outcome: Outcome,
        consolidate_to_episodic: bool,
        cleanup_working: bool,
    ) -> LifecycleResult | dict[str, Any]:
        """terminate's work under the session lock: a result to return as it is, or a dict to finish with."""
        info = await self.session(scope)
        if info.status == SessionStatus.TERMINATED:
            stored = dict(info.terminate_result or {})
            # Working memory marked terminated again (the first call may have failed before it did).
            if await self._working.store.mark_terminated(scope, started.at, clear=bool(stored.get("items_cleared"))):
                # The first call failed between recording and clearing (so its hooks never ran either):
                # finish its job now. Nothing new is recorded; the result is the first call's.
                return stored
            return LifecycleResult(True, "terminate", "session was already terminated", stored, 0.0)

        # The seal's owner: only this call unseals what it sealed, and another terminate of the session (of any
        # process) is refused until this one is done or its lease runs out.
        token = uuid4().hex
        lease = self._settings.terminate_lease_seconds
        try:
            sealed_at = self._clock()
            await self._seal(scope, token, sealed_at, lease)
        except MemoryServiceError as exc:
            # Nothing was sealed: record the failed call (every lifecycle call records its event) and stop.
            await self._record_failure(scope, "terminate", started, exc, meta)
            raise
        recorded = False
        try:
            items = await self._working.store.snapshot(scope, started.at)
            episode = None
            vector = None
            if consolidate_to_episodic:
                episode = draft.model_copy(
                    update={
                        "outcome_details": f"Session terminated ({result_outcome.value}) with "
                        f"{len(items)} working-memory items",
                        "context_summary": summarize_state(items),
                        "metadata": {**meta, "state_keys": sorted(items)[:200]},
                    }
                )
                vectors = await self._episodic.embed([episode_text(episode)])
                vector = vectors[0] if vectors else None
            result = {
                "episode_id": str(episode.episode_id) if episode else None,
                "state_items_consolidated": len(items) if consolidate_to_episodic else 0,
                "items_cleared": len(items) if cleanup_working else 0,
                "outcome": result_outcome.value,
            }
            event = self._event("terminate", started, "ok", {**result, "metadata": meta})
            # A failed or slow embedding leaves the episode without a vector, embedded later (mcp_memory.backfill).
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
            await self._record_failure(scope, "terminate", started, exc, meta)
            raise
        finally:
            if not recorded:
                with deadlines.compensation():
                    try:
                        # Unless a concurrent terminate has recorded it meanwhile: then it stays sealed.
                        current = await self._durable.get_session(scope)
                        if current is not None and current.status != SessionStatus.TERMINATED:
                            await self._unseal(scope, token)
                    except Exception:
                        logger.warning("could not unseal %s after a failed terminate", scope, exc_info=True)
        if stored != result:
            # A concurrent terminate won the race; its result is the answer and it does the cleanup.
            return LifecycleResult(True, "terminate", "session was already terminated", stored, 0.0)
        # Recorded: working memory is marked terminated whatever happened to it meanwhile (a failed terminate of
        # another server may have unsealed it after reading the record as not terminated), and cleared if asked.
        await self._working.store.mark_terminated(scope, started.at, clear=cleanup_working)
        return result

    async def _seal(self, scope: Scope, token: str, now: float, lease: float) -> None:
        """Refuse writes, pauses and resumes of the session from now on, in every process, as the terminate
        ``token`` (``Conflict`` if another terminate holds the seal, its lease not run out). With separate stores
        the durable record is sealed first (a pause checks it as it records its checkpoint, Redis re-opens a
        session it lost from it, sealed, and it decides between concurrent terminates), then working memory; if the
        second fails, neither stays sealed by this token."""
        working: object = self._working.store
        if working is self._durable:
            await self._durable.seal(scope, token, now, lease)
            return
        await self._durable.seal(scope, token, now, lease)
        try:
            await self._working.store.seal(scope, token, now, lease)
        except BaseException:
            with deadlines.compensation():
                try:
                    await self._durable.unseal(scope, token)
                except Exception:
                    logger.warning("could not unseal %s after sealing its working memory failed", scope, exc_info=True)
            raise

    async def _unseal(self, scope: Scope, token: str) -> None:
        """Undo :meth:`_seal` of ``token``, each store clearing the seal only if ``token`` still holds it (never
        another terminate's). Working memory first: while the durable seal stands no other terminate can seal, so
        one that seals next (or takes over an expired seal) finds the Redis seal gone (or expired) too; if the
        first unseal fails, both stay sealed until the lease runs out."""
        working: object = self._working.store
        if working is not self._durable:
            await self._working.store.unseal(scope, token)
        await self._durable.unseal(scope, token)

    # -- list_checkpoints ------------------------------------------------------------------------------
    async def list_checkpoints(
        self,
        project_id: Any,
        agent_instance_id: Any,
        session_id: Any,
        limit: Any = 50,
        before: Any = None,
    ) -> list[dict[str, Any]]:
        """The session's checkpoints, newest first; page with ``before`` (a checkpoint id)."""
        scope = Scope.parse(project_id, agent_instance_id, session_id)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CHECKPOINT_PAGE:
            raise InvalidArgument(f"limit must be an integer from 1 to {MAX_CHECKPOINT_PAGE}")
        cursor = None if before is None else validate_identifier(before, "before")
        await self.session(scope)
        infos = await self._durable.list_checkpoints(scope, limit, cursor)
        return [
            {
                "checkpoint_id": i.checkpoint_id,
                "created_at": iso(i.created_at),
                "keys_count": i.keys_count,
                "bytes": i.bytes,
                "label": i.label,
                "keep": i.keep,
            }
            for i in infos
        ]


__all__ = [
    "DEFAULT_TERMINATE_TASK_TYPE",
    "AgentLifecycleManager",
    "LifecycleHook",
    "LifecycleHooks",
    "import_hook",
    "load_hooks",
]
