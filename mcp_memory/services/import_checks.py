"""What an import takes of a record past its shape: only what a call could have written on this server
(docs/export-format.md, Import).

A record's shape (its fields, their JSON types, keys as ``memory_set`` takes them, times within range) is the
format's (:mod:`~mcp_memory.services.export_format`). Here, what the tools refuse besides: their limits, checked
by their own validators (:mod:`~mcp_memory.services.validation`) with the importing server's settings, so that a file
from a server with larger limits, or edited by hand, cannot leave data that no call could have written (and that
the calls then refuse to touch: ``memory_delete`` of an over-long key is ``too_large``); that a checkpoint's
figures (key count, size, content hash) are those its state makes, as a pause computed them; and that the fields
the server fills in itself (a session's terminate fields, an event's type, outcome and detail, an episode's
context summary) are what it writes there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mcp_memory.errors import ERROR_CODES, InvalidArgument, MemoryServiceError, TooLarge
from mcp_memory.json_values import encode_value, utf8_size
from mcp_memory.models import Item, SessionStatus, content_hash
from mcp_memory.services.export_format import (
    CheckpointRecord,
    EpisodeRecord,
    EventRecordModel,
    Record,
    SessionRecord,
    WorkingRecord,
)
from mcp_memory.services.terminate_episode import STATE_KEYS, STATE_KEYS_LISTED
from mcp_memory.services.validation import (
    MAX_LABEL,
    MAX_TASK_TYPE,
    MAX_TEXT,
    check_context_summary,
    check_importance,
    check_key,
    check_lessons,
    check_metadata,
    check_text,
)

EVENT_OUTCOMES = ("ok", *ERROR_CODES)
"""An event's ``outcome``: ``ok``, or the code of the error its call failed with."""
EXPIRY_CLOCK_MARGIN = 86_400
"""Seconds an imported key may expire past the importing server's now + the longest TTL: the margin for the
difference between the exporting machine's clock and the importing one's (a key set with the longest TTL just
before the export was refused where the clock is a few seconds behind). A day: far below Redis's bound."""
MAX_DETAIL_BYTES = MAX_TEXT
"""Of an event's detail without the call's metadata, serialised: what the server adds there itself (counts, ids, an
error's sentence, at most 100 forgotten episodes' ids) is a few kilobytes at most."""


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """This server's limits (its settings), as its calls apply them."""

    max_key_length: int
    max_value_bytes: int
    """Of a working-memory value, and of a metadata object serialised."""
    max_keys: int
    """Keys per session (``max_keys_per_session``): a checkpoint's state holds at most that many, as a pause took
    them, and a resume refuses more."""
    latest_expiry: float
    """No expiry later than this (epoch seconds; the longest TTL from the import's time, and
    :data:`EXPIRY_CLOCK_MARGIN`): Redis refuses an expiry of 1e15 and more, as ``internal``."""

    def check_item(self, key: str, value: str, expires_at: float | None, where: str) -> None:
        """A working-memory item as ``memory_set`` takes it on this server (``where``: the line, for the error)."""
        try:
            check_key(key, self.max_key_length, f"key {_shown(key)}")
        except MemoryServiceError as exc:
            raise type(exc)(f"{where}: {exc.message} (this server's max_key_length); nothing was imported") from None
        size = utf8_size(value, f"{where}: the value of key {_shown(key)}")
        if size > self.max_value_bytes:
            raise TooLarge(
                f"{where}: the value of key {_shown(key)} is {size} bytes; this server's limit is "
                f"{self.max_value_bytes} (max_value_bytes); nothing was imported"
            )
        if expires_at is not None and not (math.isfinite(expires_at) and expires_at <= self.latest_expiry):
            raise InvalidArgument(
                f"{where}: key {_shown(key)} expires at {expires_at}, past the longest TTL from now and a day's "
                "margin for the clocks' difference; nothing was imported"
            )


def check_record(record: Record, line_no: int, limits: ImportLimits | None) -> None:
    """Refuse ``record`` (line ``line_no``) if no call could have written it: its texts, lessons and importance as
    the tools take them, the fields the server fills in otherwise than it writes them, a checkpoint's figures not
    its state's, and with ``limits`` its metadata, working items and checkpoint state as this server's calls take
    them. The tools' error code (``too_large`` / ``invalid_argument``), naming the line."""
    try:
        _check_fields(record, limits)
        _check_server_fields(record, limits)
    except MemoryServiceError as exc:
        raise type(exc)(
            f"line {line_no} of the export file: {record.kind}: {exc.message}; nothing was imported"
        ) from None
    if isinstance(record, CheckpointRecord):
        _check_figures(record, line_no)
    if limits is None:
        return
    if isinstance(record, WorkingRecord):
        limits.check_item(record.key, record.value, record.expires_at, f"line {line_no}")
    elif isinstance(record, CheckpointRecord):
        where = f"line {line_no} (checkpoint '{record.checkpoint_id}')"
        if len(record.state) > limits.max_keys:
            raise TooLarge(
                f"{where}: its state holds {len(record.state)} keys; this server's limit is {limits.max_keys} per "
                "session (max_keys_per_session); nothing was imported"
            )
        for key, (value, expires_at) in record.state.items():
            limits.check_item(key, value, expires_at, where)


def _check_figures(record: CheckpointRecord, line_no: int) -> None:
    """A checkpoint's ``keys_count``, ``bytes`` and ``content_hash`` are its state's, as the pause computed them
    (:func:`~mcp_memory.models.content_hash`): a state edited without them, or figures edited alone, would be a
    checkpoint no pause made (and ``list_checkpoints`` would describe another state than a resume restores)."""
    digest, size = content_hash({key: Item(value, expires_at) for key, (value, expires_at) in record.state.items()})
    made: dict[str, int | str] = {"keys_count": len(record.state), "bytes": size, "content_hash": digest}
    for name, value in made.items():
        given = getattr(record, name)
        if given != value:
            raise InvalidArgument(
                f"line {line_no} of the export file: checkpoint '{record.checkpoint_id}' has {name} "
                f"{_shown_value(given)}, but its state makes it {_shown_value(value)}: the file was edited; nothing "
                "was imported"
            )


def _shown_value(value: int | str) -> str:
    return str(value) if isinstance(value, int) else repr(value if len(value) <= 80 else value[:80] + "...")


def _check_fields(record: Record, limits: ImportLimits | None) -> None:
    """The fields a call takes as arguments, through the validators of those calls (spawn, pause,
    ``record_episode``, terminate, ``update_episode``)."""
    if isinstance(record, EpisodeRecord):
        check_text(record.task_type, "task_type", MAX_TASK_TYPE)
        check_text(record.task_description, "task_description", MAX_TEXT)
        check_text(record.outcome_details, "outcome_details", MAX_TEXT, required=False)
        check_lessons(record.lessons_learned)
        check_importance(record.importance_score)
        if limits is not None:
            _episode_metadata(record.metadata, limits)
    elif isinstance(record, CheckpointRecord):
        if record.label is not None:
            check_text(record.label, "label", MAX_LABEL)
        if limits is not None:
            check_metadata(record.metadata, limits.max_value_bytes)
    elif isinstance(record, SessionRecord) and limits is not None:
        check_metadata(record.metadata, limits.max_value_bytes)


def _check_server_fields(record: Record, limits: ImportLimits | None) -> None:
    """The fields the server fills in itself, as it writes them: a session's terminate fields (:func:`_terminated`),
    an event's type, outcome and detail (:func:`_detail`), an episode's context summary (terminate's summary of the
    session's keys, or what the Python API's ``record_episode`` took: :func:`check_context_summary`)."""
    if isinstance(record, SessionRecord):
        _terminated(record)
    elif isinstance(record, EventRecordModel):
        check_text(record.event_type, "event_type", MAX_TASK_TYPE)  # a name such as pause or forget_episodes
        if record.outcome not in EVENT_OUTCOMES:
            raise InvalidArgument(
                f"outcome {_shown(record.outcome)} is neither ok nor an error code ({', '.join(ERROR_CODES)})"
            )
        try:
            _detail(record.detail, limits)
        except MemoryServiceError as exc:
            raise type(exc)(f"detail: {exc.message}") from None
    elif isinstance(record, EpisodeRecord):
        check_context_summary(record.context_summary)


def _terminated(record: SessionRecord) -> None:
    """A session's ``terminated_at``, ``episode_id`` and ``terminate_result`` are set by its terminate alone, together
    with its status: all null unless terminated; once terminated, its time and its result, whose episode is the
    session's (a repeated terminate answers that result, and an import that renames the episode follows it), or
    one forgotten since (forget_episodes drops the session's link, the result keeps the id)."""
    sid = record.session_id
    result = record.terminate_result
    if record.status != SessionStatus.TERMINATED:
        for name in ("terminated_at", "episode_id", "terminate_result"):
            if getattr(record, name) is not None:
                raise InvalidArgument(
                    f"session '{sid}' is {record.status.value}, yet its {name} is set: only terminate sets it"
                )
        return
    if record.terminated_at is None or result is None:
        missing = "terminated_at" if record.terminated_at is None else "terminate_result"
        raise InvalidArgument(f"session '{sid}' is terminated, yet its {missing} is null: its terminate set it")
    if record.episode_id is not None and record.episode_id != result.episode_id:
        raise InvalidArgument(
            f"session '{sid}' has episode_id {record.episode_id}, but its terminate_result names episode "
            f"{result.episode_id}"
        )


def _detail(detail: dict[str, Any], limits: ImportLimits | None) -> None:
    """An event's detail as the server records it: the call's ``metadata`` as the call took it (with ``limits``),
    and besides what the server adds, JSON that every store keeps and every export writes (nested at most
    :data:`~mcp_memory.json_values.MAX_JSON_DEPTH` levels: deeper, no export of the session could be written) within
    :data:`MAX_DETAIL_BYTES` serialised."""
    own = {name: value for name, value in detail.items() if name != "metadata"}
    size = utf8_size(encode_value(own, "detail"), "detail")
    if size > MAX_DETAIL_BYTES:
        raise TooLarge(
            f"it is {size} bytes serialised without the call's metadata; the server adds at most {MAX_DETAIL_BYTES}"
        )
    if "metadata" in detail and limits is not None:
        check_metadata(detail["metadata"], limits.max_value_bytes)


def _episode_metadata(metadata: dict[str, Any], limits: ImportLimits) -> None:
    """An episode's metadata as ``record_episode`` takes it. Terminate adds the session's keys (``STATE_KEYS``: at
    most ``STATE_KEYS_LISTED`` keys) to metadata that the call took: such a list is not counted."""
    listed = metadata.get(STATE_KEYS)
    if isinstance(listed, list) and len(listed) <= STATE_KEYS_LISTED and all(_is_key(k, limits) for k in listed):
        metadata = {k: v for k, v in metadata.items() if k != STATE_KEYS}
    check_metadata(metadata, limits.max_value_bytes)


def _is_key(value: object, limits: ImportLimits) -> bool:
    try:
        check_key(value, limits.max_key_length)
    except MemoryServiceError:
        return False
    return True


def _shown(key: str) -> str:
    return repr(key) if len(key) <= 60 else repr(key[:60]) + "..."


__all__ = ["EXPIRY_CLOCK_MARGIN", "ImportLimits", "check_record"]
