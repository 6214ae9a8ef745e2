"""A working-memory value keeps any integer (``memory_set`` writes it with Python's json), and so does its export:
an integer too large for a double (309 digits or more, which orjson refuses to read) in a live key and in a
checkpoint's state does not make the file unimportable; it reads back the same on another kind of store. A value no
call could have written (NaN, nested past the limit) is still refused."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from mcp_memory.json_values import MAX_JSON_DEPTH
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.store_settings import settings_for
from tests.transfer_helpers import export_to, first, line_of, nested, refused, resealed

pytestmark = pytest.mark.anyio

HUGE = {"up": 10**400, "down": [-(10**308)], "text": "10" * 200}


@pytest.mark.parametrize(("source", "target"), [("sqlite", "redis+postgres"), ("postgres", "sqlite")])
async def test_an_integer_past_a_double_in_working_memory_and_a_checkpoint_imports_as_it_was(
    source: str, target: str, tmp_path: Path
) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    scope = Scope(project, agent, "s")
    (tmp_path / "source").mkdir()
    (tmp_path / "target").mkdir()
    async with settings_for(source, tmp_path / "source") as settings, MemoryRuntime(settings) as src:
        await src.lifecycle.spawn(project, agent, "s", initial_state={"huge": HUGE})
        await src.lifecycle.pause(project, agent, "s", checkpoint_id="c1")
        await src.working.set(scope, "later", 10**309)
        path = await export_to(src, Selection(project), tmp_path / "export.jsonl")
        want = {k: (await src.working.get_item(scope, k)).value for k in await src.working.list_keys(scope)}
    assert want["later"] == "1" + "0" * 309
    async with settings_for(target, tmp_path / "target") as settings, MemoryRuntime(settings) as dst:
        assert dst.transfer is not None
        await dst.transfer.import_file(path)
        got = {k: (await dst.working.get_item(scope, k)).value for k in await dst.working.list_keys(scope)}
        assert got == want
        await dst.lifecycle.resume(project, agent, "s", checkpoint_id="c1")
        assert await dst.working.state(scope) == {"huge": HUGE}


@pytest.mark.parametrize(
    "value",
    ["NaN", "[Infinity]", '{"n": -Infinity}', orjson.dumps(nested(MAX_JSON_DEPTH + 1)).decode(), "1" * 5000],
    ids=["nan", "infinity", "-infinity", "too-deep", "past-python-digits"],
)
async def test_a_working_value_no_call_could_write_is_still_refused(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path, value: str
) -> None:
    # The huge integer makes orjson refuse the value, so the value is read the other way too.
    text = value if value.startswith("1") else f"[{value}, {'1' * 400}]"

    def edit(recs: list[dict[str, object]]) -> None:
        first(recs, "working")["value"] = text

    path = resealed(exported[1], tmp_path / "edited.jsonl", edit)
    message = await refused(runtime, path)
    assert f"line {line_of(path, 'working')} of the export file is not a valid record: working.value" in message
