"""The ``next_before`` cursors of ``list_checkpoints`` and ``list_sessions`` share one codec (``mcp_memory.cursors``)
and keep the wire form they always had: a cursor a client holds from an earlier release still leads on, and the
same position still gives the same cursor. The literals below were made by the release before the codec was shared.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import UUID

import pytest

from mcp_memory.errors import InvalidArgument
from mcp_memory.models import CheckpointInfo
from mcp_memory.services.checkpoint_cursor import CheckpointBound, decode_before, encode_cursor
from mcp_memory.stores.sql.sessions import decode_position, encode_position

AT = datetime(2026, 5, 28, 20, 26, 40, 123456, tzinfo=UTC)
AGENT = UUID("6f1c2a3b-0000-4000-8000-000000000001")
CHECKPOINT_CURSOR = "~eyJjIjoiY3AtMjAyNi5hXzEiLCJ1IjoxNzgwMDAwMDAwMTIzNDU2fQ"
SESSION_CURSOR_MICROS = (  # Postgres: timestamptz as integer microseconds
    "eyJ1IjoxNzgwMDAwMDAwMTIzNDU2LCJhIjoiNmYxYzJhM2ItMDAwMC00MDAwLTgwMDAtMDAwMDAwMDAwMDAxIiwicyI6InNlc3Npb24tMSJ9"
)
SESSION_CURSOR_SECONDS = (  # SQLite: epoch seconds as a float
    "eyJ0IjoxNzgwMDAwMDAwLjEyMzQ1NiwiYSI6IjZmMWMyYTNiLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMSIsInMiOiJzZXNzaW9uLTEifQ"
)


def test_a_checkpoint_cursor_of_the_earlier_release_decodes_and_is_made_alike() -> None:
    assert decode_before(CHECKPOINT_CURSOR) == CheckpointBound("cp-2026.a_1", AT)
    info = CheckpointInfo(checkpoint_id="cp-2026.a_1", created_at=AT, keys_count=1, bytes=1, content_hash="x")
    assert encode_cursor(info) == CHECKPOINT_CURSOR


def test_session_cursors_of_the_earlier_release_decode_and_are_made_alike() -> None:
    assert decode_position(SESSION_CURSOR_MICROS, want_datetime=True) == (AT, AGENT, "session-1")
    assert decode_position(SESSION_CURSOR_SECONDS, want_datetime=False) == (AT.timestamp(), AGENT, "session-1")
    assert encode_position(AT, AGENT, "session-1") == SESSION_CURSOR_MICROS
    assert encode_position(AT.timestamp(), AGENT, "session-1") == SESSION_CURSOR_SECONDS
    # A cursor moved between stores (a Postgres one on SQLite, and back) names the same position.
    assert decode_position(SESSION_CURSOR_MICROS, want_datetime=False) == (AT.timestamp(), AGENT, "session-1")
    assert decode_position(SESSION_CURSOR_SECONDS, want_datetime=True)[0] == AT


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",  # JSON, not an object
        b"\xff\xfe",  # not UTF-8
        b'{"c": "cp", "u": true}',  # a bool is not a time
        b'{"c": "cp", "u": "1780000000123456"}',  # nor a string
        b'{"c": "cp", "u": 99999999999999999999}',  # out of datetime's range
    ],
)
def test_a_forged_checkpoint_cursor_is_malformed(body: bytes) -> None:
    with pytest.raises(InvalidArgument, match="malformed cursor"):
        decode_before("~" + _b64(body))


@pytest.mark.parametrize(
    "cursor",
    [
        "!!not base64!!",
        _b64(b'"a string"'),
        _b64(b'{"u": 1, "a": "not a uuid", "s": "s"}'),
        _b64(b'{"t": "1.5", "a": "6f1c2a3b-0000-4000-8000-000000000001", "s": "s"}'),  # a time is a number
        _b64(b'{"u": "1", "a": "6f1c2a3b-0000-4000-8000-000000000001", "s": "s"}'),
        _b64(b'{"u": 1, "a": "6f1c2a3b-0000-4000-8000-000000000001", "s": 7}'),
    ],
)
def test_a_forged_session_cursor_is_malformed(cursor: str) -> None:
    with pytest.raises(InvalidArgument, match="malformed cursor"):
        decode_position(cursor, want_datetime=True)
