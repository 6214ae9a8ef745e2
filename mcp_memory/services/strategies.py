"""How a lifecycle transition reaches the stores: one transaction, or two steps.

- :class:`OneTransaction`: the working store *is* the durable store and offers
  :class:`~mcp_memory.stores.ports.SameStoreLifecycle` (SQLite, Postgres without Redis). Spawn, pause and resume are
  each one transaction in it: a spawn is never half-done, a resume is restored and recorded together or not at all.
- :class:`TwoStep`: working memory lives in a separate store (Redis). Each transition is a working-store call and a
  durable one, under this process's session lock, with the compensation described at each step.

:class:`~mcp_memory.services.lifecycle.AgentLifecycleManager` validates the arguments, records failures, runs the
hooks and shapes the results; a strategy only moves the state. Both answer :class:`LifecycleStrategy`.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, Protocol
from uuid import UUID, uuid4

import anyio

from mcp_memory import deadlines, faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, MemoryServiceError, NotFound
from mcp_memory.ids import new_sortable_id
from mcp_memory.models import (
    CheckpointData,
    CheckpointInfo,
    Item,
    PackedCheckpoint,
    PackedState,
    Scope,
    SessionInfo,
    SessionStatus,
    content_hash,
    to_datetime,
)
from mcp_memory.services.session_control import retention_policy
from mcp_memory.services.staged_spawn import spawn_staged
from mcp_memory.services.store_capabilities import StoreCapabilities
from mcp_memory.services.working import WorkingMemory
from mcp_memory.stores.ports import (
    DurableStore,
    EventRecord,
    PauseStamp,
    Retention,
    SameStoreLifecycle,
    StagedSpawn,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Call:
    """When a lifecycle call began: by the service clock (recorded times, TTL) and by perf_counter (durations)."""

    at: float
    perf: float

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.perf) * 1000.0


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
            lock = self._locks[scope] = anyio.Lock()
        return lock

    def start(self) -> Call:
        return Call(self.clock(), time.perf_counter())

    def event(self, event_type: str, started: Call, outcome: str, detail: Mapping[str, Any]) -> EventRecord:
        # The store measures the duration as it writes the event, so its own work is counted.
        return EventRecord(event_type, started.at, started.elapsed_ms(), outcome, dict(detail), started.perf)

    async def record_failure(
        self, scope: Scope, event_type: str, started: Call, exc: MemoryServiceError, metadata: Mapping[str, Any]
    ) -> None:
        """A failed lifecycle call on an existing session is recorded too (best effort)."""
        detail: dict[str, Any] = {"error": exc.message, "metadata": dict(metadata)}
        try:
            # The call's deadline may be spent (that may be why it failed): recorded within the compensation window.
            with deadlines.compensation():
                event = self.event(event_type, started, exc.code, detail)
                await self.durable.record_event(scope, event, retention_policy(self.settings))
        except Exception:
            logger.warning("could not record the failed %s event", event_type, exc_info=True)

    async def session(self, scope: Scope) -> SessionInfo:
        """The session's record, or ``not_found``."""
        info = await self.durable.get_session(scope)
        if info is None:
            raise NotFound(
                f"session '{scope.session_id}' does not exist for agent {scope.agent_instance_id} "
                f"in project {scope.project_id}"
            )
        return info

    async def live_session(self, scope: Scope, action: str) -> SessionInfo:
        info = await self.session(scope)
        if info.status == SessionStatus.TERMINATED:
            raise Conflict(f"session '{scope.session_id}' is terminated; cannot {action}")
        return info

    async def no_checkpoint(self, scope: Scope, wanted: str | None) -> NoReturn:
        """Why there is nothing to resume: the session's own error if it is the problem, else ``not_found``."""
        await self.live_session(scope, "resume")
        if wanted is None:
            raise NotFound(f"session '{scope.session_id}' has no checkpoints to resume from")
        raise NotFound(f"checkpoint '{wanted}' does not exist for this session")


def _checkpoint_id(given_id: str | None, taken: float) -> tuple[str, datetime]:
    """A pause's checkpoint id (``given_id``, or one generated) and creation time, both from ONE clock reading
    ``taken`` (to the microsecond the stores keep): generated ids then sort as the recorded creation times do, also
    across servers (where each server's clock at its pause decides)."""
    created = to_datetime(taken)
    at_us = max(0, (created - _EPOCH) // timedelta(microseconds=1))
    return given_id or new_sortable_id(at_us=at_us), created


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LifecycleStrategy(Protocol):
    """The store-facing half of spawn, pause, resume and terminate's seal."""

    async def spawn(
        self,
        scope: Scope,
        agent_type: UUID | None,
        meta: dict[str, Any],
        started: Call,
        event: EventRecord,
        items: Mapping[str, Item],
    ) -> int:
        """Create the session with its initial items; the count written. ``Conflict`` if it exists."""
        ...

    async def pause(
        self,
        scope: Scope,
        started: Call,
        given_id: str | None,
        label: str | None,
        meta: dict[str, Any],
        retention: Retention,
        keep: bool,
    ) -> Checkpointed:
        """Checkpoint working memory (the caller holds the session lock), marked ``keep`` (never pruned), and prune
        the session's checkpoints by ``retention`` in the same transaction."""
        ...

    async def resume(
        self, scope: Scope, started: Call, wanted: str | None, clear: bool, meta: dict[str, Any], retention: Retention
    ) -> Restored:
        """Restore a checkpoint (None: the newest) and record it, pruning the session's events by ``retention``
        as a pause does."""
        ...

    async def seal(self, scope: Scope, token: str, now: float, lease: float) -> None:
        """Refuse writes, pauses and resumes of the session from now on, in every process, as terminate ``token``
        (``Conflict`` if another terminate holds the seal, its lease not run out)."""
        ...

    async def unseal(self, scope: Scope, token: str) -> None:
        """Undo :meth:`seal` of ``token`` (never another terminate's)."""
        ...


class OneTransaction:
    """Each transition one transaction of a store holding working memory and the records."""

    def __init__(self, ctx: LifecycleContext, store: SameStoreLifecycle) -> None:
        self._ctx = ctx
        self._store = store

    async def spawn(
        self,
        scope: Scope,
        agent_type: UUID | None,
        meta: dict[str, Any],
        started: Call,
        event: EventRecord,
        items: Mapping[str, Item],
    ) -> int:
        _, written = await self._store.spawn_session(
            scope, agent_type, meta, started.at, event, items, self._ctx.working.limits
        )
        return written

    async def pause(
        self,
        scope: Scope,
        started: Call,
        given_id: str | None,
        label: str | None,
        meta: dict[str, Any],
        retention: Retention,
        keep: bool,
    ) -> Checkpointed:
        def stamp() -> PauseStamp:
            # The checkpoint's time is its snapshot's, its id made from that same reading.
            taken = self._ctx.clock()
            cp_id, created = _checkpoint_id(given_id, taken)
            draft = CheckpointInfo(
                checkpoint_id=cp_id,
                created_at=created,
                keys_count=0,
                bytes=0,
                label=label,
                content_hash="",
                metadata=meta,
                keep=keep,
            )
            event = self._ctx.event("pause", started, "ok", {"checkpoint_id": cp_id, "metadata": meta})
            return PauseStamp(draft, taken, event)

        # One transaction: snapshot, checkpoint (its size and hash computed by the store), status, event. Stamped
        # after waiting for this process's lock, and again under the store's if another process's pause, stamped
        # later, took that lock first: the newest checkpoint by time is the latest state.
        first = stamp()
        saved = await self._store.pause_session(scope, first.info, first.now, first.event, retention, restamp=stamp)
        return Checkpointed(saved.checkpoint_id, saved.keys_count, saved.bytes, saved.created_at)

    async def resume(
        self, scope: Scope, started: Call, wanted: str | None, clear: bool, meta: dict[str, Any], retention: Retention
    ) -> Restored:
        """Restored and recorded together, or neither."""
        event = self._ctx.event("resume", started, "ok", {"metadata": meta})
        limits = self._ctx.working.limits
        async with self._ctx.session_lock(scope):
            # The restore's time is read after waiting for the lock, as a pause's: a key whose TTL ran out meanwhile
            # is not restored (nor counted).
            now = self._ctx.clock()
            done = await self._store.resume_session(scope, wanted, clear, now, limits, event, retention)
        if done is None:
            await self._ctx.no_checkpoint(scope, wanted)
        info, restored = done
        return Restored(info.checkpoint_id, restored, info.created_at)

    async def seal(self, scope: Scope, token: str, now: float, lease: float) -> None:
        await self._ctx.durable.seal(scope, token, now, lease)

    async def unseal(self, scope: Scope, token: str) -> None:
        await self._ctx.durable.unseal(scope, token)


class TwoStep:
    """Each transition a working-store call and a durable one, under this process's session lock."""

    def __init__(self, ctx: LifecycleContext) -> None:
        self._ctx = ctx
        self._caps: StoreCapabilities | None = None

    def _capabilities(self) -> StoreCapabilities:
        working, durable = self._ctx.working.store, self._ctx.durable
        caps = self._caps
        if caps is None or caps.working is not working or caps.durable is not durable:
            caps = self._caps = StoreCapabilities.of(working, durable)
        return caps

    async def spawn(
        self,
        scope: Scope,
        agent_type: UUID | None,
        meta: dict[str, Any],
        started: Call,
        event: EventRecord,
        items: Mapping[str, Item],
    ) -> int:
        # Under the session lock: no pause, resume or terminate of this process comes between the two steps.
        async with self._ctx.session_lock(scope):
            store: object = self._ctx.working.store
            if isinstance(store, StagedSpawn):
                return await spawn_staged(
                    self._ctx.durable,
                    store,
                    scope,
                    agent_type,
                    meta,
                    started.at,
                    event,
                    items,
                    self._ctx.working.limits,
                    self._ctx.settings.spawn_lease_seconds,
                    self._ctx.clock,
                )
            return await self._create_then_open(scope, agent_type, meta, started, event, items)

    async def _create_then_open(
        self,
        scope: Scope,
        agent_type: UUID | None,
        meta: dict[str, Any],
        started: Call,
        event: EventRecord,
        items: Mapping[str, Item],
    ) -> int:
        """A working store without staging: create, then open (a re-open between the two is merged by ``open``).
        A ``Conflict`` of ``open`` (another server terminated the session between the two steps) leaves the
        session, which exists durably."""
        durable = self._ctx.durable
        created = await durable.create_session(scope, agent_type, meta, started.at, event)
        try:
            return await self._ctx.working.store.open(scope, items, started.at, self._ctx.working.limits)
        except Conflict:
            raise
        except BaseException:
            # Leave no half-spawned session behind: a retry of spawn must succeed. Shielded, with the compensation
            # window of the call's deadline: attempted even when the deadline cut the open short.
            with deadlines.compensation():
                await durable.discard_session(scope)
                # A call of another server may have re-opened the session in working memory from its durable
                # record meanwhile: with the record gone (unless a pause kept it), that must not stay writable.
                try:
                    if await durable.get_session(scope) is None:
                        await self._ctx.working.store.forget(scope, created)
                except Exception:
                    logger.warning("could not drop the working memory of discarded session %s", scope, exc_info=True)
            raise

    async def pause(
        self,
        scope: Scope,
        started: Call,
        given_id: str | None,
        label: str | None,
        meta: dict[str, Any],
        retention: Retention,
        keep: bool,
    ) -> Checkpointed:
        # No separate session check: record_pause refuses an unknown or terminated session itself.
        taken = self._ctx.clock()  # after waiting for the lock: the checkpoint's time is its snapshot's
        cp_id, created = _checkpoint_id(given_id, taken)  # its id made from that same reading
        caps = self._capabilities()
        state: Mapping[str, Item] | PackedState
        # A store that keeps a pause's copy (Redis): the checkpoint's record names the snapshot that made one, in the
        # same durable write, and a resume takes only the copy carrying that name.
        nonce, copied = uuid4().hex, False
        if caps.copies is not None:
            state, copied = await caps.copies.snapshot_for_pause(scope, taken, nonce)
            count, size, digest = state.keys_count, state.bytes, state.content_hash
        elif caps.packed is not None:
            # The state packed as the durable store keeps it, count, size and hash included: no object per item.
            state = await caps.packed.snapshot_packed(scope, taken)
            count, size, digest = state.keys_count, state.bytes, state.content_hash
        else:
            state = await self._ctx.working.store.snapshot(scope, taken)
            digest, size = content_hash(state)
            count = len(state)
        info = CheckpointInfo(
            checkpoint_id=cp_id,
            created_at=created,
            keys_count=count,
            bytes=size,
            label=label,
            content_hash=digest,
            metadata=meta,
            keep=keep,
            snapshot=nonce if copied else None,
        )
        # The snapshot's order among the session's transitions (Redis): a resume of another server that restored after
        # it and recorded first keeps the session running (the record keeps this checkpoint all the same).
        order = state.order if isinstance(state, PackedState) else None
        await faults.reached("pause.snapshotted")
        detail = {"checkpoint_id": cp_id, "items": count, "metadata": meta}
        event = self._ctx.event("pause", started, "ok", detail)
        await self._ctx.durable.record_pause(scope, info, state, event, retention, order=order)
        return Checkpointed(cp_id, count, size, created)

    async def resume(
        self, scope: Scope, started: Call, wanted: str | None, clear: bool, meta: dict[str, Any], retention: Retention
    ) -> Restored:
        ctx = self._ctx
        # Under the session lock, as pause and terminate: a pause overtaken by this resume cannot then mark the
        # resumed session paused.
        async with ctx.session_lock(scope):
            now = ctx.clock()  # after waiting for the lock, as a pause's time: keys expired meanwhile stay out
            caps = self._capabilities()
            # With clear, the pause's copy (Redis) may stand for a checkpoint of copy_min_keys keys or more: such a
            # checkpoint is read without its state, which is read only if the copy cannot be used.
            copies = caps.copies if clear else None
            copy_min = copies.copy_min_keys if copies is not None else None
            checkpoint = await self._checkpoint(scope, wanted, copy_min)
            limits = ctx.working.limits
            restored: int
            # The restore's order among the session's transitions (Redis), which its record carries: a pause of another
            # server that snapshotted after it and recorded first keeps the session paused.
            order: int | None = None
            if isinstance(checkpoint, PackedCheckpoint):
                packed = caps.packed
                assert packed is not None
                # Read without its state: a checkpoint of copy_min keys or more that names a snapshot. Its copy is taken
                # only if the copy's tag carries that snapshot's nonce.
                snapshot = checkpoint.snapshot
                big = copy_min is not None and checkpoint.info.keys_count >= copy_min
                restoration = None
                if copies is not None and big and snapshot is not None:
                    restoration = await copies.take_copy(scope, snapshot, now, limits)
                    if restoration is None:  # no copy of it: its text, read now (the same checkpoint, by its id)
                        checkpoint = await self._checkpoint(scope, checkpoint.info.checkpoint_id, None)
                if restoration is None:
                    assert isinstance(checkpoint, PackedCheckpoint)
                    restoration = await packed.restore_packed(scope, checkpoint.state, clear, now, limits)
                restored, order = restoration.items, restoration.order
            else:
                restored = await ctx.working.store.restore(scope, checkpoint.items, clear, now, limits)
            cp_id = checkpoint.info.checkpoint_id
            details = {"checkpoint_id": cp_id, "items": restored, "metadata": meta}
            await faults.reached("resume.restored")
            event = ctx.event("resume", started, "ok", details)
            try:
                await ctx.durable.record_resume(scope, event, retention, order=order)
            except Conflict as exc:
                # A terminate (or a deletion) of another server sealed the durable record after the read above; a
                # terminate's working-memory seal came after this restore, which it would have refused: the restore
                # is done and in the terminate's snapshot. So the resume is answered done, its event recorded
                # without marking the session running again.
                logger.warning("resume of %s restored checkpoint %s as the session was sealed: %s", scope, cp_id, exc)
                await self._record_overtaken(scope, event, retention)
            except MemoryServiceError as exc:
                # Working memory is restored (committed): the resume has happened, so it is reported as such even
                # if recording it fails (a store that just went away), logged loudly.
                logger.error("resume of %s restored checkpoint %s but could not record it: %s", scope, cp_id, exc)
        return Restored(cp_id, restored, checkpoint.info.created_at)

    async def _record_overtaken(self, scope: Scope, event: EventRecord, retention: Retention) -> None:
        """The event of a resume whose restore is done but whose record met a seal (best effort)."""
        try:
            await self._ctx.durable.record_event(scope, event, retention)
        except MemoryServiceError as exc:
            logger.error("could not record the resume of %s: %s", scope, exc)

    async def _checkpoint(
        self, scope: Scope, wanted: str | None, state_below: int | None
    ) -> CheckpointData | PackedCheckpoint:
        """The checkpoint to resume (None: the newest), packed where both stores offer it (the state as one text;
        with ``state_below``, only if it has fewer keys than that or names no snapshot: else metadata and the
        session's seal only);
        refused if a terminate has sealed the session."""
        packed_reads = self._capabilities().packed_reads
        checkpoint: CheckpointData | PackedCheckpoint | None
        if packed_reads is not None:
            checkpoint = await packed_reads.get_packed_checkpoint(scope, wanted, state_below=state_below)
        else:
            checkpoint = await self._ctx.durable.get_checkpoint(scope, wanted)
        if checkpoint is None:
            await self._ctx.no_checkpoint(scope, wanted)
        if checkpoint.session_sealed:
            # A terminate (of any process) has sealed the durable record: working memory is its to consolidate,
            # even if its Redis seal has not landed yet.
            await self._ctx.live_session(scope, "resume")  # terminated: that error
            raise Conflict(
                f"session '{scope.session_id}' is being terminated; cannot resume "
                "(if a terminate was interrupted, call terminate again to finish it once its seal lapses)"
            )
        return checkpoint

    def _same_store(self) -> bool:
        """A store holding working memory and the records without :class:`SameStoreLifecycle`: one seal."""
        working: object = self._ctx.working.store
        return working is self._ctx.durable

    async def seal(self, scope: Scope, token: str, now: float, lease: float) -> None:
        """The durable record is sealed first (a pause checks it as it records its checkpoint, Redis re-opens a
        session it lost from it, sealed, and it decides between concurrent terminates), then working memory; if
        the second fails, neither stays sealed by this token."""
        durable, working = self._ctx.durable, self._ctx.working.store
        await durable.seal(scope, token, now, lease)
        if self._same_store():
            return
        try:
            await working.seal(scope, token, now, lease)
        except BaseException:
            with deadlines.compensation():
                try:
                    await durable.unseal(scope, token)
                except Exception:
                    logger.warning("could not unseal %s after sealing its working memory failed", scope, exc_info=True)
            raise

    async def unseal(self, scope: Scope, token: str) -> None:
        """Each store clears the seal only if ``token`` still holds it. Working memory first: while the durable seal
        stands no other terminate can seal, so one that seals next (or takes over an expired seal) finds the Redis
        seal gone (or expired) too; if the first unseal fails, both stay sealed until the lease runs out."""
        durable, working = self._ctx.durable, self._ctx.working.store
        if not self._same_store():
            await working.unseal(scope, token)
        await durable.unseal(scope, token)


__all__ = [
    "Call",
    "Checkpointed",
    "LifecycleContext",
    "LifecycleStrategy",
    "OneTransaction",
    "Restored",
    "TwoStep",
]
