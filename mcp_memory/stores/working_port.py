"""The working-memory port: one session's live key-value state (SQLite or Postgres tables, or Redis), and the
optional erase and staged-spawn abilities of a working store. The contracts all ports keep: :mod:`.ports`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from mcp_memory.models import Item, PackedState, Restoration, Scope, SessionInfo
from mcp_memory.stores.records import Incarnation, Limits


@runtime_checkable
class WorkingStore(Protocol):
    """One session's live key-value state.

    A session is writable once ``open`` has run and until ``seal`` runs; writes to an unknown session raise
    ``NotFound`` and writes to a sealed one raise ``Conflict``. Reads of an unknown session see nothing.
    """

    async def open(self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits) -> int:
        """Make the session writable and write its initial items, atomically. Returns the count written."""
        ...

    async def forget(self, scope: Scope, session: SessionInfo) -> None:
        """Spawn could not open the session and has discarded its durable record ``session``: drop whatever a call
        made of that record meanwhile (a store that re-opens sessions it lost from the durable store, as Redis
        does, may have re-opened it), so that the session is unknown here too. Nothing else is touched."""
        ...

    async def seal(
        self, scope: Scope, token: str, now: float, lease_seconds: float, made_from: Incarnation | None = None
    ) -> bool:
        """Refuse all further writes to the session (it is being terminated by the terminate ``token``), as the
        durable ``SessionStore.seal`` does: ``Conflict`` if another token holds the seal and its lease (``now +
        lease_seconds`` when it sealed) has not run out; a seal with no owner (a re-open of a session sealed on the
        durable store) is taken over. False (a no-op) once terminated, else True. Terminate seals the durable
        record first: a store keeping its own copy of the seal (Redis) treats a copy whose token no longer holds
        the durable seal (``SessionInfo.seal_token``) as stale, and clears it (only if that token still holds it)
        at the next write or seal that meets it. ``made_from``: the durable session the terminate read, which a
        store telling sessions of one id apart (Redis) notes on a session that does not say yet which it is
        (``mark_terminated``)."""
        ...

    async def unseal(self, scope: Scope, token: str) -> None:
        """Undo ``seal`` when terminate failed before it was recorded: only if ``token`` holds the seal (or nobody
        does); a seal another terminate has taken over stays. No-op once terminated."""
        ...

    async def set(self, scope: Scope, key: str, item: Item, now: float, limits: Limits) -> None:
        """Create or replace one key. ``TooLarge`` if it is a new key and the session is full."""
        ...

    async def get(self, scope: Scope, key: str, now: float) -> Item | None:
        """One live item, or None."""
        ...

    async def delete(self, scope: Scope, key: str, now: float) -> bool:
        """Delete one key; True if a live key was deleted. Writing rules as for ``set``."""
        ...

    async def list_keys(self, scope: Scope, prefix: str, now: float) -> list[str]:
        """Live keys starting with ``prefix``, sorted."""
        ...

    async def snapshot(self, scope: Scope, now: float) -> dict[str, Item]:
        """All live items at one instant: never half of a concurrent write."""
        ...

    async def restore(self, scope: Scope, items: Mapping[str, Item], clear: bool, now: float, limits: Limits) -> int:
        """Atomically (optionally) clear the session and write ``items``; readers see before or after only.
        Items already expired at ``now`` are skipped. Returns the count written."""
        ...

    async def clear(self, scope: Scope, now: float) -> int:
        """Delete every key of the session; returns how many live keys were deleted."""
        ...

    async def mark_terminated(self, scope: Scope, now: float, clear: bool, recorded: Incarnation | None) -> int:
        """terminate's last step, once the durable record says the session is terminated: it takes no writes for
        good (no later ``unseal``, ``restore`` or re-open changes that, whatever it was before: a failed terminate
        of another process may have unsealed it meanwhile), and with ``clear`` its keys are deleted (returns how
        many live keys were); without, they stay readable. Idempotent. Only ``recorded``, the session that
        record is of: one spawned again under the id since (after a deletion) is left as it is, and 0 returned
        (None: whichever session holds the id now)."""
        ...

    async def start(self) -> None:
        """Connect (and check what must be checked before serving)."""
        ...

    async def ping(self) -> dict[str, Any]:
        """Facts for ``mcp-memory doctor``: raises if the store does not answer, or reports ``reachable: False``
        (and ``error``) in them; ``doctor`` fails either way."""
        ...

    async def probe(self) -> dict[str, Any]:
        """Whether the store serves, for ``/readyz``: one or two trivial requests (no counts, no configuration
        reads); raises, or reports ``reachable: False`` or an ``error`` as :meth:`ping` does (``/readyz`` is 503
        either way, decided by ``runtime.not_serving`` as ``doctor`` decides)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class WorkingErase(Protocol):
    """Optional, for a working store separate from the durable store (Redis): deleting sessions' working memory
    outright, whatever their state, for ``delete_session`` and the operator's ``mcp-memory forget`` (a SQL store
    deletes its working-memory rows with the sessions' records instead)."""

    async def erase_session(self, scope: Scope, now: float, dry_run: bool = False) -> int:
        """Delete everything this store holds of the session; the count of its live keys at ``now``."""
        ...

    async def leftover(self, scope: Scope) -> str | None:
        """What a session of this scope that this store holds, and that is not a spawn's staging, notes it was made
        from ('' if nothing); None if there is none. Read by ``delete_session`` when it finds no durable session."""
        ...

    async def erase_leftover(self, scope: Scope, noted: str) -> int:
        """``delete_session`` found no durable session, twice, around :meth:`leftover`: delete what this store still
        holds of it (a re-open that raced a deletion whose last erase failed) if it still notes ``noted`` (a spawn of
        the id that completed meanwhile notes its own), but a spawn's staged state and imports' staged state, which
        are of a session not yet made; the count of keys deleted."""
        ...

    async def erase_closed(self, scope: Scope, recorded: Incarnation) -> bool:
        """A terminate's closing of ``recorded`` (``mark_terminated``) found its durable record deleted since: delete
        what this store holds of the session if it is ``recorded``'s, or only a bare terminated marker that closing
        may have left where the deletion had erased everything; one spawned again under the id since is left as it
        is. Whether anything was deleted."""
        ...

    async def erase(
        self, project_id: UUID, agent_instance_id: UUID | None, session_id: str | None, now: float, dry_run: bool
    ) -> tuple[int, int]:
        """Delete everything of the project's sessions (one agent's, or one session, if given); the live keys and
        the sessions removed (with ``dry_run``, that would be: nothing changes)."""
        ...


@runtime_checkable
class StagedSpawn(Protocol):
    """Optional, for a working store separate from the durable store (Redis): spawn's initial state is written
    *staged* (held, invisible: every call treats the session as unknown there and asks the durable store), and
    becomes the session's working memory once the durable store says the spawn completed. With
    ``SessionStore.begin_spawn`` / ``complete_spawn`` this makes a spawn whole or absent at every step."""

    async def stage(self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits, token: str) -> int:
        """Write exactly ``items`` for the spawn ``token``, staged, replacing whatever this store held under the
        scope (stale: the durable store has just created or taken the session over). Returns the count written;
        ``TooLarge`` over the key limit."""
        ...

    async def commit_staged(
        self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits, session: SessionInfo
    ) -> None:
        """The durable store has completed the spawn ``session.spawn_token``: its staged state becomes the
        session's working memory. If this store lost it meanwhile, ``items`` are written again (unless a call
        has re-opened the session already). Idempotent."""
        ...

    async def drop_staged(self, scope: Scope, token: str) -> None:
        """The spawn ``token`` failed before completing: drop its staged state (nothing else)."""
        ...


@runtime_checkable
class StagedImport(Protocol):
    """Optional, for a working store separate from the durable store (Redis): an import's working memory is staged
    for every session first (invisible, live sessions untouched), and switched in once the durable import has
    committed, all sessions in one step where the store can (one Redis script; in Cluster, one per session)."""

    async def stage_import(
        self,
        scope: Scope,
        items: Mapping[str, Item],
        now: float,
        limits: Limits,
        token: str,
        made_from: Incarnation | None = None,
    ) -> int:
        """Stage exactly ``items`` as ``scope``'s working memory for the import ``token``; the count written.
        ``TooLarge`` over the key limit. The staged state expires by itself if no switch or drop comes (a crash).
        ``made_from``: the durable record the import writes for the session: once it has committed, a call that
        finds the session missing before the switch (or with no switch coming: a crash) re-opens it from this staged
        state, as the switch would have made it, rather than from its newest checkpoint."""
        ...

    async def drop_import(self, scopes: Sequence[Scope], token: str) -> None:
        """Drop the import ``token``'s staged state of ``scopes`` (nothing else)."""
        ...

    async def switch_import(
        self,
        scopes: Sequence[Scope],
        token: str,
        now: float,
        sealed: AbstractSet[Scope] = frozenset(),
        terminated: AbstractSet[Scope] = frozenset(),
        made_from: Mapping[Scope, Incarnation] | None = None,
    ) -> list[Scope]:
        """Make the staged state of ``scopes`` their working memory (replacing whatever was live), together, with the
        expiry its items give it at ``now``; the sessions switched. A session deleted since its staging
        (``delete_session`` or ``forget`` between the durable commit and the switch) is not: it stays deleted, and
        its staged state is dropped. Those in ``sealed`` (a terminate was cut off, the
        durable record says sealed) are switched in sealed by nobody, refusing writes as a re-open of such a session
        does; those in ``terminated`` (terminated, keeping their keys) terminated, refusing every write, and closed
        as ``mark_terminated`` closes one keeping its keys, in the same step (nothing is left for a later one); the
        others open. ``made_from``: each session's durable record as imported, which a store telling sessions of one id
        apart (Redis) notes, as a spawn does (``mark_terminated``). A session a call has re-opened from its staged
        state since the durable commit is left as it is (it counts as switched). ``Unavailable`` if a staged state
        is gone (nothing of that step switched)."""
        ...


@runtime_checkable
class PackedWorking(Protocol):
    """Optional, for a working store separate from the durable store (Redis): pause and resume move a checkpoint's
    state as one packed text (:class:`~mcp_memory.models.PackedState`) instead of an object per item, so neither
    runs Python code per key. Same guarantees as ``snapshot`` and ``restore``."""

    async def snapshot_packed(self, scope: Scope, now: float) -> PackedState:
        """``snapshot``, packed (empty if the session does not exist)."""
        ...

    async def restore_packed(
        self, scope: Scope, state: str, clear: bool, now: float, limits: Limits, made_from: datetime | None = None
    ) -> Restoration:
        """``restore`` of a checkpoint's stored state text (the items expired at ``now`` left out): the count
        restored, and the restore's order among the session's transitions (as :meth:`PauseCopies.snapshot_for_pause`
        gives a pause's), which the resume's durable record carries. ``made_from``: the creation time of the durable
        session the checkpoint was read from (``PackedCheckpoint.made_from``); working memory that notes another
        (that session was deleted and its id spawned again since the read) is left as it is: ``Respawned``."""
        ...


@runtime_checkable
class PauseCopies(Protocol):
    """Optional, for a :class:`PackedWorking` store (Redis): a pause also keeps a server-side copy of the state it
    checkpointed, tagged with the snapshot's nonce, which the pause records with the checkpoint
    (``CheckpointInfo.snapshot``). A resume with clear of a checkpoint that names a nonce makes the copy carrying
    that nonce the working memory instead of restoring the checkpoint's text; anything else falls back to
    ``restore_packed``."""

    copy_min_keys: int
    """The fewest keys of a state that is copied (a resume of a smaller checkpoint restores its text)."""

    async def snapshot_for_pause(self, scope: Scope, now: float, nonce: str) -> tuple[PackedState, bool]:
        """``snapshot_packed``, and a copy of that state tagged with ``nonce`` if it has ``copy_min_keys`` keys or
        more (True: copied); any earlier copy goes. The state carries the snapshot's order among the session's
        transitions (:attr:`~mcp_memory.models.PackedState.order`, increasing with each pause and resume in the order
        the store ran them) and the durable session the working memory was made from
        (:attr:`~mcp_memory.models.PackedState.made_from`), which the pause's durable record carries."""
        ...

    async def take_copy(
        self, scope: Scope, snapshot: str, now: float, limits: Limits, made_from: datetime | None = None
    ) -> Restoration | None:
        """Make the copy that the snapshot ``snapshot`` made (the nonce a checkpoint's record names) the working
        memory (``restore`` with clear; the items expired at ``now`` left out); the count restored and its order (as
        ``restore_packed``), or None (nothing changed) if there is no such copy or it cannot be used; ``Respawned``
        (nothing changed) as ``restore_packed`` for working memory made from another session than ``made_from``."""
        ...

    async def drop_copy(self, scope: Scope) -> None:
        """Drop the session's copy (its checkpoint was deleted)."""
        ...


__all__ = ["PackedWorking", "PauseCopies", "StagedImport", "StagedSpawn", "WorkingErase", "WorkingStore"]
