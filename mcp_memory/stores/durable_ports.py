"""The durable-record ports: sessions and their events, checkpoints, the durable store they make together with the
episodes (:mod:`.episode_port`), the combined store (durable and working on one database) and its one-transaction
lifecycle calls. The contracts all ports keep: :mod:`.ports`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from mcp_memory.models import (
    CheckpointData,
    CheckpointInfo,
    Episode,
    Item,
    PackedCheckpoint,
    PackedState,
    Scope,
    SessionInfo,
)
from mcp_memory.stores.episode_port import EpisodeStore
from mcp_memory.stores.records import (
    EventRecord,
    IdentifierKind,
    Incarnation,
    Limits,
    PauseStamp,
    Removed,
    Retention,
    SessionRow,
)
from mcp_memory.stores.unfinished_terminate_port import UnfinishedTerminates
from mcp_memory.stores.working_port import WorkingStore


@runtime_checkable
class PackedCheckpoints(Protocol):
    """Optional, for a durable store: a checkpoint read with its state as the stored text
    (:class:`~mcp_memory.stores.working_port.PackedWorking`)."""

    async def get_packed_checkpoint(
        self, scope: Scope, checkpoint_id: str | None, state_below: int | None = None
    ) -> PackedCheckpoint | None:
        """``get_checkpoint`` without decoding the state; with ``state_below``, the state is read only for a checkpoint
        of fewer keys or one that names no snapshot (else ``state`` is ""): a resume that may restore the working
        store's own copy of a larger one (``PauseCopies``). With the creation time of its session's record
        (``made_from``), read in the same statement."""
        ...


@runtime_checkable
class SessionStore(Protocol):
    """Sessions and their lifecycle events. Each method writing an event writes it in the same transaction
    as the state change it records."""

    async def create_session(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
    ) -> SessionInfo:
        """Create a running session and record its spawn event. ``Conflict`` if it exists already."""
        ...

    async def begin_spawn(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
        token: str,
        lease_seconds: float,
        replacing: str | None = None,
    ) -> SessionInfo:
        """The first step of a two-step spawn (working memory in another store): create the session as
        ``create_session`` does, but *incomplete*, held by the spawn ``token`` until ``now + lease_seconds``: until
        ``complete_spawn`` it does not exist for any other method (``get_session`` is None; pauses, seals and events
        find no session). An incomplete session whose lease has run out at ``now`` (its spawn crashed or gave up) is
        taken over (replaced, events included) if the spawn that holds it is ``replacing``, whose staged state the
        caller has dropped from the working store; else ``SpawnLapsed`` names that spawn. ``Conflict`` if the
        session exists (complete), or if another spawn holds it and its lease has not run out. Nothing changes when
        it raises."""
        ...

    async def complete_spawn(
        self, scope: Scope, token: str, now: float, clock: Callable[[], float] | None = None
    ) -> None:
        """The last durable step of a two-step spawn: the session ``token`` began exists from now on, if ``token``
        still holds it and its lease has not run out at ``now`` (``spawn_until > now``). A lapsed spawn completes
        nothing: a later spawn taking the session over, or the spawn sweep, may have dropped its staged state already
        (each does so before it removes the row). ``clock`` (the service's): ``now`` is read again from it once the
        store is this call's (SQLite: in the write transaction; Postgres: once a connection is checked out), so a
        spawn that waited for the store past its lease is refused too. Idempotent (a completion that committed,
        replayed, succeeds); ``Conflict`` (nothing changes) if another spawn has taken the session over or the lease
        has run out: the caller undoes its spawn and the client retries."""
        ...

    async def end_spawn(self, scope: Scope, token: str) -> bool:
        """The first step of undoing ``begin_spawn`` of ``token`` (its spawn failed before completing): the lease of
        the incomplete session ``token`` holds ends now, so the session lapses at once for a takeover and for the
        spawn sweep, and nothing completes it any more. Nothing changes if another spawn has taken the session over
        or it is gone. False if the session stands completed by ``token`` (its ``complete_spawn`` committed, though
        the caller never heard so): nothing is undone."""
        ...

    async def abandon_spawn(self, scope: Scope, token: str) -> None:
        """The last step of that undo, once the working store apart has dropped ``token``'s staged state: the
        incomplete session goes, with its events, only while ``token`` holds it with the lease ``end_spawn`` ended
        (another spawn that took it over keeps it)."""
        ...

    async def discard_session(self, scope: Scope) -> None:
        """Undo ``create_session`` (used only when opening working memory failed right after it): unless another
        server's call has made the session something more meanwhile (paused with a checkpoint, sealed or
        terminated), which stays, with its events."""
        ...

    async def get_session(self, scope: Scope) -> SessionInfo | None:
        """The session's record, or None. Its ``episode_id`` is an episode its project holds, or None (none was
        recorded, or it was forgotten)."""
        ...

    async def seal(
        self, scope: Scope, token: str, now: float, lease_seconds: float, made_from: Incarnation | None = None
    ) -> bool:
        """Record that the session is being terminated (``SessionInfo.sealed``) by the terminate ``token``:
        ``record_pause`` and ``record_resume`` refuse it with ``Conflict``, and a working store that re-opens a
        session it lost (Redis) re-opens it sealed. A store that is the working store too has one flag for both
        roles. The seal has an owner and a lease: it succeeds if the session is unsealed, sealed by ``token``
        already, or sealed by another token whose lease (``now + lease_seconds`` when it sealed) has run out at
        ``now`` (taken over: a terminate that crashed after sealing does not seal the session for ever);
        otherwise ``Conflict`` (another terminate is in progress) and nothing changes. True once sealed; False,
        and nothing changes, for a missing or terminated session (a terminate of another server may have recorded
        it since the caller read it). ``made_from`` is a working store's (``WorkingStore.seal``): the record is the
        durable session itself."""
        ...

    async def unseal(self, scope: Scope, token: str) -> None:
        """Undo ``seal`` when terminate failed before it was recorded, only if ``token`` holds the seal (or a seal
        with no owner, made before seals had one): a terminate that failed never unseals a session another
        terminate has sealed since (or taken over). No-op once terminated."""
        ...

    async def end_terminate_lease(self, scope: Scope, token: str) -> None:
        """The terminate ``token`` recorded the session terminated but could not finish its job (mark its working
        memory terminated and clear it, run the hooks): its lease ends now. Until a terminated session's lease runs
        out a repeated terminate takes the terminate that recorded it for one still finishing, and answers as a
        repeat; after, it finishes that job itself (hooks included, ``claim_terminate``). No-op unless the session
        is terminated under ``token``."""
        ...

    async def record_event(
        self, scope: Scope, event: EventRecord, retention: Retention | None = None, made_from: datetime | None = None
    ) -> None:
        """Record an event on an existing session (a failed lifecycle call, for instance), then apply
        ``retention``'s event bounds in the same transaction, as a pause or resume does: a loop of failing calls
        keeps the session's events within them. ``made_from``: the creation time of the session record the caller
        worked on; a record created at another time (that session was deleted and its id spawned again since) gets
        nothing, checked in the same transaction. None: whichever record holds the id."""
        ...

    async def list_events(self, scope: Scope, limit: int) -> list[EventRecord]:
        """The session's events, oldest first."""
        ...

    async def list_sessions(
        self,
        project_id: UUID,
        agent_instance_id: UUID | None,
        status: str | None,
        limit: int,
        before: str | None,
        now: float,
        working: bool,
    ) -> list[SessionRow]:
        """The project's sessions (of one agent, in one status, if given), newest activity (``updated_at``: the last
        lifecycle event) first, ``limit`` of them, strictly after the cursor ``before`` (a row's ``position``;
        ``InvalidArgument`` if malformed). One statement. ``working``: also count each session's live keys."""
        ...

    async def complete_identifiers(
        self,
        kind: IdentifierKind,
        prefix: str,
        limit: int,
        projects: Sequence[UUID] | None,
        agent_instance_id: UUID | None = None,
        session_id: str | None = None,
    ) -> tuple[list[str], int]:
        """Stored identifiers of ``kind`` starting with ``prefix`` (most recent first, ``limit`` of them) and how
        many match in all, within ``projects`` (None: every project; ``project`` completes among them, the other
        kinds need exactly one), narrowed by the agent and session if given (``checkpoint`` needs both)."""
        ...

    async def record_resume(
        self,
        scope: Scope,
        event: EventRecord,
        retention: Retention | None = None,
        order: int | None = None,
        made_from: datetime | None = None,
    ) -> None:
        """Mark the session running, record the event and prune the session's events by ``retention``'s event
        bounds (at the event's time), in one transaction, as ``record_pause`` prunes them. ``order``: the restore's
        order among the session's transitions in working memory (``record_pause`` explains it). ``made_from``: the
        creation time of the session record the resumed checkpoint was read from; a record created at another time
        (that session was deleted and its id spawned again since) is left as it is: ``Respawned``, nothing written.
        ``NotFound``/``Conflict`` if the session is missing, sealed or terminated."""
        ...

    async def delete_session(
        self, scope: Scope, keep_episodes: bool, now: float, seal_token: str | None = None
    ) -> Removed:
        """Delete the session, in one transaction: its record, working-memory rows, checkpoints and events, and its
        episodes (rows, vectors, full-text postings and their share of the project's statistics) unless
        ``keep_episodes``. ``NotFound`` if it does not exist; ``Conflict`` while another call holds it sealed (not
        terminated) with a lease live at ``now``, saying when that lapses: it goes through wherever ``seal`` would
        take the seal (a seal whose lease ran out, one with no owner) and through ``seal_token``'s seal, the
        deletion's own, taken to keep terminates out. Returns what was removed (live keys at ``now``), with the
        removed episodes' ids."""
        ...

    async def erase(
        self, project_id: UUID, agent_instance_id: UUID | None, session_id: str | None, now: float, dry_run: bool
    ) -> Removed:
        """Delete a whole project (or one agent's part of it, or one session), in one transaction: every session
        record whatever its state, with its working-memory rows, checkpoints and events, and every episode of that
        scope, as ``delete_session`` deletes them. With ``dry_run``, nothing changes. What was (would be) removed."""
        ...

    async def record_terminate(
        self,
        scope: Scope,
        episode: Episode | None,
        embedding: Sequence[float] | None,
        result: Mapping[str, Any],
        event: EventRecord,
        embedding_model: str | None = None,
        seal_token: str | None = None,
    ) -> dict[str, Any]:
        """Store the episode (its embedding made by ``embedding_model``, as for ``add_episode``), mark the
        session terminated with ``result`` and record the event. With ``seal_token``, only while that terminate
        still holds the session's seal (``Conflict`` if another has taken it over: nothing is written), and the
        session is recorded unfinished (``SessionInfo.terminate_unfinished``) until ``finish_terminate``.

        Idempotent: if the session is terminated already, nothing is written and the stored result is
        returned. Otherwise returns ``result``."""
        ...


@runtime_checkable
class CheckpointStore(Protocol):
    """Durable checkpoints of working memory, per session."""

    async def record_pause(
        self,
        scope: Scope,
        info: CheckpointInfo,
        items: Mapping[str, Item] | PackedState,
        event: EventRecord,
        retention: Retention | None = None,
    ) -> None:
        """Store a checkpoint (its items, or its state already packed: then stored as that text), mark the session
        paused, record the event and prune the session's checkpoints by ``retention`` (at ``info.created_at``), in
        one transaction. ``Conflict`` (and nothing written) if the
        checkpoint id exists in this session; ``NotFound``/``Conflict`` if the session is missing or terminated.

        A packed state's ``order`` (:attr:`~mcp_memory.models.PackedState.order`) is the snapshot's order among the
        session's transitions in working memory (Redis: a pause's snapshot, a resume's restore). The status is set
        only by a record whose order is above that of every ordered record before it (kept with the session): a
        pause recorded after a resume of another server that restored after its snapshot keeps its checkpoint and
        event, and leaves the session running (and a resume recorded late likewise leaves it paused). No order
        (plain items, or a packed state of an unordered working store): the status is set.

        A packed state's ``made_from`` (:attr:`~mcp_memory.models.PackedState.made_from`) is the creation time of the
        session record its working memory was made from: a record created at another time (that session was deleted
        and its id spawned again since the snapshot) is left as it is, ``Respawned`` and nothing written, so the old
        session's state never becomes a checkpoint of the new one. None: written whichever record holds the id."""
        ...

    async def delete_checkpoint(self, scope: Scope, checkpoint_id: str, event: EventRecord) -> bool:
        """Delete one checkpoint of the session (kept or newest included) and record ``event`` on the session, in
        one transaction; False (nothing written) if the session has no such checkpoint."""
        ...

    async def get_checkpoint(self, scope: Scope, checkpoint_id: str | None) -> CheckpointData | None:
        """One checkpoint with its items; ``None`` as the id means the newest."""
        ...

    async def list_checkpoints(
        self, scope: Scope, limit: int, before: str | None, before_at: datetime | None = None
    ) -> list[CheckpointInfo]:
        """Newest first. ``before`` is a checkpoint id: list those after it in that order. ``before_at``: the time
        that checkpoint had when it was listed; if it is no longer the session's (deleted, pruned, or its id since
        given to a newer one), list those from that time on (older, and any of the very same time) instead of
        ``NotFound``, which a missing ``before`` without a time is."""
        ...

    async def recent_checkpoints(
        self, projects: Sequence[UUID] | None, limit: int, until: float | None = None
    ) -> list[tuple[Scope, CheckpointInfo]]:
        """Newest checkpoints across sessions, for resource listings (None: every project); with ``until`` (epoch
        seconds), only those created strictly before it."""
        ...


@runtime_checkable
class DurableStore(SessionStore, CheckpointStore, EpisodeStore, UnfinishedTerminates, Protocol):
    """The three durable ports in one database, so that a lifecycle call touching several of them (terminate:
    episode + session; pause: checkpoint + session) is one transaction; and the finishing of terminates cut off
    after their record (:mod:`.unfinished_terminate_port`)."""

    async def start(self) -> None:
        """Connect, and check the schema before serving."""
        ...

    async def ping(self) -> dict[str, Any]:
        """Facts for ``mcp-memory doctor`` (counts included); raises if the store does not answer."""
        ...

    async def probe(self) -> dict[str, Any]:
        """Whether the store answers, for ``/readyz``: one trivial statement (no counts, nothing that grows with
        the data, as a flood of unauthenticated probes must not slow the calls); raises if it does not answer."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class AgedRetention(Protocol):
    """Age-based retention across every session, for the periodic sweep: a session no call writes any more
    (terminated or abandoned) is pruned by age too. Each call is one short transaction of at most ``limit`` rows,
    with the exceptions a pause's prune keeps (see :class:`~mcp_memory.stores.records.Retention`)."""

    async def prune_aged_checkpoints(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` checkpoints created before ``before`` (epoch seconds), neither kept nor their
        session's newest; the number deleted."""
        ...

    async def prune_aged_events(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` events dated before ``before``, neither a successful spawn or terminate nor their
        session's newest; the number deleted."""
        ...


@runtime_checkable
class CombinedStore(DurableStore, WorkingStore, Protocol):
    """A durable store that can hold working memory too (SQLite, Postgres: in their own tables), so that without
    Redis the working store *is* the durable store and the embedded default is one file."""


@runtime_checkable
class SameStoreLifecycle(Protocol):
    """Optional: a store that is the working store *and* the durable store (SQLite, or Postgres without Redis)
    does each lifecycle transition in one transaction, working memory and records together, instead of the
    two-step path (a working-store call, then a durable one) that separate stores need.

    The lifecycle uses these when its working store is its durable store and the store has them. Each call
    is all or nothing; every refusal leaves nothing written. Failure events are the caller's to record: a refusal
    that found the session notes its record's creation time on the error
    (:attr:`~mcp_memory.errors.MemoryServiceError.session_created_at`), read in the refusing transaction (Postgres:
    statement), so that the caller, which read no session itself, records its failure on that session only."""

    async def spawn_session(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
        items: Mapping[str, Item],
        limits: Limits,
    ) -> tuple[SessionInfo, int]:
        """``create_session`` and ``open`` in one transaction: the running session, its spawn event and its
        initial items (those live at ``now``). Returns the session and the count of items written.
        ``Conflict`` if the session exists; ``TooLarge`` if the items exceed the key limit."""
        ...

    async def pause_session(
        self,
        scope: Scope,
        info: CheckpointInfo,
        now: float,
        event: EventRecord,
        retention: Retention | None = None,
        restamp: Callable[[], PauseStamp] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> CheckpointInfo:
        """``snapshot`` and ``record_pause`` (its pruning by ``retention`` included) in one transaction:
        checkpoint the items live at ``now`` under ``info``'s id, time, label, ``keep`` and metadata, mark the
        session paused and record ``event`` with ``"items"`` (the count checkpointed) added to its detail.
        ``info``'s ``keys_count``, ``bytes`` and ``content_hash`` are ignored: the store computes them (as
        :func:`~mcp_memory.models.content_hash` does) and returns ``info`` with them. Refusals as for
        ``record_pause``.

        ``restamp``: if, once the store holds the session's lock, the session has a checkpoint dated after
        ``info`` (a pause of another process read its clock later but took the lock first), the pause takes its id,
        time, snapshot time and event from ``restamp()`` instead, called under that lock, so the newer state is not
        recorded under the older time. With ``clock`` (the service's), it does so too if the pause waited for the
        store (its lock, a connection, the writer): SQLite when ``clock`` has moved on by more than
        ``records.RESTAMP_AFTER_SECONDS`` from ``now`` once it holds the write lock; Postgres when the session's
        row was locked by another transaction, or ``clock`` moved on so while a connection was checked out. The
        snapshot then holds no key expired at the recorded time and no write committed after it. The returned
        ``info`` is the one recorded."""
        ...

    async def resume_session(
        self,
        scope: Scope,
        checkpoint_id: str | None,
        clear: bool,
        now: float,
        limits: Limits,
        event: EventRecord,
        retention: Retention | None = None,
        clock: Callable[[], float] | None = None,
    ) -> tuple[CheckpointInfo, int]:
        """``get_checkpoint``, ``restore`` and ``record_resume`` in one transaction: restore the checkpoint
        (None: the newest), mark the session running, record ``event`` with ``"checkpoint_id"`` and
        ``"items"`` (the count restored) added to its detail and prune events by ``retention`` (at ``now``).
        Returns the checkpoint's description and that count. If the session or the checkpoint does not exist,
        nothing is written and the error is :func:`~mcp_memory.stores.records.nothing_to_resume`'s; other refusals
        as for ``restore`` (``Conflict`` for a terminated or sealed session, ``TooLarge`` over the key limit).

        ``clock`` (the service's): ``now`` is read again from it once the store holds the session's lock (SQLite: in
        the write transaction; Postgres: after checking out a connection, and again under the row lock if another
        transaction held it), so a key that expired while the resume waited is neither restored nor counted."""
        ...


__all__ = [
    "AgedRetention",
    "CheckpointStore",
    "CombinedStore",
    "DurableStore",
    "PackedCheckpoints",
    "SameStoreLifecycle",
    "SessionStore",
]
