"""The two-step lifecycle strategy: working memory in a store of its own (Redis), so that each transition is a
working-store call and a durable one, under this process's session lock, with the compensation described at each
step (see :mod:`~mcp_memory.services.strategies` for the one-transaction strategy and the protocol both answer).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from mcp_memory import deadlines, faults
from mcp_memory.errors import Conflict, MemoryServiceError, Respawned
from mcp_memory.models import (
    CheckpointData,
    CheckpointInfo,
    Item,
    PackedCheckpoint,
    PackedState,
    Scope,
    content_hash,
    snapshot_made_from,
)
from mcp_memory.services.lifecycle_context import (
    Call,
    Checkpointed,
    LifecycleContext,
    Restored,
    checkpoint_id_and_time,
)
from mcp_memory.services.staged_spawn import spawn_staged
from mcp_memory.services.store_capabilities import StoreCapabilities
from mcp_memory.stores.ports import EventRecord, Incarnation, Retention, StagedSpawn, respawned

logger = logging.getLogger(__name__)


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
        cp_id, created = checkpoint_id_and_time(given_id, taken)  # its id made from that same reading
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
        # The session the snapshot names (Redis: ``:i``) is the one a failure of this pause is recorded on.
        started.learned(snapshot_made_from(state))
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
        await faults.reached("pause.snapshotted")
        detail = {"checkpoint_id": cp_id, "items": count, "metadata": meta}
        event = self._ctx.event("pause", started, "ok", detail)
        # A Redis snapshot carries its order among the session's transitions (PackedState.order) into the record: a
        # resume of another server that restored after it and recorded first keeps the session running. And the
        # durable session it was read from (PackedState.made_from): deleted and spawned again since, the record is
        # refused (Respawned) rather than made a checkpoint of the new session.
        await self._ctx.durable.record_pause(scope, info, state, event, retention)
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
            checkpoint = await self._checkpoint(scope, wanted, copy_min, started)
            await faults.reached("resume.read")
            limits = ctx.working.limits
            restored: int
            # The restore's order among the session's transitions (Redis), which its record carries: a pause of another
            # server that snapshotted after it and recorded first keeps the session paused.
            order: int | None = None
            # The durable session the checkpoint was read from: the restore goes only into working memory made from
            # it, and the record only onto it; deleted and spawned again under its id meanwhile, Respawned, and the
            # new session is left as it is (its state never replaced by the old one's checkpoint).
            made_from: datetime | None = None
            if isinstance(checkpoint, PackedCheckpoint):
                packed = caps.packed
                assert packed is not None
                # Read without its state: a checkpoint of copy_min keys or more that names a snapshot. Its copy is taken
                # only if the copy's tag carries that snapshot's nonce.
                snapshot = checkpoint.snapshot
                big = copy_min is not None and checkpoint.info.keys_count >= copy_min
                restoration = None
                if copies is not None and big and snapshot is not None:
                    restoration = await copies.take_copy(scope, snapshot, now, limits, checkpoint.made_from)
                    if restoration is None:  # no copy of it: its text, read now (the same checkpoint, by its id)
                        read = await self._checkpoint(scope, checkpoint.info.checkpoint_id, None, started)
                        assert isinstance(read, PackedCheckpoint)
                        if read.made_from != checkpoint.made_from:
                            raise respawned(scope.session_id, "resume")  # (another session's checkpoint of that id)
                        checkpoint = read
                if restoration is None:
                    assert isinstance(checkpoint, PackedCheckpoint)
                    restoration = await packed.restore_packed(
                        scope, checkpoint.state, clear, now, limits, checkpoint.made_from
                    )
                restored, order, made_from = restoration.items, restoration.order, checkpoint.made_from
            else:
                restored = await ctx.working.store.restore(scope, checkpoint.items, clear, now, limits)
            cp_id = checkpoint.info.checkpoint_id
            details = {"checkpoint_id": cp_id, "items": restored, "metadata": meta}
            await faults.reached("resume.restored")
            event = ctx.event("resume", started, "ok", details)
            try:
                await ctx.durable.record_resume(scope, event, retention, order=order, made_from=made_from)
            except Respawned:
                # The session resumed is gone (its deletion erased the working memory restored): nothing of it is
                # recorded on the session now holding its id, not even as an event.
                raise
            except Conflict as exc:
                # A terminate (or a deletion) of another server sealed the durable record after the read above; a
                # terminate's working-memory seal came after this restore, which it would have refused: the restore
                # is done and in the terminate's snapshot. So the resume is answered done, its event recorded
                # without marking the session running again.
                logger.warning("resume of %s restored checkpoint %s as the session was sealed: %s", scope, cp_id, exc)
                await self._record_overtaken(scope, event, retention, made_from)
            except MemoryServiceError as exc:
                # Working memory is restored (committed): the resume has happened, so it is reported as such even
                # if recording it fails (a store that just went away), logged loudly.
                logger.error("resume of %s restored checkpoint %s but could not record it: %s", scope, cp_id, exc)
        return Restored(cp_id, restored, checkpoint.info.created_at)

    async def _record_overtaken(
        self, scope: Scope, event: EventRecord, retention: Retention, made_from: datetime | None
    ) -> None:
        """The event of a resume whose restore is done but whose record met a seal (best effort), on the session its
        checkpoint was read from (``made_from``; None: whichever holds the id)."""
        try:
            await self._ctx.durable.record_event(scope, event, retention, made_from=made_from)
        except MemoryServiceError as exc:
            logger.error("could not record the resume of %s: %s", scope, exc)

    async def _checkpoint(
        self, scope: Scope, wanted: str | None, state_below: int | None, started: Call
    ) -> CheckpointData | PackedCheckpoint:
        """The checkpoint to resume (None: the newest), packed where both stores offer it (the state as one text;
        with ``state_below``, only if it has fewer keys than that or names no snapshot: else metadata and the
        session's seal only);
        refused if a terminate has sealed the session. The session it was read from (or, if none, the session read
        to say why) is noted as the one ``started`` works on."""
        packed_reads = self._capabilities().packed_reads
        checkpoint: CheckpointData | PackedCheckpoint | None
        if packed_reads is not None:
            checkpoint = await packed_reads.get_packed_checkpoint(scope, wanted, state_below=state_below)
        else:
            checkpoint = await self._ctx.durable.get_checkpoint(scope, wanted)
        if checkpoint is None:
            await self._ctx.no_checkpoint(scope, wanted, started)
        if isinstance(checkpoint, PackedCheckpoint):
            started.learned(checkpoint.made_from)
        if checkpoint.session_sealed:
            # A terminate (of any process) has sealed the durable record: working memory is its to consolidate,
            # even if its Redis seal has not landed yet.
            await self._ctx.live_session(scope, "resume", started)  # terminated: that error
            raise Conflict(
                f"session '{scope.session_id}' is being terminated; cannot resume "
                "(if a terminate was interrupted, call terminate again to finish it once its seal lapses)"
            )
        return checkpoint

    def _same_store(self) -> bool:
        """A store holding working memory and the records without :class:`SameStoreLifecycle`: one seal."""
        working: object = self._ctx.working.store
        return working is self._ctx.durable

    async def seal(
        self, scope: Scope, token: str, now: float, lease: float, made_from: Incarnation | None = None
    ) -> bool:
        """The durable record is sealed first (a pause checks it as it records its checkpoint, Redis re-opens a
        session it lost from it, sealed, and it decides between concurrent terminates), then working memory; if
        the second fails, neither stays sealed by this token. A record terminated meanwhile (by another server's
        terminate, which marks working memory itself) is left as it is, and so is working memory."""
        durable, working = self._ctx.durable, self._ctx.working.store
        if not await durable.seal(scope, token, now, lease):
            return False
        if self._same_store():
            return True
        try:
            await working.seal(scope, token, now, lease, made_from)
        except BaseException:
            with deadlines.compensation():
                try:
                    await durable.unseal(scope, token)
                except Exception:
                    logger.warning("could not unseal %s after sealing its working memory failed", scope, exc_info=True)
            raise
        return True

    async def unseal(self, scope: Scope, token: str) -> None:
        """Each store clears the seal only if ``token`` still holds it. Working memory first: while the durable seal
        stands no other terminate can seal, so one that seals next (or takes over an expired seal) finds the Redis
        seal gone (or expired) too; if the first unseal fails, both stay sealed until the lease runs out."""
        durable, working = self._ctx.durable, self._ctx.working.store
        if not self._same_store():
            await working.unseal(scope, token)
        await durable.unseal(scope, token)


__all__ = ["TwoStep"]
