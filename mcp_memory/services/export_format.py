"""The export file format (docs/export-format.md): JSON Lines, one record per line, versioned and checksummed.

A file is a header line, record lines (sessions, then working memory, checkpoints, events, episodes), and a trailer
line whose ``sha256`` covers every line before it (header included, each with its ``\\n``), so that a truncated,
reordered or edited file is refused. Times that stores keep as timestamps are ISO 8601 UTC with microseconds,
from :data:`EARLIEST_TIME` to :data:`LATEST_TIME` (what every store keeps exactly); expiries of working-memory keys
are epoch seconds as stored (exact). A value of working memory travels as its JSON text (a string), byte for byte:
never decoded and re-encoded.

Each record kind is a strict pydantic model with ``extra="forbid"``: :func:`parse_line` validates one line (each field
in the JSON type export writes, never coerced from another), and :func:`to_entry` turns it into what the stores write
(:mod:`mcp_memory.stores.transfer`). The lines export writes are :mod:`~mcp_memory.services.export_lines`'s; what an
import checks of a record past its shape (the tools' limits) is :mod:`~mcp_memory.services.import_checks`'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
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
    model_validator,
)
from pydantic_core import PydanticCustomError

from mcp_memory.errors import InvalidArgument, MemoryServiceError
from mcp_memory.models import (
    _ESCAPED_NUL,  # the one definition of a NUL's escape in JSON text
    CheckpointData,
    CheckpointInfo,
    Episode,
    Item,
    Outcome,
    Scope,
    SessionInfo,
    SessionStatus,
    iso,
    parse_uuid,
    validate_identifier,
)
from mcp_memory.services.validation import MAX_JSON_INTEGER, MIN_JSON_INTEGER, check_key
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
        raise ValueError("not JSON text") from None
    if "\x00" in value or ("\\u0000" in value and _ESCAPED_NUL.search(value)):
        raise ValueError("contains a NUL character, which no store can hold")
    return value


_JsonText = Annotated[str, AfterValidator(_json_text)]


EARLIEST_TIME = datetime(1700, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
"""The times a record may carry: those every store keeps to the microsecond. The stores take a time as epoch
seconds in a float (SQLite keeps it so), which names every microsecond only within 2**33 seconds of 1970 (1697 to
2242); outside, SQLite gave back another time, and Postgres stored year 1 as ``-infinity``, which no export could
then write."""


_DATETIME = TypeAdapter[datetime](datetime, config=ConfigDict(strict=True))


_DATE_FIRST = re.compile(r"\d{4}-\d{2}-\d{2}")


def _time_text(value: object) -> datetime:
    """A time as a JSON string (a number is not a time), read as pydantic reads a datetime from JSON text. An ISO
    8601 date and time only: pydantic would also read a string of digits as epoch seconds, or as milliseconds past
    a size, which docs/export-format.md rules out (no offset means UTC, see :func:`_storable_time`)."""
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be a valid datetime")
    if not _DATE_FIRST.match(value):
        raise PydanticCustomError(
            "datetime_from_string",
            "Input should be a valid datetime: an ISO 8601 date and time such as 2026-12-04T17:25:27.123456Z",
        )
    try:
        return _DATETIME.validate_strings(value)
    except ValidationError as exc:
        raise PydanticCustomError("datetime_from_string", "{reason}", {"reason": exc.errors()[0]["msg"]}) from None


def _storable_time(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # naive means UTC, as for the tools' time arguments (not the host's zone)
    if not EARLIEST_TIME <= dt <= LATEST_TIME:
        raise ValueError(
            f"{dt.isoformat()} is outside the times every store keeps exactly ({iso(EARLIEST_TIME)} to "
            f"{iso(LATEST_TIME)})"
        )
    return dt


_TimeText = Annotated[datetime, PlainValidator(_time_text)]
_Time = Annotated[datetime, PlainValidator(_time_text), AfterValidator(_storable_time)]


class _Record(BaseModel):
    # Strict: each field in the JSON type export writes it ("true" is not a bool, "3" or 3.0 not an int, a number not
    # a time), as a hand-edited file could otherwise bring in. Validated from the line as decoded (JSON types only):
    # the fields JSON carries otherwise than Python are read explicitly, a time from its string (_time_text), an enum
    # from its value and a tuple from an array (Strict(False) on those alone).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ScopeModel(_Record):
    project_id: _Uuid
    agent_instance_id: _Uuid | None = None
    session_id: _Identifier | None = None

    @model_validator(mode="after")
    def _session_within_its_agent(self) -> ScopeModel:
        if self.session_id is not None and self.agent_instance_id is None:
            raise ValueError("a session_id needs its agent_instance_id (a session is named within its agent)")
        return self


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
    created_at: _TimeText
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
    created_at: _Time
    updated_at: _Time
    metadata: dict[str, Any]
    episode_id: _Uuid | None
    terminated_at: _Time | None
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
    created_at: _Time
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
    at: _Time
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
    created_at: _Time
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


def _field(path: Sequence[str | int]) -> str:
    """A place in a record, as an error names it: ``session.metadata.note``, ``episode.lessons_learned[0]``,
    ``checkpoint.state['']`` (a key that is not a name is shown quoted; pydantic's ``[key]`` marker is dropped)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        elif part != "[key]":
            out += f"[{part!r}]"
    return out


_IN_JSON_TERMS = {
    "dict_type": "Input should be an object",
    "model_type": "Input should be an object",
    "model_attributes_type": "Input should be an object",
    "list_type": "Input should be a valid array",
    "tuple_type": "Input should be a valid array",
}
"""Pydantic's messages for a value of the wrong shape, in the file's terms (it says "dictionary" and "list" of the
decoded line)."""


def _problem(line_no: int, exc: ValidationError | orjson.JSONDecodeError) -> InvalidArgument:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = _field(first["loc"])
        message = _IN_JSON_TERMS.get(first["type"], first["msg"])
        return InvalidArgument(f"line {line_no} of the export file is not a valid record: {where}: {message}")
    return InvalidArgument(f"line {line_no} of the export file is not JSON: {exc}")


def _nul_at(value: object) -> tuple[str | int, ...] | None:
    """Where in a decoded line a NUL character is (the path to the string or the object key holding it), or None."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    return (*path, key)
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(node))
    return None


MAX_LINE_DEPTH = 200
"""Objects and arrays nest at most this deep in a line: export writes at most 102 levels (an event's detail holding
metadata nested 100 levels, the most a call takes). orjson reads 1,023 levels but writes only 254, so a record
deeper than that would be imported and then no export of it could be written."""


def _deeper_than(value: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep(line: bytes, raw: object) -> bool:
    """Whether the decoded ``line`` nests deeper than :data:`MAX_LINE_DEPTH`. Walked only when the line has brackets
    enough, and not into a checkpoint's state: the one large field, whose shape (``{key: [text, number]}``) its
    model checks, so that a state nested deeper fails its validation at its first level."""
    if line.count(b"{") + line.count(b"[") <= MAX_LINE_DEPTH:
        return False
    if not isinstance(raw, dict):
        return _deeper_than(raw, MAX_LINE_DEPTH)
    return any(_deeper_than(value, MAX_LINE_DEPTH - 1) for name, value in raw.items() if name != "state")


_LONG_NUMBER = re.compile(rb"\d{19}")
"""19 digits in a row: the shortest integer beyond 64 bits (-9223372036854775809) has as many; a line without them
holds none."""


def _wide_integer_at(line: bytes) -> tuple[str | int, ...] | None:
    """Where in ``line`` an integer beyond 64 bits is (the path to it), or None. orjson reads one as the float
    nearest to it, so the line is read again by the standard library, whose integers are exact (orjson has refused
    one of 309 digits or more, as infinity, so none is past Python's limit on an integer's digits)."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(json.loads(line), ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((child, (*path, key)) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(node))
        elif type(node) is int and not MIN_JSON_INTEGER <= node <= MAX_JSON_INTEGER:
            return path
    return None


def _decode(line: bytes, line_no: int) -> object:
    """A line's JSON, or ``invalid_argument`` naming the line. A NUL character anywhere in it (a text field, a
    metadata value or key, a working key) is refused here, once for every field of every kind: no store can hold
    one (Postgres text and jsonb cannot), and the tools refuse it too; and so is a line nested deeper than
    :data:`MAX_LINE_DEPTH`, and an integer beyond 64 bits (a hand-written file's: export writes none), which orjson
    would read as another number, a float, and which the tools refuse in metadata (``check_json_integers``)."""
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise _problem(line_no, exc) from None
    if _LONG_NUMBER.search(line) and (wide := _wide_integer_at(line)) is not None:
        kind = raw.get("kind") if isinstance(raw, dict) else None
        field = _field((kind, *wide) if isinstance(kind, str) else wide)
        raise InvalidArgument(
            f"line {line_no} of the export file is not a valid record: {field}: an integer outside the 64-bit range "
            f"every store keeps ({MIN_JSON_INTEGER} to {MAX_JSON_INTEGER}), which no call takes either; nothing was "
            "imported"
        )
    if _too_deep(line, raw):
        raise InvalidArgument(
            f"line {line_no} of the export file is not a valid record: it is nested deeper than {MAX_LINE_DEPTH} "
            "levels, more than any record export writes; nothing was imported"
        )
    # JSON text cannot hold a raw NUL (orjson refuses control characters): only its escape makes one.
    if b"\\u0000" in line and (where := _nul_at(raw)) is not None:
        kind = raw.get("kind") if isinstance(raw, dict) else None
        field = _field((kind, *where) if isinstance(kind, str) else where)
        raise InvalidArgument(
            f"line {line_no} of the export file is not a valid record: {field}: contains a NUL character (U+0000), "
            "which no store can hold; nothing was imported"
        )
    return raw


def parse_header(line: bytes) -> Header:
    """The header (line 1), or ``invalid_argument``; a newer format version is refused with its own message, and
    so is a version that is not an integer (``"2"``, ``2.0``, ``true``) or below 1."""
    raw = _decode(line, 1)
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
        raise _problem(1, exc) from None


def parse_line(line: bytes, line_no: int) -> Record | Trailer:
    """One line after the header: a record or the trailer, or ``invalid_argument`` naming the line. The line is
    decoded once (:func:`_decode`) and its record validated from what it decoded to."""
    raw = _decode(line, line_no)
    try:
        if isinstance(raw, dict) and raw.get("kind") == "trailer":
            return Trailer.model_validate(raw)
        return _RECORD.validate_python(raw)
    except ValidationError as exc:
        raise _problem(line_no, exc) from None


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
