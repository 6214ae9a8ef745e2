"""Reading an export file for import (docs/export-format.md): every pass reads the same open file from its start, the
first checking it whole (:func:`check_export`), the later ones (:func:`export_entries`) that it is still the file
checked: a file renamed over the path after the check is not read, and one edited in place fails the pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

import anyio

from mcp_memory.errors import InvalidArgument
from mcp_memory.services.export_format import (
    KINDS,
    CheckpointRecord,
    EpisodeRecord,
    Header,
    Record,
    SessionRecord,
    Trailer,
    WorkingRecord,
    parse_header,
    parse_line,
    to_entry,
)
from mcp_memory.services.import_checks import ImportLimits, check_record
from mcp_memory.stores.transfer import Entry


def _kind(record: Record) -> str:
    return {
        "session": "sessions",
        "working": "working",
        "checkpoint": "checkpoints",
        "event": "events",
        "episode": "episodes",
    }[record.kind]


async def check_export(f: BinaryIO, limits: ImportLimits | None = None) -> tuple[Header, str]:
    """Read the whole file once and check it: the header (a newer format version is refused), every record
    (fields, types, that it belongs to the header's scope and, but for episodes, to a session listed before
    it; a session's working keys together; what a call could have written, with ``limits`` on this server:
    :func:`~mcp_memory.services.import_checks.check_record`), and the trailer (present, last, its counts and
    checksum those of the lines before it). ``invalid_argument`` (or the tools' ``too_large``) naming the line
    otherwise. Returns the header and the checksum, which every later pass over ``f`` checks again
    (:func:`export_entries`)."""
    header: Header | None = None
    digest = hashlib.sha256()
    counts = dict.fromkeys(KINDS, 0)
    sessions: set[tuple[UUID, str]] = set()
    checkpoints: set[tuple[UUID, str, str]] = set()
    working_keys: set[tuple[UUID, str, str]] = set()
    # A session's working lines come together (the import stages them as one group): the sessions whose group
    # has ended, and the one being read.
    working_done: set[tuple[UUID, str]] = set()
    working_at: tuple[UUID, str] | None = None
    episodes: set[UUID] = set()
    trailer: Trailer | None = None
    line_no = 0
    async for line in _lines(f):
        line_no += 1
        if not line.endswith(b"\n"):
            raise InvalidArgument(f"the export file is truncated (line {line_no} is cut off); nothing was imported")
        if trailer is not None:
            raise InvalidArgument(f"line {line_no} of the export file follows its trailer; nothing was imported")
        if header is None:
            header = parse_header(line)
            digest.update(line)
            continue
        parsed = parse_line(line, line_no)
        if isinstance(parsed, Trailer):
            trailer = parsed
            continue
        digest.update(line)
        _check_in_scope(header, parsed, line_no)
        key = (parsed.agent_instance_id, parsed.session_id) if parsed.session_id is not None else None
        if isinstance(parsed, SessionRecord):
            if key in sessions:
                raise InvalidArgument(f"line {line_no}: session '{parsed.session_id}' is listed twice")
            assert key is not None
            sessions.add(key)
        elif not isinstance(parsed, EpisodeRecord) and key not in sessions:
            raise InvalidArgument(
                f"line {line_no}: a {parsed.kind} of session '{parsed.session_id}', which the file does not "
                "list before it"
            )
        # Twice the same key, checkpoint or episode would fail inside the import's transaction, as `internal`.
        if isinstance(parsed, CheckpointRecord):
            cid = (parsed.agent_instance_id, parsed.session_id, parsed.checkpoint_id)
            if cid in checkpoints:
                raise InvalidArgument(f"line {line_no}: checkpoint '{parsed.checkpoint_id}' is listed twice")
            checkpoints.add(cid)
        elif isinstance(parsed, WorkingRecord):
            owner = (parsed.agent_instance_id, parsed.session_id)
            if owner != working_at:
                if owner in working_done:
                    raise InvalidArgument(
                        f"line {line_no}: working key {parsed.key[:100]!r} of session '{parsed.session_id}' is "
                        "apart from the session's other working keys, which come together"
                    )
                if working_at is not None:
                    working_done.add(working_at)
                working_at = owner
            wid = (parsed.agent_instance_id, parsed.session_id, parsed.key)
            if wid in working_keys:
                raise InvalidArgument(
                    f"line {line_no}: working key {parsed.key[:100]!r} of session '{parsed.session_id}' is listed twice"
                )
            working_keys.add(wid)
        elif isinstance(parsed, EpisodeRecord):
            if parsed.episode_id in episodes:
                raise InvalidArgument(f"line {line_no}: episode {parsed.episode_id} is listed twice")
            episodes.add(parsed.episode_id)
        check_record(parsed, line_no, limits)
        counts[_kind(parsed)] += 1
    if header is None:
        raise InvalidArgument("the export file is empty; nothing was imported")
    if trailer is None:
        raise InvalidArgument("the export file is truncated (it has no trailer line); nothing was imported")
    if trailer.counts.model_dump() != counts:
        raise InvalidArgument(
            f"the export file's trailer counts {trailer.counts.model_dump()} but it holds {counts}: it is "
            "truncated or was edited; nothing was imported"
        )
    if trailer.sha256 != digest.hexdigest():
        raise InvalidArgument(
            "the export file's checksum does not match its lines: it was edited or damaged; nothing was imported"
        )
    return header, trailer.sha256


def _check_in_scope(header: Header, record: Record, line_no: int) -> None:
    scope = header.scope
    if record.project_id != scope.project_id:
        raise InvalidArgument(f"line {line_no}: a record of project {record.project_id}, not the header's")
    if scope.agent_instance_id is not None and record.agent_instance_id != scope.agent_instance_id:
        raise InvalidArgument(f"line {line_no}: a record of agent {record.agent_instance_id}, not the header's")
    if scope.session_id is not None and record.session_id != scope.session_id:
        raise InvalidArgument(f"line {line_no}: a record of session '{record.session_id}', not the header's")


READ_BATCH = 1 << 20
"""Lines are read from the file in batches of about this many bytes (one thread hop per batch, not per line)."""


async def open_export(path: Path) -> BinaryIO:
    return await anyio.to_thread.run_sync(path.open, "rb")


async def _lines(f: BinaryIO) -> AsyncIterator[bytes]:
    """The file's lines in order from its start (a line ends with ``\\n``; a last line without it is returned as
    is), read in batches of about :data:`READ_BATCH` bytes: memory holds one batch (or one longer line)."""
    await anyio.to_thread.run_sync(f.seek, 0)
    while batch := await anyio.to_thread.run_sync(f.readlines, READ_BATCH):
        for line in batch:
            yield line


async def export_entries(f: BinaryIO, sha256: str) -> AsyncIterator[Entry]:
    """The records of a validated file as store entries. The file's lines are those validated (checksum
    ``sha256``) or the pass fails at its end, before the caller commits: the file was edited in place meanwhile."""
    digest = hashlib.sha256()
    first = True
    async for line in _lines(f):
        if first:
            first = False
            digest.update(line)
            continue
        parsed = parse_line(line, 0)
        if isinstance(parsed, Trailer):
            break
        digest.update(line)
        yield to_entry(parsed)
    if digest.hexdigest() != sha256:
        raise InvalidArgument("the export file changed while it was imported; nothing was imported")


__all__ = ["READ_BATCH", "check_export", "export_entries", "open_export"]
