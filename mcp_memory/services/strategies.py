"""How a lifecycle transition reaches the stores: one transaction, or two steps.

- :class:`OneTransaction`: the working store *is* the durable store and offers
  :class:`~mcp_memory.stores.ports.SameStoreLifecycle` (SQLite, Postgres without Redis). Spawn, pause and resume are
  each one transaction in it: a spawn is never half-done, a resume is restored and recorded together or not at all.
- :class:`~mcp_memory.services.two_step_strategy.TwoStep`: working memory lives in a separate store (Redis). Each
  transition is a working-store call and a durable one, under this process's session lock, with the compensation
  described at each step.

:class:`~mcp_memory.services.lifecycle.AgentLifecycleManager` validates the arguments, records failures, runs the
hooks and shapes the results; a strategy only moves the state. Both answer :class:`LifecycleStrategy`; the two-step
one, the larger, has its own module, and what both share is :mod:`~mcp_memory.services.lifecycle_context`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID

from mcp_memory.models import CheckpointInfo, Item, Scope
from mcp_memory.services.lifecycle_context import (
    Call,
    Checkpointed,
    LifecycleContext,
    Restored,
    checkpoint_id_and_time,
)
from mcp_memory.stores.ports import EventRecord, Incarnation, PauseStamp, Retention, SameStoreLifecycle


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

    async def seal(
        self, scope: Scope, token: str, now: float, lease: float, made_from: Incarnation | None = None
    ) -> bool:
        """Refuse writes, pauses and resumes of the session from now on, in every process, as terminate ``token``
        (``Conflict`` if another terminate holds the seal, its lease not run out); ``made_from``: the session as the
        terminate read it. False, and nothing sealed, if the session is terminated (or gone) since that read."""
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
            cp_id, created = checkpoint_id_and_time(given_id, taken)
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
        # later, took that lock first (the newest checkpoint by time is the latest state), or if the pause waited
        # for the store (the snapshot is of the state at its recorded time: no key expired by then, no later write).
        first = stamp()
        saved = await self._store.pause_session(
            scope, first.info, first.now, first.event, retention, restamp=stamp, clock=self._ctx.clock
        )
        return Checkpointed(saved.checkpoint_id, saved.keys_count, saved.bytes, saved.created_at)

    async def resume(
        self, scope: Scope, started: Call, wanted: str | None, clear: bool, meta: dict[str, Any], retention: Retention
    ) -> Restored:
        """Restored and recorded together, or neither."""
        event = self._ctx.event("resume", started, "ok", {"metadata": meta})
        limits = self._ctx.working.limits
        async with self._ctx.session_lock(scope):
            # The restore's time is read after waiting for the lock, as a pause's, and again by the store once it
            # holds the session's: a key whose TTL ran out meanwhile is not restored (nor counted).
            now = self._ctx.clock()
            # Nothing to restore is the store's error too, told from the session it read in that transaction.
            info, restored = await self._store.resume_session(
                scope, wanted, clear, now, limits, event, retention, clock=self._ctx.clock
            )
        return Restored(info.checkpoint_id, restored, info.created_at)

    async def seal(
        self, scope: Scope, token: str, now: float, lease: float, made_from: Incarnation | None = None
    ) -> bool:
        return await self._ctx.durable.seal(scope, token, now, lease)

    async def unseal(self, scope: Scope, token: str) -> None:
        await self._ctx.durable.unseal(scope, token)


__all__ = ["LifecycleStrategy", "OneTransaction"]
