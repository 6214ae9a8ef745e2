"""The value types the ports speak: limits, events, retention, filters, selectors, changes and listing rows.

Plain frozen dataclasses (and a few literals) shared by the ports (:mod:`.working_port`, :mod:`.durable_ports`,
:mod:`.episode_port`), their adapters and the services."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from mcp_memory.errors import Conflict, NotFound, Respawned
from mcp_memory.models import (
    CheckpointInfo,
    Episode,
    Outcome,
    Scope,
    SessionStatus,
)
from mcp_memory.summary import counted


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits the working store enforces atomically with the write they guard."""

    max_keys: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A lifecycle event as recorded: type, time, duration, outcome (``ok`` or an error code) and details."""

    event_type: str
    at: float
    duration_ms: float
    outcome: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    perf_start: float | None = field(default=None, compare=False)
    """``time.perf_counter()`` when the call began; if set, the store records the duration measured when it
    writes the event (so that the store's own work, the bulk of a big pause, is counted)."""

    def with_detail(self, extra: Mapping[str, Any]) -> EventRecord:
        """This event with ``extra`` added to its detail (what a store learns only as it writes the event)."""
        return replace(self, detail={**self.detail, **extra})

    def measured_ms(self) -> float:
        """The duration to record: measured now if ``perf_start`` is set, else ``duration_ms``."""
        if self.perf_start is None:
            return self.duration_ms
        return (time.perf_counter() - self.perf_start) * 1000.0


@dataclass(frozen=True, slots=True)
class Retention:
    """Which checkpoints and events of a session a pause keeps: the newest ``keep_last`` checkpoints of those not
    kept (``keep``) and/or those younger than ``max_age_seconds`` (None: no bound of that kind). Kept checkpoints do
    not count and are never pruned; nor is the session's newest checkpoint. Likewise the newest ``events_keep_last``
    lifecycle events and/or those younger than ``events_max_age_seconds``; the session's successful spawn and
    terminate events count but are never pruned (they date the session's life), nor is its newest event."""

    keep_last: int | None = None
    max_age_seconds: float | None = None
    events_keep_last: int | None = None
    events_max_age_seconds: float | None = None


def seal_lapses_in(seal_until: float | None, now: float, lease_seconds: float) -> int:
    """Whole seconds (rounded up, from 0 to the lease) until a seal ending at ``seal_until`` (epoch seconds) lapses:
    what a refusal tells the caller to wait; the whole lease if the store does not say when."""
    if seal_until is None:
        return math.ceil(lease_seconds)
    return max(0, min(math.ceil(lease_seconds), math.ceil(seal_until - now)))


def sealed_by_another_call(session_id: str, lapses_in: int) -> Conflict:
    """``delete_session`` of a session a terminate (or a deletion its token does not name) holds sealed, its lease
    live: one sentence, whichever store decides it, saying when the seal lapses and frees the session."""
    return Conflict(
        f"session '{session_id}' is being terminated or deleted by another call; retry once it is done (if it was "
        f"interrupted, its seal lapses within {counted(lapses_in, 'second')})"
    )


OVERTAKEN_WITHIN_SECONDS = 60.0
"""A one-transaction pause is dated again under the store's lock if the session has a checkpoint dated after its
first stamp by at most this: one another process wrote while this pause waited for the lock (a wait the call's
deadline bounds far below this). A checkpoint dated further ahead came from elsewhere (an import from a machine whose
clock runs ahead, a clock stepped back), and a second reading of this clock would not date the pause after it either:
no second stamp, no slower path for every pause until the clock catches up. Postgres migration 0017 has the same
bound."""

RESTAMP_AFTER_SECONDS = 0.001
"""A one-transaction pause is dated again under the store's lock if the service clock moved on by more than this
since its first stamp (it waited for the writer, SQLite's write lock or a pooled connection): the state it then reads
may hold writes committed after that stamp, and keys that expired since. Below it, a second stamp (a checkpoint
description and event built again, a few microseconds) would cost every uncontended pause for no change of state
worth a second reading."""


@dataclass(frozen=True, slots=True)
class PauseStamp:
    """A one-transaction pause's checkpoint (its id, time, label, ``keep`` and metadata: the store computes the
    rest), the time its snapshot is taken at, and its event, all from one clock reading."""

    info: CheckpointInfo
    now: float
    event: EventRecord


@dataclass(frozen=True, slots=True)
class Incarnation:
    """The session a terminate recorded terminated, told apart from a later one of the same id: between the record and
    terminate's last step (``WorkingStore.mark_terminated``) another server may delete the session and spawn it again,
    and that new session is not this terminate's to clear or close."""

    created_at: datetime
    """When the durable record was created (what a Redis session notes it was made from: ``stores/redis``)."""
    seal_token: str | None
    """The terminate the record was made terminated under (its seal's token; None: a record made without one, as an
    import's): a SQL row keeps it once terminated, a Redis session carries it in its seal until marked."""


def respawned(session_id: str, call: str) -> Respawned:
    """A ``pause`` or ``resume`` (``call``) of a session deleted and spawned again under its id while it ran: its
    record, or its restore, is refused, whichever store notices."""
    return Respawned(
        f"session '{session_id}' was deleted and spawned again while this {call} was under way; nothing of it was "
        "recorded or restored on the new session"
    )


def session_not_found(scope: Scope) -> NotFound:
    """The ``not_found`` of a lifecycle call on a session the durable store does not hold."""
    return NotFound(
        f"session '{scope.session_id}' does not exist for agent {scope.agent_instance_id} in project {scope.project_id}"
    )


def spawn_first(scope: Scope) -> NotFound:
    """The ``not_found`` of a write or read of working memory in a session that does not exist."""
    return NotFound(f"session '{scope.session_id}' does not exist for this agent; call spawn first")


def nothing_to_resume(scope: Scope, wanted: str | None, status: str | None) -> NotFound | Conflict:
    """Why a resume of checkpoint ``wanted`` (None: the newest) found nothing to restore, given the session's
    ``status`` (None: no session): the session's own error if it is the problem, else ``not_found``."""
    if status is None:
        return session_not_found(scope)
    if status == SessionStatus.TERMINATED:
        return Conflict(f"session '{scope.session_id}' is terminated; cannot resume")
    if wanted is None:
        return NotFound(f"session '{scope.session_id}' has no checkpoints to resume from")
    return NotFound(f"checkpoint '{wanted}' does not exist for this session")


@dataclass(frozen=True, slots=True)
class Removed:
    """What a deletion removed (or, for a dry run, would remove): live working-memory keys, checkpoints, events,
    episodes, and sessions; ``episode_ids``: the removed episodes' ids where the deletion names them
    (``delete_session``, whose episodes' subscribers are told; the operator's erase only counts)."""

    working_keys: int = 0
    checkpoints: int = 0
    events: int = 0
    episodes: int = 0
    sessions: int = 0
    episode_ids: tuple[UUID, ...] = ()

    def __add__(self, other: Removed) -> Removed:
        return Removed(
            self.working_keys + other.working_keys,
            self.checkpoints + other.checkpoints,
            self.events + other.events,
            self.episodes + other.episodes,
            self.sessions + other.sessions,
            self.episode_ids + other.episode_ids,
        )


@dataclass(frozen=True, slots=True)
class EpisodeFilter:
    """Filters of ``search_episodes`` and the episode listing, applied in the store's query. ``since`` and
    ``until``: epoch seconds, episodes recorded at or after ``since`` and strictly before ``until`` (a half-open
    period, so consecutive periods do not overlap)."""

    outcome: Outcome | None = None
    task_type: str | None = None
    agent_instance_id: UUID | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class EpisodeSelector:
    """Which of a project's episodes ``forget_episodes`` removes: those listed by id (``episode_ids``), or those
    matching every filter given (no filter at all: every episode of the project). ``before``: epoch seconds,
    episodes recorded strictly earlier."""

    episode_ids: tuple[UUID, ...] | None = None
    agent_instance_id: UUID | None = None
    session_id: str | None = None
    task_type: str | None = None
    outcome: Outcome | None = None
    before: float | None = None


@dataclass(frozen=True, slots=True)
class ForgottenEpisode:
    """An episode ``forget_episodes`` removed: its id, and the session it came from (for its event)."""

    episode_id: UUID
    agent_instance_id: UUID
    session_id: str | None


@dataclass(frozen=True, slots=True)
class EpisodeText:
    """The fields of an episode that search reads: what its full-text entry and its vector are made from."""

    task_type: str
    task_description: str
    outcome_details: str
    lessons_learned: tuple[str, ...]
    context_summary: str

    @classmethod
    def of(cls, ep: Episode) -> EpisodeText:
        return cls(ep.task_type, ep.task_description, ep.outcome_details, tuple(ep.lessons_learned), ep.context_summary)


class EpisodeChanged(Conflict):
    """An edit or a vector made from an episode's text as it was read, which has changed since: nothing written
    (the caller reads the episode again and redoes its work, or leaves it)."""


@dataclass(frozen=True, slots=True)
class EpisodeChanges:
    """What ``update_episode`` writes: each field given replaces the stored one (None: left as it is). When
    ``reembed`` is set the searchable text changed: the store re-indexes it and replaces the vector by
    ``embedding`` (None: no vector until the background retry makes one). ``made_from``: the text the change was
    computed from, ``importance_from`` the importance (a merge keeps the higher of the stored one and its own); if
    the stored one is another, :class:`EpisodeChanged` and nothing is written."""

    lessons_learned: list[str] | None = None
    outcome_details: str | None = None
    importance_score: float | None = None
    metadata: dict[str, Any] | None = None
    reembed: bool = False
    embedding: Sequence[float] | None = None
    embedding_model: str | None = None
    made_from: EpisodeText | None = None
    importance_from: float | None = None


@dataclass(frozen=True, slots=True)
class VectorBacklog:
    """What a model's ``mcp-memory reembed --all`` has to do, counted across every project: episodes without a
    vector, and episodes whose vector another model (or an unrecorded one) made, which search with it ignores."""

    missing: int
    other_model: int


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session as ``list_sessions`` lists it: its record, its newest checkpoint (id, epoch time, label, key
    count), its episode's outcome and task (a terminated session's, the task cut to 200 characters), and, when the
    store is also the working store and was asked, its live key count (at most 1001: more reads as "1000+") and first
    keys. Times are epoch seconds; ``position`` is the store's opaque paging cursor for this row."""

    project_id: UUID
    agent_instance_id: UUID
    session_id: str
    status: str
    created_at: float
    updated_at: float
    position: str
    checkpoint: tuple[str, float, str | None, int] | None = None
    episode: tuple[str, str] | None = None
    live_keys: int | None = None
    first_keys: tuple[str, ...] = ()


LIVE_KEYS_CAP = 1001
"""``SessionRow.live_keys`` counts up to this many (a listing reads "1000+" beyond), so a full session costs no more."""

IdentifierKind = Literal["project", "agent", "session", "checkpoint", "episode"]
"""What ``complete_identifiers`` completes."""


SearchMode = Literal["hybrid", "text", "vector"]
"""What ``search_episodes`` ranks by: both retrievers fused (the default), full-text only, or vectors only
(the last two exist to measure what fusion adds)."""


__all__ = [
    "LIVE_KEYS_CAP",
    "OVERTAKEN_WITHIN_SECONDS",
    "RESTAMP_AFTER_SECONDS",
    "EpisodeChanged",
    "EpisodeChanges",
    "EpisodeFilter",
    "EpisodeSelector",
    "EpisodeText",
    "EventRecord",
    "ForgottenEpisode",
    "IdentifierKind",
    "Incarnation",
    "Limits",
    "PauseStamp",
    "Removed",
    "Retention",
    "SearchMode",
    "SessionRow",
    "VectorBacklog",
    "nothing_to_resume",
    "respawned",
    "seal_lapses_in",
    "sealed_by_another_call",
    "session_not_found",
    "spawn_first",
]
