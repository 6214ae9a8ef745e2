"""The ``before`` of ``list_checkpoints``: a checkpoint id, or the position cursor the server hands out as
``next_before``.

A cursor carries the last listed checkpoint's id and its time (to the microsecond, as stored), both of which the
caller was shown already: nothing numbered across sessions or projects. The store continues after that checkpoint
while it exists, and after its time once it is gone (deleted or pruned since), so a cursor the server handed out
always leads on. It starts with ``~``, a character no checkpoint id has, so the two forms never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from mcp_memory.cursors import datetime_of_micros, decode_fields, encode_fields, micros_of
from mcp_memory.errors import InvalidArgument
from mcp_memory.models import CheckpointInfo, validate_identifier

MARK: Final = "~"
"""The first character of a cursor (outside the checkpoint-id alphabet ``A-Z a-z 0-9 . _ -``)."""
_MALFORMED: Final = "before: malformed cursor (pass a next_before from list_checkpoints, or a checkpoint_id)"


@dataclass(frozen=True, slots=True)
class CheckpointBound:
    """Where a page starts: after checkpoint ``checkpoint_id`` (None: at the newest). ``created_at`` is None for a
    plain checkpoint id (which must exist in the session) and the checkpoint's time for a cursor (its position when
    the checkpoint is gone)."""

    checkpoint_id: str | None
    created_at: datetime | None = None


def encode_cursor(info: CheckpointInfo) -> str:
    """The cursor that continues after ``info`` (the last checkpoint of a page)."""
    return MARK + encode_fields({"c": info.checkpoint_id, "u": micros_of(info.created_at)})


def decode_before(before: object) -> CheckpointBound:
    """A ``before`` argument as a bound; ``InvalidArgument`` for a malformed cursor or an invalid checkpoint id."""
    if not (isinstance(before, str) and before.startswith(MARK)):
        return CheckpointBound(validate_identifier(before, "before"))
    try:
        data = decode_fields(before[len(MARK) :])
        at = datetime_of_micros(data["u"])
        return CheckpointBound(validate_identifier(data["c"], "before"), at)
    except (ValueError, KeyError, TypeError, OverflowError, InvalidArgument):
        raise InvalidArgument(_MALFORMED) from None


__all__ = ["MARK", "CheckpointBound", "decode_before", "encode_cursor"]
