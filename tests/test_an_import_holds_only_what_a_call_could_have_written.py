"""An export file edited by hand and resealed (a fresh checksum) cannot bring in what no call could have written:
a NUL character in any text (SQLite stored it, data that could then never move to Postgres; Postgres failed as
``internal`` with tracebacks), a key that ``memory_set`` refuses (then restored by resume, and no call could delete
it), a format version that is not an integer, a time that not every store keeps exactly, a field in another JSON
type than export writes (coerced), a checkpoint whose key count, size or content hash are not its state's. Each is
``invalid_argument`` naming the line, and nothing is written; times within the range round-trip to the microsecond.
On every store. (The tools' limits: test_an_import_keeps_to_the_limits_of_the_calls.py.)"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from mcp_memory.services.export_format import FORMAT_VERSION
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import (
    Records,
    comparable,
    export_to,
    first,
    line_of,
    nested,
    records,
    refused,
    resealed,
)

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


NUL_CASES: list[tuple[str, str, Callable[[Records], None]]] = [
    ("checkpoint", "checkpoint.label", lambda recs: first(recs, "checkpoint").update(label="l\x00")),
    ("session", "session.metadata.x", lambda recs: first(recs, "session").update(metadata={"x": "\x00"})),
    ("session", "session.metadata['k\\x00']", lambda recs: first(recs, "session").update(metadata={"k\x00": 1})),
    ("episode", "episode.task_description", lambda recs: first(recs, "episode").update(task_description="t\x00")),
    ("episode", "episode.lessons_learned[0]", lambda recs: first(recs, "episode").update(lessons_learned=["\x00"])),
    ("event", "event.event_type", lambda recs: first(recs, "event").update(event_type="sp\x00awn")),
    ("event", "event.detail.note", lambda recs: first(recs, "event")["detail"].update(note="n\x00")),
    ("working", "working.key", lambda recs: first(recs, "working").update(key="k\x00")),
    (
        "checkpoint",
        "checkpoint.state['a\\x00']",
        lambda recs: first(recs, "checkpoint")["state"].update({"a\x00": ["1", None]}),
    ),
    ("header", "header.exported_by", lambda recs: recs[0].update(exported_by="mcp-memory\x00")),
]


async def test_a_nul_in_any_text_of_any_record_is_invalid_argument_naming_the_line(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    _, path = exported
    for kind, field, edit in NUL_CASES:
        crafted = resealed(path, tmp_path / "nul.jsonl", edit)
        message = await refused(runtime, crafted)
        assert message.startswith(
            f"line {line_of(crafted, kind)} of the export file is not a valid record: {field}: contains a NUL "
            "character (U+0000)"
        ), (field, message)


def deep_json(value: object) -> bytes:
    """JSON text of any depth (orjson writes at most 254 levels)."""
    return json.dumps(value, separators=(",", ":")).encode()


async def test_a_line_nested_deeper_than_export_writes_is_refused(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """orjson reads 1,023 levels and writes 254: an event's detail 300 levels deep would be imported, and then no
    export of its session could be written."""
    _, path = exported
    for levels in (300, 600):
        crafted = resealed(
            path,
            tmp_path / "deep.jsonl",
            lambda recs, n=levels: first(recs, "event")["detail"].update(x=nested(n)),
            deep_json,
        )
        message = await refused(runtime, crafted)
        assert message.startswith(
            f"line {line_of(crafted, 'event')} of the export file is not a valid record: it is nested deeper than "
            "200 levels"
        ), message


DEEP = b"@deep@"
"""Where :func:`with_deep` writes its nesting: a string no record holds."""


def with_deep(levels: int) -> Callable[[object], bytes]:
    """A record writer that puts arrays ``levels`` deep around a 19-digit integer in place of the string ``DEEP``
    (the standard library's ``json`` can neither write nor read that depth: it recurses)."""
    deep = b"[" * levels + b"1234567890123456789" + b"]" * levels

    def dumps(record: object) -> bytes:
        return orjson.dumps(record).replace(b'"' + DEEP + b'"', deep)

    return dumps


async def test_a_line_nested_too_deep_for_python_with_a_long_integer_is_refused_naming_the_line(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """A line nested a thousand levels (orjson reads it) holding 19 digits in a row, the sign of an integer beyond
    64 bits, is read again by the standard library, which recursed too deep: ``internal``, not the line's fault.
    Anywhere in the record, a checkpoint's state (which the depth check does not walk) included."""
    _, path = exported
    cases: list[tuple[str, Callable[[Records], None]]] = [
        ("event", lambda recs: first(recs, "event")["detail"].update(x=DEEP.decode())),
        ("checkpoint", lambda recs: first(recs, "checkpoint")["state"].update(deep=[DEEP.decode(), None])),
    ]
    for kind, edit in cases:
        crafted = resealed(path, tmp_path / "deep.jsonl", edit, with_deep(1000))
        message = await refused(runtime, crafted)
        assert message.startswith(
            f"line {line_of(crafted, kind)} of the export file is not a valid record: it is nested deeper than "
            "200 levels"
        ), (kind, message)


async def test_a_key_that_no_call_could_delete_is_refused_in_working_memory_and_in_every_checkpoint(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """The import takes a key as ``memory_set`` does: a checkpoint's empty key was imported, restored by resume, shown
    by ``memory_list``, and ``memory_delete`` refused it."""
    _, path = exported
    cases: list[tuple[str, str, Callable[[Records], None]]] = [
        (
            "checkpoint",
            "checkpoint.state['']",
            lambda recs: first(recs, "checkpoint")["state"].update({"": ["1", None]}),
        ),
        ("working", "working.key", lambda recs: first(recs, "working").update(key="")),
    ]
    for kind, field, edit in cases:
        crafted = resealed(path, tmp_path / "keys.jsonl", edit)
        message = await refused(runtime, crafted)
        assert message.startswith(
            f"line {line_of(crafted, kind)} of the export file is not a valid record: {field}: Value error, key must "
            "be a non-empty string"
        ), (field, message)


async def test_a_format_version_that_is_not_the_integer_is_refused_with_its_own_message(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """``"2"``, ``2.0`` or ``true`` were coerced to an integer and the file read as version 1."""
    _, path = exported
    for version in ("2", 2.0, "1", 1.0, True, 0, None):
        crafted = resealed(path, tmp_path / "version.jsonl", lambda recs, v=version: recs[0].update(format_version=v))
        message = await refused(runtime, crafted)
        assert message.startswith(
            f"the export file has format version {orjson.dumps(version).decode()}, which is not a version this "
            f"mcp-memory reads (an integer from 1 to {FORMAT_VERSION})"
        ), (version, message)
    newer = resealed(path, tmp_path / "newer.jsonl", lambda recs: recs[0].update(format_version=FORMAT_VERSION + 1))
    assert f"newer than this mcp-memory reads ({FORMAT_VERSION})" in await refused(runtime, newer)


async def test_times_outside_what_every_store_keeps_exactly_are_refused(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """Year 1 went into Postgres as -infinity (after which no export of the project could be written) and
    9999-12-31T23:59:59.999999Z came back from SQLite without its microseconds."""
    _, path = exported
    cases: list[tuple[str, str, str]] = [
        ("episode", "created_at", "0001-01-01T00:00:00.000000Z"),
        ("event", "at", "9999-12-31T23:59:59.999999Z"),
        ("session", "updated_at", "1699-12-31T23:59:59.999999Z"),
        ("checkpoint", "created_at", "2200-01-01T00:00:00.000000Z"),
        ("session", "created_at", "0001-01-01T00:30:00+01:00"),  # year 0 in UTC
    ]
    for kind, field, at in cases:
        crafted = resealed(
            path, tmp_path / "times.jsonl", lambda recs, k=kind, f=field, t=at: first(recs, k).update({f: t})
        )
        message = await refused(runtime, crafted)
        assert message.startswith(
            f"line {line_of(crafted, kind)} of the export file is not a valid record: {kind}.{field}: Value error, "
        ) and message.endswith(
            "is outside the times every store keeps exactly (1700-01-01T00:00:00.000000Z to "
            "2199-12-31T23:59:59.999999Z)"
        ), (kind, field, message)


async def test_times_at_both_ends_of_the_range_round_trip_to_the_microsecond(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    project, path = exported
    earliest, latest = "1700-01-01T00:00:00.000000Z", "2199-12-31T23:59:59.999999Z"

    def at_the_ends(recs: Records) -> None:
        first(recs, "session").update(created_at=earliest, updated_at=latest)
        first(recs, "checkpoint").update(created_at="1700-01-01T00:00:00.000001Z")
        first(recs, "event").update(at=latest)
        first(recs, "episode").update(created_at="2199-12-31T23:59:59.999998Z")

    crafted = resealed(path, tmp_path / "ends.jsonl", at_the_ends)
    assert runtime.transfer is not None
    await runtime.transfer.import_file(crafted)
    again = await export_to(runtime, Selection(project), tmp_path / "again.jsonl")
    assert comparable(again)[0] == comparable(crafted)[0]


SOON = int(time.time()) + 86400
"""An expiry as a whole number of seconds, a day from now (within the longest TTL)."""

COERCED_CASES: list[tuple[str, str, str, Callable[[Records], None]]] = [
    ("session", "session.sealed", "valid boolean", lambda recs: first(recs, "session").update(sealed="false")),
    ("checkpoint", "checkpoint.keep", "valid boolean", lambda recs: first(recs, "checkpoint").update(keep=0)),
    (
        "checkpoint",
        "checkpoint.keys_count",
        "valid integer",
        lambda recs: first(recs, "checkpoint").update(keys_count=2.0),
    ),
    ("checkpoint", "checkpoint.bytes", "valid integer", lambda recs: first(recs, "checkpoint").update(bytes="6")),
    (
        "checkpoint",
        "checkpoint.state.a[1]",
        "valid number",
        lambda recs: first(recs, "checkpoint")["state"]["a"].__setitem__(1, str(SOON)),
    ),
    (
        "working",
        "working.expires_at",
        "valid number",
        lambda recs: first(recs, "working").update(expires_at=str(SOON)),
    ),
    ("event", "event.duration_ms", "valid number", lambda recs: first(recs, "event").update(duration_ms="1.5")),
    (
        "episode",
        "episode.importance_score",
        "valid number",
        lambda recs: first(recs, "episode").update(importance_score="0.5"),
    ),
    (
        "episode",
        "episode.created_at",
        "valid datetime",
        lambda recs: first(recs, "episode").update(created_at=1800000000),
    ),
    (
        "episode",
        "episode.project_id",
        "must be a UUID such as",
        lambda recs: first(recs, "episode").update(project_id=first(recs, "episode")["project_id"].replace("-", "")),
    ),
    ("header", "vectors", "valid boolean", lambda recs: recs[0].update(vectors="false")),
    ("header", "counts.sessions", "valid integer", lambda recs: recs[0]["counts"].update(sessions=1.0)),
]


async def test_a_field_in_another_json_type_than_export_writes_is_refused_not_coerced(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """``"sealed": "false"`` was read as false, ``"keys_count": 2.0`` as 2, a time given as a number as that many
    seconds since 1970, a UUID without its hyphens as the UUID: a file that export never writes was taken."""
    _, path = exported
    for kind, field, expected, edit in COERCED_CASES:
        crafted = resealed(path, tmp_path / "coerced.jsonl", edit)
        message = await refused(runtime, crafted)
        at = line_of(crafted, kind)
        assert message.startswith(f"line {at} of the export file is not a valid record: {field}: "), (field, message)
        assert expected in message, (field, message)


async def test_a_whole_number_in_a_number_field_is_still_a_number(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """JSON has one number type: a float field written as ``1`` (as a store that kept the number whole would) is
    taken as it is, and reads back the same."""
    project, path = exported

    def whole(recs: Records) -> None:
        first(recs, "episode").update(importance_score=1)
        first(recs, "event").update(duration_ms=3)
        first(recs, "working").update(expires_at=SOON)

    crafted = resealed(path, tmp_path / "whole.jsonl", whole)
    assert runtime.transfer is not None
    await runtime.transfer.import_file(crafted)
    again = records(await export_to(runtime, Selection(project), tmp_path / "again.jsonl"))
    assert first(again, "episode")["importance_score"] == 1
    assert first(again, "event")["duration_ms"] == 3
    assert first(again, "working")["expires_at"] == SOON


FIGURE_CASES: list[tuple[str, str, Callable[[Records], None]]] = [
    (
        "keys_count",
        "has keys_count 3, but its state makes it 2",
        lambda recs: first(recs, "checkpoint").update(keys_count=3),
    ),
    ("bytes", "has bytes 0, but its state makes it 4", lambda recs: first(recs, "checkpoint").update(bytes=0)),
    (
        "content_hash",
        "has content_hash 'sha256:00', but its state makes it 'sha256:",
        lambda recs: first(recs, "checkpoint").update(content_hash="sha256:00"),
    ),
    (
        "the state",  # a value edited, its figures left as the pause computed them
        "has bytes 4, but its state makes it 6",
        lambda recs: first(recs, "checkpoint")["state"]["a"].__setitem__(0, "100"),
    ),
    (
        "the state",  # a key added
        "has keys_count 2, but its state makes it 3",
        lambda recs: first(recs, "checkpoint")["state"].update(c=["3", None]),
    ),
]


async def test_a_checkpoint_whose_figures_are_not_its_states_is_refused(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """``keys_count``, ``bytes`` and ``content_hash`` were taken from the file: a state edited without them (or
    figures edited alone) was imported, a checkpoint that ``list_checkpoints`` described otherwise than a resume
    restored it."""
    _, path = exported
    checkpoint = first(records(path), "checkpoint")
    assert (checkpoint["keys_count"], checkpoint["bytes"]) == (2, 4)  # {"a": "1", "b": "[2]"}
    for edited, expected, edit in FIGURE_CASES:
        crafted = resealed(path, tmp_path / "figures.jsonl", edit)
        message = await refused(runtime, crafted)
        assert message.startswith(
            f"line {line_of(crafted, 'checkpoint')} of the export file: checkpoint 'c1' {expected}"
        ), (edited, message)
