"""An integer beyond 64 bits is ``invalid_argument`` in metadata on every store, and kept exactly in working memory.

Metadata is stored as JSON by the stores and written by export with orjson, which holds integers from -2**63 to
2**64 - 1 only: a larger one once made SQLite store what export could then not write (the project could never be
exported again) and Postgres answer ``internal``. Now every call taking metadata refuses it before anything is
written, naming where it is, and the range's ends are taken. A working-memory value is kept as its JSON text, so
2**70 there works end to end on every store: set, get, pause, resume, terminate's consolidation, export, import.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.refused_calls import EPISODES_URI, SESSION_URI, Args, assert_as_it_was, episode, running_session, scoped
from tests.test_string_arguments_round_trip import Ids, call, ok, read
from tests.transfer_helpers import export_to, records

pytestmark = pytest.mark.anyio

BIG = 2**70


CASES: dict[str, tuple[str, Args, str]] = {
    "pause": ("pause", scoped(metadata={"n": BIG}), "metadata.n"),
    "pause, nested": ("pause", scoped(metadata={"a": [1, {"b c": -BIG}]}), 'metadata.a[1]["b c"]'),
    "pause, one past unsigned 64 bits": ("pause", scoped(metadata={"n": 2**64}), "metadata.n"),
    "pause, one below signed 64 bits": ("pause", scoped(metadata={"n": [-(2**63) - 1]}), "metadata.n[0]"),
    "resume": ("resume", scoped(metadata={"n": BIG}), "metadata.n"),
    "terminate": ("terminate", scoped(metadata={"n": BIG}), "metadata.n"),
    "record_episode": ("record_episode", episode(metadata={"n": BIG}), "metadata.n"),
}
"""Calls on a running session (working memory {"k": "v"}, one checkpoint) that must change nothing; each with
the path its error must name."""


def refusal(code: str | None, text: Any, path: str) -> str | None:
    """None if the answer is invalid_argument naming ``path`` and the range; else what was answered."""
    if code == "invalid_argument" and f"{path} is an integer outside the 64-bit range" in text:
        return None
    return f"{code}: {text}"


async def test_metadata_with_an_integer_beyond_64_bits_is_invalid_argument_and_writes_nothing(
    settings_on_every_store: Settings,
) -> None:
    failures: list[str] = []
    async with Client(create_server(settings_on_every_store)) as c:
        ids = Ids()
        answer = refusal(*await call(c, "spawn", ids.scope(metadata={"n": BIG})), "metadata.n")
        if answer is not None:
            failures.append(f"spawn: {answer}")
        await ok(c, "spawn", **ids.scope())  # no session was made: spawning it now succeeds
        for case, (tool, args, path) in CASES.items():
            ids = Ids()
            checkpoint = await running_session(c, ids)
            answer = refusal(*await call(c, tool, args(ids)), path)
            if answer is not None:
                failures.append(f"{case}: {answer}")
                continue
            await assert_as_it_was(c, ids, checkpoint, case)
        ids = Ids()
        episode_id = (await ok(c, "record_episode", **episode(metadata={"n": 1})(ids)))["episode_id"]
        edit = {"project_id": ids.p, "episode_id": episode_id, "metadata": {"n": BIG}}
        answer = refusal(*await call(c, "update_episode", edit), "metadata.n")
        if answer is not None:
            failures.append(f"update_episode: {answer}")
        body = await read(c, EPISODES_URI.format(p=ids.p) + f"/{episode_id}")
        assert body["metadata"] == {"n": 1}
    assert not failures, "\n".join(failures)


async def test_the_ends_of_the_64_bit_range_are_kept_in_metadata(settings_on_every_store: Settings) -> None:
    ends = {"max": 2**64 - 1, "min": -(2**63)}
    async with Client(create_server(settings_on_every_store)) as c:
        ids = Ids()
        await ok(c, "spawn", **ids.scope(metadata=ends))
        checkpoint_id = (await ok(c, "pause", **ids.scope(metadata=ends)))["checkpoint_id"]
        checkpoint = await read(c, SESSION_URI.format(p=ids.p, a=ids.a, s=ids.s) + f"/checkpoints/{checkpoint_id}")
        assert checkpoint["metadata"] == ends
        episode_id = (await ok(c, "record_episode", **episode(metadata=ends)(ids)))["episode_id"]
        assert (await read(c, EPISODES_URI.format(p=ids.p) + f"/{episode_id}"))["metadata"] == ends


async def test_the_python_api_refuses_metadata_beyond_64_bits_too(settings_on_every_store: Settings) -> None:
    from mcp_memory.errors import InvalidArgument

    project, agent = uuid.uuid4(), uuid.uuid4()
    async with MemoryRuntime(settings_on_every_store, embedding_retry=False) as rt:
        with pytest.raises(InvalidArgument, match=r"metadata\.n is an integer outside"):
            await rt.lifecycle.spawn(project, agent, "s1", metadata={"n": BIG})
        with pytest.raises(InvalidArgument, match=r"metadata\.n is an integer outside"):
            await rt.episodic.record_episode(
                project_id=project,
                agent_instance_id=agent,
                task_type="t",
                task_description="d",
                outcome="success",
                metadata={"n": BIG},
            )


async def test_a_working_memory_value_beyond_64_bits_works_end_to_end(
    settings_on_every_store: Settings, tmp_path: Path
) -> None:
    value = {"x": [BIG, -BIG, 2**64]}
    async with Client(create_server(settings_on_every_store)) as c:
        ids = Ids()
        await ok(c, "spawn", **ids.scope(initial_state={"i": BIG}))
        await ok(c, "memory_set", **ids.scope(key="k", value=value))
        assert (await ok(c, "memory_get", **ids.scope(key="k")))["value"] == value
        await ok(c, "pause", **ids.scope(checkpoint_id="c1"))
        await ok(c, "memory_set", **ids.scope(key="k", value="changed"))
        await ok(c, "resume", **ids.scope(checkpoint_id="c1"))
        session = await read(c, SESSION_URI.format(p=ids.p, a=ids.a, s=ids.s))
        assert session["working_memory"] == {"i": BIG, "k": value}
        ended = await ok(c, "terminate", **ids.scope(cleanup_working=False))
        assert ended["state_items_consolidated"] == 2
        body = await read(c, EPISODES_URI.format(p=ids.p) + f"/{ended['episode_id']}")
        assert f"- i: {BIG}" in body["context_summary"]
    project, agent = uuid.UUID(ids.p), uuid.UUID(ids.a)
    async with MemoryRuntime(settings_on_every_store, embedding_retry=False) as rt:
        assert rt.transfer is not None
        path = await export_to(rt, Selection(project), tmp_path / "export.jsonl")
        working = {r["key"]: r["value"] for r in records(path) if r["kind"] == "working"}
        assert json.loads(working["k"]) == value
        copy = uuid.uuid4()
        await rt.transfer.import_file(path, as_project=copy)
        assert await rt.working.state(Scope(copy, agent, "s1")) == {"i": BIG, "k": value}
        restored = await rt.store.get_checkpoint(Scope(copy, agent, "s1"), "c1")
        assert restored is not None and restored.state() == {"i": BIG, "k": value}
