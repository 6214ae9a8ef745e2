"""An import refuses a line holding an integer beyond 64 bits (in a hand-written file: export writes none), naming the
line and the field, as the tools refuse one in metadata; nothing is written. orjson, which reads the file, took such an
integer as the float nearest to it: ``{"n": 1180591620717411303424}`` in a session's metadata was imported as
``1.1805916207174113e+21``, another value than the file's. The range's ends are imported exactly, and a working-memory
value (JSON text in a string) keeps any integer, as the tools keep it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import Records, export_to, first, line_of, records, refused, resealed

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "postgres")]

BIG = 2**70
RANGE = "(-9223372036854775808 to 18446744073709551615)"


def exact(record: Any) -> bytes:
    """A record as JSON whose integers are exact whatever their size (orjson refuses to write one beyond 64 bits)."""
    return json.dumps(record, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("kind", "edit", "field"),
    [
        ("session", lambda r: r.update(metadata={"n": BIG}), "session.metadata.n"),
        (
            "checkpoint",
            lambda r: r.update(metadata={"a": [1, {"b c": -(2**63) - 1}]}),
            "checkpoint.metadata.a[1]['b c']",
        ),
        ("episode", lambda r: r["metadata"].update(n=2**64), "episode.metadata.n"),
        ("event", lambda r: r.update(duration_ms=BIG), "event.duration_ms"),
    ],
)
async def test_a_line_with_an_integer_beyond_64_bits_is_refused_naming_it(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path, kind: str, edit: Any, field: str
) -> None:
    _, path = exported
    crafted = resealed(path, tmp_path / "wide.jsonl", lambda recs: edit(first(recs, kind)), dumps=exact)
    assert await refused(runtime, crafted) == (
        f"line {line_of(crafted, kind)} of the export file is not a valid record: {field}: an integer outside the "
        f"64-bit range every store keeps {RANGE}, which no call takes either; nothing was imported"
    )


async def test_the_ends_of_the_range_and_a_working_value_beyond_it_are_imported_exactly(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    project, path = exported

    def edit(recs: Records) -> None:
        first(recs, "session")["metadata"] = {"low": -(2**63), "high": 2**64 - 1}
        first(recs, "working")["value"] = json.dumps({"n": BIG})

    crafted = resealed(path, tmp_path / "ends.jsonl", edit, dumps=exact)
    assert runtime.transfer is not None
    await runtime.transfer.import_file(crafted)
    again = records(await export_to(runtime, Selection(project), tmp_path / "again.jsonl"))
    assert first(again, "session")["metadata"] == {"low": -(2**63), "high": 2**64 - 1}
    working = first(again, "working")
    scope = Scope(project, uuid.UUID(working["agent_instance_id"]), working["session_id"])
    assert await runtime.working.get(scope, working["key"]) == {"n": BIG}
