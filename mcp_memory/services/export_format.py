"""The export file format (docs/export-format.md): JSON Lines, one record per line, versioned and checksummed.

A file is a header line, record lines (sessions, then working memory, checkpoints, events, episodes), and a trailer
line whose ``sha256`` covers every line before it (header included, each with its ``\\n``), so that a truncated,
reordered or edited file is refused. Times that stores keep as timestamps are ISO 8601 UTC with microseconds,
from :data:`EARLIEST_TIME` to :data:`LATEST_TIME` (what every store keeps exactly); expiries of working-memory keys
are epoch seconds as stored (exact). A value of working memory travels as its JSON text (a string), byte for byte:
never decoded and re-encoded.

Each record kind is a strict pydantic model with ``extra="forbid"``: :func:`parse_line` validates one line (each field
in the JSON type export writes, never coerced from another), and :func:`to_entry` turns it into what the stores write
(:mod:`mcp_memory.stores.transfer`). How a line is decoded before its model sees it, and how a time is read, is
:mod:`~mcp_memory.services.export_decoding`'s; the lines export writes are
:mod:`~mcp_memory.services.export_lines`'s; what an import checks of a record past its shape (the tools' limits) is
:mod:`~mcp_memory.services.import_checks`'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    TypeAdapter,
    ValidationError,
)

from mcp_memory.errors import InvalidArgument, MemoryServiceError
from mcp_memory.json_values import ESCAPED_NUL, encode_value, utf8_size
from mcp_memory.models import (
    CheckpointData,
    CheckpointInfo,
    Episode,
    Item,
    Outcome,
    Scope,
    SessionInfo,
    SessionStatus,
    parse_uuid,
    validate_identifier,
)
from mcp_memory.services.export_decoding import (
    EARLIEST_TIME,
    LATEST_TIME,
    Time,
    TimeText,
    decode_line,
    line_problem,
)
from mcp_memory.services.validation import check_key
from mcp_memory.stores.ports import EventRecord
from mcp_memory.stores.transfer import (
    CheckpointEntry,
    Entry,
    EpisodeEntry,
    EventEntry,
    SessionEntry,
    WorkingEntry,
)

FORMAT_NAME = "mcp-memory-export"
FORMAT_VERSION = 1
"""Version 1: the records of docs/export-format.md. Any change to a record bumps it; an importer reads every version
up to its own and refuses a newer one."""
KINDS = ("sessions", "working", "checkpoints", "events", "episodes")
"""The record kinds, in file order (the keys of the header's and trailer's ``counts``)."""

_T = TypeVar("_T")


def _tool_rule(check: Callable[[Any], _T]) -> Callable[[Any], _T]:
    """A rule of the tools (a validator raising their ``invalid_argument``) as a field validator: pydantic reports
    a ``ValueError`` with the field's place in the record, which names it in the import's error."""

    def field_rule(value: Any) -> _T:
        try:
            return check(value)
        except MemoryServiceError as exc:
            raise ValueError(exc.message) from None

    return field_rule


_Identifier = Annotated[str, AfterValidator(_tool_rule(lambda value: validate_identifier(value, "id")))]
"""A session or checkpoint id as the tools take it."""
_Uuid = Annotated[UUID, PlainValidator(_tool_rule(lambda value: parse_uuid(value, "value")))]
"""A UUID as export writes it and the tools take it: a string in canonical form (pydantic would also take 32 hex
digits without hyphens, or braces)."""
_Key = Annotated[str, AfterValidator(_tool_rule(lambda value: check_key(value, None)))]
"""A working-memory key must be one every call takes (``memory_set`` ... ``memory_delete``): else it is stored and
restored by resume, but no call can then delete it. Its length is the server's (``ImportLimits``)."""


def _json_text(value: str) -> str:
    """A working-memory value must be JSON text a store can hold (what ``memory_set`` would have accepted)."""
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        # memory_set writes with Python's json, which keeps any integer; orjson refuses one it would read as
        # infinity (309 digits or more). Such text is read back as memory_set reads its argument and must encode as
        # memory_set encodes it (no NaN or infinity, nested at most MAX_JSON_DEPTH, no lone surrogate).
        if not _written_by_memory_set(value):
            raise ValueError("not JSON text") from None
    if "\x00" in value or ("\\u0000" in value and ESCAPED_NUL.search(value)):
        raise ValueError("contains a NUL character, which no store can hold")
    return value


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _written_by_memory_set(value: str) -> bool:
    try:
        utf8_size(encode_value(json.loads(value, parse_constant=_refuse_constant)), "value")
    except (ValueError, RecursionError, MemoryServiceError):
        return False
    return True


_JsonText = Annotated[str, AfterValidator(_json_text)]


class _Record(BaseModel):
    # Strict: each field in the JSON type export writes it ("true" is not a bool, "3" or 3.0 not an int, a number not
    # a time), as a hand-edited file could otherwise bring in. Validated from the line as decoded (JSON types only):
    # the fields JSON carries otherwise than Python are read explicitly, a time from its string (Time), an enum
    # from its value and a tuple from an array (Strict(False) on those alone).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ScopeModel(_Record):
    """The header's scope: a project, one agent of it, one session of that agent, or (``session_id`` without an
    agent) the sessions of that id under every agent."""

    project_id: _Uuid
    agent_instance_id: _Uuid | None = None
    session_id: _Identifier | None = None


class Counts(_Record):
    sessions: int = Field(ge=0)
    working: int = Field(ge=0)
    checkpoints: int = Field(ge=0)
    events: int = Field(ge=0)
    episodes: int = Field(ge=0)


class Header(_Record):
    kind: Literal["header"]
    format: Literal["mcp-memory-export"]
    format_version: int  # from 1 to FORMAT_VERSION: parse_header checks it first, with messages of its own
    created_at: TimeText
    exported_by: str
    scope: ScopeModel
    counts: Counts
    vectors: bool
    embedding_model: str | None


class _InSession(_Record):
    project_id: _Uuid
    agent_instance_id: _Uuid
    session_id: _Identifier


class TerminateResult(_Record):
    """A session's ``terminate_result``: what its terminate answered, which a repeated terminate answers again (and
    an import that renames the episode follows)."""

    episode_id: _Uuid | None
    state_items_consolidated: int = Field(ge=0)
    items_cleared: int = Field(ge=0)
    outcome: Annotated[Outcome, Strict(False)]

    def as_stored(self) -> dict[str, Any]:
        """As terminate stores it: JSON, the episode's id a string."""
        return {
            "episode_id": None if self.episode_id is None else str(self.episode_id),
            "state_items_consolidated": self.state_items_consolidated,
            "items_cleared": self.items_cleared,
            "outcome": self.outcome.value,
        }


class SessionRecord(_InSession):
    kind: Literal["session"]
    agent_type_id: _Uuid | None
    status: Annotated[SessionStatus, Strict(False)]
    sealed: bool
    created_at: Time
    updated_at: Time
    metadata: dict[str, Any]
    episode_id: _Uuid | None
    terminated_at: Time | None
    terminate_result: TerminateResult | None


class WorkingRecord(_InSession):
    kind: Literal["working"]
    key: _Key
    value: _JsonText
    expires_at: float | None
    ttl_remaining: float | None


class CheckpointRecord(_InSession):
    kind: Literal["checkpoint"]
    checkpoint_id: _Identifier
    created_at: Time
    keys_count: int = Field(ge=0)
    bytes: int = Field(ge=0)
    label: str | None
    keep: bool
    content_hash: str
    metadata: dict[str, Any]
    state: dict[_Key, Annotated[tuple[_JsonText, float | None], Strict(False)]]


class EventRecordModel(_InSession):
    kind: Literal["event"]
    event_type: str
    at: Time
    duration_ms: float = Field(ge=0)
    outcome: str
    detail: dict[str, Any]


class EpisodeRecord(_Record):
    kind: Literal["episode"]
    episode_id: _Uuid
    project_id: _Uuid
    agent_instance_id: _Uuid
    session_id: _Identifier | None
    task_type: str
    task_description: str
    outcome: Annotated[Outcome, Strict(False)]
    outcome_details: str
    lessons_learned: list[str]
    importance_score: float  # from 0 to 1, as the tools take it (import_checks)
    context_summary: str
    metadata: dict[str, Any]
    created_at: Time
    embedding: list[float] | None = None
    embedding_model: str | None = None


class Trailer(_Record):
    kind: Literal["trailer"]
    counts: Counts
    sha256: str


Record = SessionRecord | WorkingRecord | CheckpointRecord | EventRecordModel | EpisodeRecord
_RECORD = TypeAdapter[Record](Annotated[Record, Field(discriminator="kind")])
KIND_OF: dict[type[_Record], str] = {
    SessionRecord: "sessions",
    WorkingRecord: "working",
    CheckpointRecord: "checkpoints",
    EventRecordModel: "events",
    EpisodeRecord: "episodes",
}


def parse_header(line: bytes) -> Header:
    """The header (line 1), or ``invalid_argument``; a newer format version is refused with its own message, and
    so is a version that is not an integer (``"2"``, ``2.0``, ``true``) or below 1."""
    raw = decode_line(line, 1)
    if not isinstance(raw, dict) or raw.get("kind") != "header" or raw.get("format") != FORMAT_NAME:
        raise InvalidArgument(f"this is not an mcp-memory export file (line 1 is not a {FORMAT_NAME} header)")
    version = raw.get("format_version")
    # Checked here, before the model, for the messages of their own; an integer exactly (true is an int to Python).
    if type(version) is int and version > FORMAT_VERSION:
        raise InvalidArgument(
            f"the export file has format version {version}, newer than this mcp-memory reads ({FORMAT_VERSION}); "
            "import it with a newer mcp-memory (nothing was imported)"
        )
    if type(version) is not int or version < 1:
        shown = orjson.dumps(version).decode()[:40]
        raise InvalidArgument(
            f"the export file has format version {shown}, which is not a version this mcp-memory reads (an integer "
            f"from 1 to {FORMAT_VERSION}); nothing was imported"
        )
    try:
        return Header.model_validate(raw)
    except ValidationError as exc:
        raise line_problem(1, exc) from None


def parse_line(line: bytes, line_no: int) -> Record | Trailer:
    """One line after the header: a record or the trailer, or ``invalid_argument`` naming the line. The line is
    decoded once (:func:`~mcp_memory.services.export_decoding.decode_line`) and its record validated from what it
    decoded to."""
    raw = decode_line(line, line_no)
    try:
        if isinstance(raw, dict) and raw.get("kind") == "trailer":
            return Trailer.model_validate(raw)
        return _RECORD.validate_python(raw)
    except ValidationError as exc:
        raise line_problem(line_no, exc) from None


# -- reading -----------------------------------------------------------------------------------------------
def _shared(model: type[BaseModel], record: BaseModel) -> dict[str, Any]:
    """The record's values of the fields ``model`` has too: a record carries its model's fields under the same
    names (plus the file's own, ``kind`` and the like), so the two cannot drift apart field by field."""
    return {name: getattr(record, name) for name in model.model_fields if name in type(record).model_fields}


def to_entry(record: Record) -> Entry:
    """What the stores write for a validated record (still in the file's project)."""
    if isinstance(record, EpisodeRecord):
        episode = Episode(**_shared(Episode, record))
        return EpisodeEntry(episode, record.embedding, record.embedding_model if record.embedding else None)
    scope = Scope(record.project_id, record.agent_instance_id, record.session_id)
    if isinstance(record, SessionRecord):
        sealed = record.sealed or record.status == SessionStatus.TERMINATED
        result = None if record.terminate_result is None else record.terminate_result.as_stored()
        return SessionEntry(
            SessionInfo(**{**_shared(SessionInfo, record), "sealed": sealed, "terminate_result": result})
        )
    if isinstance(record, WorkingRecord):
        return WorkingEntry(scope, record.key, Item(record.value, record.expires_at))
    if isinstance(record, CheckpointRecord):
        info = CheckpointInfo(**_shared(CheckpointInfo, record))
        items = {k: Item(v, exp) for k, (v, exp) in record.state.items()}
        return CheckpointEntry(scope, CheckpointData(info, items))
    return EventEntry(
        scope,
        EventRecord(record.event_type, record.at.timestamp(), record.duration_ms, record.outcome, record.detail),
    )


__all__ = [
    "EARLIEST_TIME",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KINDS",
    "LATEST_TIME",
    "Counts",
    "Header",
    "Record",
    "TerminateResult",
    "Trailer",
    "parse_header",
    "parse_line",
    "to_entry",
]
