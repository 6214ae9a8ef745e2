"""A record's times are ISO 8601 date-times as docs/export-format.md says: one without an offset is UTC (not the
host's zone), one with an offset is that offset, and both come back from the store as that instant in UTC. A time
written as epoch seconds in a string (``"1800000000"``, or ``"1800000000000"``, which was read as milliseconds) is
no date-time: it was taken as the time it counts to, and is now ``invalid_argument`` naming the line and the field,
nothing written. On every store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import Records, export_to, first, line_of, records, refused, resealed

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def test_a_time_without_an_offset_is_utc_and_one_with_an_offset_is_that_offset(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    project, path = exported

    def zones(recs: Records) -> None:
        first(recs, "session").update(created_at="2026-01-02T03:04:05.000006")
        first(recs, "event").update(at="2026-01-02T03:04:05.000007+01:30")
        first(recs, "episode").update(created_at="2026-01-02T03:04:05-08:00")

    crafted = resealed(path, tmp_path / "zones.jsonl", zones)
    assert runtime.transfer is not None
    await runtime.transfer.import_file(crafted)
    again = records(await export_to(runtime, Selection(project), tmp_path / "again.jsonl"))
    assert first(again, "session")["created_at"] == "2026-01-02T03:04:05.000006Z"
    assert first(again, "event")["at"] == "2026-01-02T01:34:05.000007Z"
    assert first(again, "episode")["created_at"] == "2026-01-02T11:04:05.000000Z"


async def test_a_time_given_as_epoch_seconds_in_a_string_is_refused(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    _, path = exported
    for kind, field, at in (
        ("session", "created_at", "1800000000"),
        ("checkpoint", "created_at", "1800000000.5"),
        ("event", "at", "1800000000000"),
        ("episode", "created_at", "-5"),
    ):
        crafted = resealed(
            path, tmp_path / "epoch.jsonl", lambda recs, k=kind, f=field, t=at: first(recs, k).update({f: t})
        )
        message = await refused(runtime, crafted)
        assert message == (
            f"line {line_of(crafted, kind)} of the export file is not a valid record: {kind}.{field}: Input should be "
            "a valid datetime: an ISO 8601 date and time such as 2026-12-04T17:25:27.123456Z"
        ), (kind, at, message)
