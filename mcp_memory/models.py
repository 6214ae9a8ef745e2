"""Domain types shared by every layer: scopes, sessions, checkpoints, episodes, lifecycle events.

Identifiers are validated here, once, so that the services and stores below can trust them. A value in working
memory travels as its JSON text (:data:`~mcp_memory.json_values.RawJSON`, checked and encoded by
:mod:`mcp_memory.json_values`) from the moment it is validated until a caller asks to see it decoded: stores move
text, they never decode it.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Annotated, Any, Literal, get_args, overload
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from mcp_memory.errors import InvalidArgument, echo
from mcp_memory.json_values import RawJSON, decode_value

IDENTIFIER_PATTERN = r"[A-Za-z0-9._-]{1,128}"
"""Session and checkpoint ids: the rule :func:`validate_identifier` applies and spawn's tool schema publishes."""
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


@overload
def to_datetime(epoch: float) -> datetime: ...
@overload
def to_datetime(epoch: None) -> None: ...
@overload
def to_datetime(epoch: float | None) -> datetime | None: ...
def to_datetime(epoch: float | None) -> datetime | None:
    """Epoch seconds (as stores keep them) to an aware UTC datetime; a time before year 1 or after 9999 (a bound
    such as ``since="0001-01-01T00:00:00+01:00"``, which is in year 0 in UTC) becomes the first or last datetime,
    which compares with every stored time as it would."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(min(max(epoch, _FIRST_EPOCH), _LAST_EPOCH), UTC)


_FIRST_EPOCH = datetime.min.replace(tzinfo=UTC).timestamp()
_LAST_EPOCH = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()  # whole seconds: exact as a float


def iso(dt: datetime) -> str:
    """A UTC time as ISO 8601 with six fraction digits and a ``Z`` suffix: the one format every tool, resource and
    export line writes. The fraction is never left out, even at an exact second, so that a client parsing with one
    fixed format never fails and times sort as text."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


UtcTime = Annotated[datetime, PlainSerializer(iso, return_type=str, when_used="json")]
"""A datetime field of a model a client sees: dumped to JSON by :func:`iso` (pydantic's own format drops the
fraction at an exact second)."""


def validate_identifier(value: Any, what: str) -> str:
    """Check a session_id or checkpoint_id against docs/contract.md: 1-128 of ``A-Z a-z 0-9 . _ -``."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string of 1-128 characters A-Z a-z 0-9 . _ -")
    if not _IDENTIFIER.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidArgument(
            f"{what} {shown!r} is not valid: use 1-128 characters from A-Z a-z 0-9 . _ - (got {len(value)} characters)"
        )
    return value


_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_uuid(value: Any, what: str) -> UUID:
    """Parse a UUID in canonical string form (8-4-4-4-12 hex digits, either case) or a UUID object;
    anything else (no hyphens, braces, ``urn:uuid:``) is ``invalid_argument``."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return UUID(value)
    if not isinstance(value, str):
        shown = echo(repr(value))  # a list of a million characters is not repeated whole
    else:
        shown = repr(value) if len(value) <= 40 else repr(value[:40] + "...")
    raise InvalidArgument(f"{what} must be a UUID such as '123e4567-e89b-12d3-a456-426614174000', got {shown}")


OutcomeName = Literal["success", "failure", "partial"]
"""The outcomes as a tool schema publishes them (an enum of strings, no ``$defs`` entry)."""


class Outcome(enum.StrEnum):
    """How a task or session ended: the values of :data:`OutcomeName`."""

    SUCCESS = "success"
    FAILURE = "failure"
    PARTIAL = "partial"


# The enum and the published names are one list: a value added to one and not the other fails at import.
assert tuple(o.value for o in Outcome) == get_args(OutcomeName)


def parse_outcome(value: Any) -> Outcome:
    """Accept an :class:`Outcome` or its string value; anything else is ``invalid_argument``."""
    if isinstance(value, Outcome):
        return value
    try:
        return Outcome(value)
    except ValueError:
        raise InvalidArgument(f"outcome must be one of success, failure, partial; got {echo(repr(value))}") from None


class SessionStatus(enum.StrEnum):
    """Lifecycle state of a session: running -> paused -> running ... -> terminated."""

    RUNNING = "running"
    PAUSED = "paused"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class Scope:
    """One session: the triple (project_id, agent_instance_id, session_id). All state hangs off it."""

    project_id: UUID
    agent_instance_id: UUID
    session_id: str

    @classmethod
    def parse(cls, project_id: Any, agent_instance_id: Any, session_id: Any) -> Scope:
        """Validate raw identifiers (strings or UUIDs) into a scope, or raise ``invalid_argument``."""
        return cls(
            parse_uuid(project_id, "project_id"),
            parse_uuid(agent_instance_id, "agent_instance_id"),
            validate_identifier(session_id, "session_id"),
        )

    @property
    def project(self) -> str:
        """The project id in canonical string form (as stored)."""
        return str(self.project_id)

    @property
    def agent(self) -> str:
        """The agent instance id in canonical string form (as stored)."""
        return str(self.agent_instance_id)

    def __str__(self) -> str:
        return f"{self.project_id}/{self.agent_instance_id}/{self.session_id}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, use_enum_values=False)


class SessionInfo(_Model):
    """A session's durable record."""

    project_id: UUID
    agent_instance_id: UUID
    session_id: str
    agent_type_id: UUID | None = None
    status: SessionStatus
    created_at: UtcTime
    updated_at: UtcTime
    metadata: dict[str, Any] = Field(default_factory=dict)
    episode_id: UUID | None = None
    terminated_at: UtcTime | None = None
    terminate_result: dict[str, Any] | None = None
    sealed: bool = False
    """A terminate is under way, or was cut off before it was recorded (call terminate again): the session
    takes no writes, pauses or resumes. Always true once terminated."""
    seal_token: str | None = Field(default=None, exclude=True)
    """The terminate that holds the seal (None: not sealed, or sealed before seals had owners). A working store that
    keeps its own copy of the seal (Redis) checks its copy against it: a copy whose owner no longer holds this one
    is stale (that terminate failed and unsealed here, or another took the seal over). Internal, like the token."""
    seal_until: datetime | None = Field(default=None, exclude=True)
    """When the seal's lease runs out (another call may then take it over), as its holder last set it: a holder
    that renews its seal (a deletion) pushes it forward, so one far from ``now + lease`` tells a holder that
    stopped. None when not sealed. Internal, like the token."""
    terminate_unfinished: bool = Field(default=False, exclude=True)
    """Terminated, and the terminate that recorded it (``seal_token``) has not yet finished its job after the record:
    marking working memory terminated (and clearing it, if asked) and running the terminate hooks
    (:mod:`mcp_memory.services.terminate_lease`). Internal: never shown to a client, exported or imported."""
    spawn_token: str | None = Field(default=None, exclude=True)
    """The two-step spawn (working memory in Redis) that made the session, which staged its initial state under
    this token (None: made in one step, or before spawns had tokens). Internal: never shown to a client."""
    status_order: int | None = Field(default=None, exclude=True)
    """The order of the last ordered transition recorded (``sessions.status_order``; None: none yet): a Redis that
    re-opens the session after losing it gives later transitions orders above it (``stores/redis/copies.py``,
    TRANSITION ORDER), whatever its clock. Internal: never shown to a client, exported or imported."""


class CheckpointInfo(_Model):
    """A checkpoint's description, without its state."""

    checkpoint_id: str
    created_at: UtcTime
    keys_count: int
    bytes: int
    label: str | None = None
    content_hash: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    keep: bool = False
    """Kept from retention pruning (``pause(keep=true)``); only ``delete_checkpoint`` removes it."""
    snapshot: str | None = Field(default=None, exclude=True)
    """The nonce of the working-memory snapshot the pause made this checkpoint from, when that snapshot left a copy
    of itself in Redis (``stores/redis/copies.py``): a resume takes that copy only if it carries this nonce.
    What a pause hands to ``record_pause``; reads leave it None (the resume's read returns the stored nonce as
    :attr:`PackedCheckpoint.snapshot`, so that descriptions read any way compare equal). Internal: never shown to a
    client, exported or imported."""


@dataclass(frozen=True, slots=True)
class Item:
    """One working-memory entry as stored: JSON text and an optional absolute expiry (epoch seconds)."""

    value: RawJSON
    expires_at: float | None = None


def content_hash(items: Mapping[str, Item]) -> tuple[str, int]:
    """A checkpoint's content hash and size: sha256 over ``key NUL value NUL`` for the keys in sorted (code point)
    order, and the values' total size in UTF-8 bytes. Postgres computes the same in SQL (``PostgresStore``)."""
    return _digest(list(items), list(map(attrgetter("value"), items.values())))


def _digest(keys: Sequence[str], values: Sequence[RawJSON]) -> tuple[str, int]:
    """:func:`content_hash` of parallel keys and values. Built as one text and hashed in one call, with C-level
    steps only (sorting, mapping, joining): no Python code runs per key (1,000 small ``update`` calls, or a
    comprehension over the items, cost more than the hashing)."""
    if not keys:
        return "sha256:" + hashlib.sha256(b"").hexdigest(), 0
    by_key = dict(zip(keys, values, strict=True))
    ordered = sorted(by_key)
    return _sorted_digest(ordered, list(map(by_key.__getitem__, ordered)))


def _sorted_digest(ordered: Sequence[str], values: Sequence[RawJSON]) -> tuple[str, int]:
    """:func:`_digest` of keys already in sorted order (at least one) and their values. The size comes from the
    hashed text's length less the keys' and separators' (the keys are short: cheaper than encoding the values
    again)."""
    blob = ("\0".join(chain.from_iterable(zip(ordered, values, strict=True))) + "\0").encode()
    size = len(blob) - len("".join(ordered).encode()) - 2 * len(ordered)
    return "sha256:" + hashlib.sha256(blob).hexdigest(), size


@dataclass(frozen=True, slots=True)
class PackedState:
    """A checkpoint's state already encoded as the durable stores keep it (a JSON object, key -> [the value's JSON
    text as a string, expires_at or null], keys sorted), with its count, size and content hash: what a pause hands
    to the durable store and a resume hands back to working memory, without a Python object per item."""

    text: str
    keys_count: int
    bytes: int
    content_hash: str
    order: int | None = None
    """A pause's snapshot: its order among the session's transitions in working memory (Redis:
    :mod:`~mcp_memory.stores.redis.copies`), which its durable record carries; None: not ordered."""
    made_from: datetime | None = None
    """A pause's snapshot: the durable session (its record's creation time) the working memory it read was made from,
    as working memory notes it (Redis: ``:i``); the record is written only on that session, not on one spawned again
    under its id since. None: not noted (a session of an earlier release, a store that keeps no such note)."""


def snapshot_order(state: Mapping[str, Item] | PackedState) -> int | None:
    """The order a pause's snapshot carries (:attr:`PackedState.order`); None for plain items, never ordered."""
    return state.order if isinstance(state, PackedState) else None


def snapshot_made_from(state: Mapping[str, Item] | PackedState) -> datetime | None:
    """The session a pause's snapshot was read from (:attr:`PackedState.made_from`); None for plain items."""
    return state.made_from if isinstance(state, PackedState) else None


@dataclass(frozen=True, slots=True)
class Restoration:
    """What a resume's restore into working memory did: the count of items restored, and its order among the
    session's transitions in working memory (as :attr:`PackedState.order`; None: not ordered)."""

    items: int
    order: int | None = None


def pack_state(keys: Sequence[str], values: Sequence[RawJSON], expiries: Iterable[float | None]) -> PackedState:
    """Parallel keys, values and expiries as a :class:`PackedState` (C-level steps only: nothing per key in Python;
    the expiries may be ``itertools.repeat(None)``)."""
    if not keys:
        return PackedState("{}", 0, 0, "sha256:" + hashlib.sha256(b"").hexdigest())
    # strict=False: ``expiries`` may be endless (repeat(None)); the keys bound the pairs.
    by_key = dict(zip(keys, zip(values, expiries, strict=False), strict=True))
    # Sorted once, for both the hash and the text: the dict keeps that order, which orjson then need not redo
    # (its OPT_SORT_KEYS order is the same code point order).
    ordered = sorted(by_key)
    pairs = list(map(by_key.__getitem__, ordered))
    digest, size = _sorted_digest(ordered, list(map(itemgetter(0), pairs)))
    text = orjson.dumps(dict(zip(ordered, pairs, strict=True))).decode()
    return PackedState(text, len(ordered), size, digest)


@dataclass(frozen=True, slots=True)
class CheckpointData:
    """A checkpoint with its items as stored (JSON text per key: what the stores move)."""

    info: CheckpointInfo
    items: dict[str, Item]
    session_sealed: bool = False
    """Its session was terminated or being terminated (sealed) as the checkpoint was read (same statement)."""

    def live_items(self, now: float | None = None) -> dict[str, Item]:
        """The items whose TTL has not passed at ``now`` (all of them if ``now`` is None)."""
        if now is None:
            return dict(self.items)
        return {k: it for k, it in self.items.items() if it.expires_at is None or it.expires_at > now}

    def state(self, now: float | None = None) -> dict[str, Any]:
        """The state decoded, for a reader (resources, the Python API); expired keys left out if ``now`` given."""
        return {key: decode_value(item.value) for key, item in self.live_items(now).items()}


@dataclass(frozen=True, slots=True)
class PackedCheckpoint:
    """A checkpoint with its state as the stored text (:class:`PackedState`'s ``text``), not decoded: what a
    resume hands to a working store that restores from the text itself."""

    info: CheckpointInfo
    state: str
    session_sealed: bool = False
    """As :attr:`CheckpointData.session_sealed`."""
    snapshot: str | None = None
    """As :attr:`CheckpointInfo.snapshot`, as stored (None: no copy stands for it)."""
    made_from: datetime | None = None
    """The creation time of the session record the checkpoint was read from: a resume restores it only into working
    memory made from that session, and records itself only on that session (not one spawned again under its id)."""


class EpisodeCreate(_Model):
    """What a caller provides to record an episode."""

    project_id: UUID
    agent_instance_id: UUID
    session_id: str | None = None
    task_type: str
    task_description: str
    outcome: Outcome
    outcome_details: str = ""
    lessons_learned: list[str] = Field(default_factory=list)
    importance_score: float = 0.5
    context_summary: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class Episode(EpisodeCreate):
    """A stored episode."""

    episode_id: UUID
    created_at: UtcTime
    embedded: bool = False


class ScoredEpisode(Episode):
    """An episode found by search, with its fused relevance score (higher is better)."""

    score: float


@dataclass(slots=True)
class LifecycleEvent:
    """Event data handed to lifecycle hooks (the seed's type, with the ids the operation produced).

    ``metadata`` is the caller's, as given; what the operation made has its own fields, so a caller's metadata key
    of the same name (``checkpoint_id``, say) neither hides it nor is replaced by it."""

    event_type: str
    project_id: UUID
    agent_instance_id: UUID
    agent_type_id: UUID | None = None
    session_id: str | None = None
    timestamp: datetime = field(default_factory=utcnow)
    metadata: dict[str, Any] = field(default_factory=dict)
    checkpoint_id: str | None = None  # pause: the checkpoint written; resume: the one restored
    episode_id: UUID | None = None  # terminate: the session's episode (None without consolidation)


@dataclass(slots=True)
class LifecycleResult:
    """Result of a successful lifecycle operation (the seed's type, kept).

    Unlike the seed, failures are not folded into ``success=False``: they raise a
    :class:`~mcp_memory.errors.MemoryServiceError` with a docs/contract.md code, so ``success`` is always true here.
    """

    success: bool
    event_type: str
    message: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0
    repeat: bool = False
    """The call found its work done by an earlier one (a second terminate): it recorded nothing and ran no hook."""
    unfinished: bool = False
    """With ``repeat``: the earlier call had recorded its work and not yet finished it (it may be at its last steps on
    another server, or have died there): this call did the idempotent part of it (terminate: working memory's clear)
    and left the hooks to that call, but its subscribers are told of the change all the same."""


__all__ = [
    "IDENTIFIER_PATTERN",
    "CheckpointData",
    "CheckpointInfo",
    "Episode",
    "EpisodeCreate",
    "Item",
    "LifecycleEvent",
    "LifecycleResult",
    "Outcome",
    "OutcomeName",
    "PackedCheckpoint",
    "PackedState",
    "Restoration",
    "Scope",
    "ScoredEpisode",
    "SessionInfo",
    "SessionStatus",
    "UtcTime",
    "content_hash",
    "iso",
    "pack_state",
    "parse_outcome",
    "parse_uuid",
    "snapshot_made_from",
    "snapshot_order",
    "to_datetime",
    "utcnow",
    "validate_identifier",
]
