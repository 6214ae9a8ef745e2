"""A project of edge cases exported from one kind of store and imported into another reads back the same through the
public API: sessions (status, seal, times, metadata, terminate result), working memory (the values' JSON text byte
for byte: unicode, quotes and newlines in keys, 2**63, -0.0, 1e308, deep nesting, empty object and string; each
key's expiry, one about to pass), checkpoints (ids, labels, keep flags, metadata, order, states; two made in the
same instant), events and episodes (vectors included). A second import of the file is ``conflict`` with nothing
changed, an import under ``--as-project`` leaves the original project as it was, and the same calls answer the same
on the copy as on the original. A truncated export, or one with a line in the middle damaged, writes nothing to
either store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
import redis

from mcp_memory.errors import Conflict, InvalidArgument, MemoryServiceError
from mcp_memory.json_values import MAX_JSON_DEPTH
from mcp_memory.models import Scope, iso, to_datetime
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.conftest import FakeClock
from tests.store_settings import settings_for
from tests.transfer_helpers import assert_nothing_written, export_to, nested

pytestmark = pytest.mark.anyio

PAIRS = [
    ("sqlite", "postgres"),
    ("postgres", "sqlite"),
    ("redis+sqlite", "redis+postgres"),
    ("redis+postgres", "sqlite"),
]

WEIRD_KEYS = ["é中文🎉", "quote\"'\\", "new\nline", "tab\there", " lead and trail ", "\u2028sep"]
VALUES: dict[str, Any] = {
    "u64+1": 2**63,
    "past-double": 10**400,
    "u64max": 2**64 - 1,
    "beyond": 10**30,
    "negzero": -0.0,
    "huge": 1e308,
    "tiny": 5e-324,
    "deep": nested(MAX_JSON_DEPTH),
    "empty-object": {},
    "empty-list": [],
    "empty-string": "",
    "null": None,
    "false": False,
    "text": "é\"'\\\n\u2028🎉",
}
# No -0.0 here: Postgres keeps metadata as jsonb, whose numbers have no negative zero (so does a spawn there).
METADATA: dict[str, Any] = {
    "max": 2**63 - 1,
    "min": -(2**63),
    "u64max": 2**64 - 1,
    "huge": 1e308,
    "tiny": 5e-324,
    "half": 0.5,
    "uni": "é中文🎉\n\"'",
    "deep": nested(50),
    "empty": {},
    "emptys": "",
    "list": [1, "two", None, True, {"k": []}],
}


@asynccontextmanager
async def runtime_on(stores: str, where: Path, clock: FakeClock) -> AsyncIterator[MemoryRuntime]:
    await anyio.Path(where).mkdir()
    async with settings_for(stores, where, embedding_provider="hash", embedding_dimension=256) as settings:
        async with MemoryRuntime(settings, clock=clock, embedding_retry=False) as rt:
            yield rt


async def populate(rt: MemoryRuntime, clock: FakeClock, project: uuid.UUID) -> None:
    """Two agents: a running session, a paused one, one terminated with its episode and one that kept its keys;
    and episodes of importance 0, 1 and in between."""
    a, b = uuid.uuid4(), uuid.uuid4()
    lc = rt.lifecycle
    # running: every edge-case key and value, and keys about to expire
    await lc.spawn(project, a, "run.1", agent_type_id=uuid.uuid4(), initial_state=VALUES, metadata=METADATA)
    run = Scope(project, a, "run.1")
    for i, key in enumerate(WEIRD_KEYS):
        await rt.working.set(run, key, {key: i}, ttl_seconds=None if i % 2 else 3600 + i / 7)
    await lc.pause(project, a, "run.1", checkpoint_id="weird", label="\u2028é", metadata={"k": WEIRD_KEYS})
    await lc.resume(project, a, "run.1")
    await rt.working.set(run, "soon", "going", ttl_seconds=0.75)
    await rt.working.set(run, "sooner", "gone by the import", ttl_seconds=0.25)
    # paused: a kept checkpoint, two in the same instant, labels and metadata
    await lc.spawn(project, a, "paused_2", initial_state={"x": 1, "é": "ü"})
    clock.advance(0.001)
    await lc.pause(project, a, "paused_2", checkpoint_id="kept", label="kept: é🎉", metadata=METADATA, keep=True)
    await lc.resume(project, a, "paused_2", checkpoint_id="kept")
    await rt.working.set(Scope(project, a, "paused_2"), "y", VALUES["deep"], ttl_seconds=90)
    clock.advance(0.001)
    await lc.pause(project, a, "paused_2", checkpoint_id="same-1", label="same")
    await lc.resume(project, a, "paused_2")
    await lc.pause(project, a, "paused_2", checkpoint_id="same-2", metadata={"n": -1.5})
    await lc.resume(project, a, "paused_2")
    await lc.pause(project, a, "paused_2")
    # terminated with its episode, and terminated keeping its keys
    await lc.spawn(project, b, "done", initial_state={"k": "v"}, metadata={"m": 1})
    await lc.terminate(
        project, b, "done", task_description="finished é", outcome="partial", lessons_learned=["one", "two é"]
    )
    await lc.spawn(project, b, "kept-keys", initial_state={"k": [1, 2]})
    await lc.terminate(project, b, "kept-keys", outcome="failure", cleanup_working=False, consolidate_to_episodic=False)
    for importance, session in ((0.0, None), (1.0, "run.1"), (0.123456789, "done")):
        await rt.episodic.record_episode(
            project_id=project,
            agent_instance_id=a if session != "done" else b,
            session_id=session,
            task_type="edge é",
            task_description=f'an episode of importance {importance} ✓ "q"\n',
            outcome="success",
            outcome_details="details\u2028",
            lessons_learned=[" x ", "lesson 🎉"] if importance else [],
            importance_score=importance,
            metadata=METADATA,
        )


def canon(value: Any) -> str:
    """A value as canonical JSON text (keys sorted; dataclasses, datetimes and UUIDs as orjson writes them), so
    that -0.0 is not 0.0 and 1.0 is not 1."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Where two canonical structures differ, for a failure that names them."""
    if isinstance(got, dict) and isinstance(want, dict):
        out = []
        for k in sorted(set(got) | set(want), key=str):
            if k not in got or k not in want:
                out.append(f"{path}/{k}: only in {'got' if k in got else 'want'}")
            else:
                out += differences(got[k], want[k], f"{path}/{k}")
        return out
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [d for i, (x, y) in enumerate(zip(got, want, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if canon(got) == canon(want) else [f"{path}: got {str(got)[:200]} want {str(want)[:200]}"]


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    diff = differences(orjson.loads(canon(got)), orjson.loads(canon(want)))
    assert not diff, "\n".join(diff)


async def state_of(rt: MemoryRuntime, project: uuid.UUID) -> dict[str, Any]:
    """Everything the public API reads of ``project`` (but its id): per session its record, its listing, its live
    working memory with expiries, its checkpoints with their states, its events; the episodes; a vector search."""
    out: dict[str, Any] = {}
    listed = await rt.sessions.list_sessions(project, limit=100)
    for row in listed["sessions"]:
        scope = Scope(project, uuid.UUID(row["agent_instance_id"]), row["session_id"])
        items = {k: await rt.working.get_item(scope, k) for k in await rt.working.list_keys(scope)}
        checkpoints = await rt.lifecycle.list_checkpoints(project, scope.agent_instance_id, scope.session_id, 100)
        states = {}
        for cp in checkpoints:
            data = await rt.store.get_checkpoint(scope, cp["checkpoint_id"])
            assert data is not None
            states[cp["checkpoint_id"]] = (data.info.model_dump(), data.items)
        events = await rt.store.list_events(scope, 1000)
        out[f"{scope.agent_instance_id}/{scope.session_id}"] = {
            "info": (await rt.lifecycle.session(scope)).model_dump(exclude={"project_id"}),
            "listed": {k: v for k, v in row.items() if k != "summary"},
            "working": {k: (it.value, it.expires_at) for k, it in items.items()},
            "checkpoints": checkpoints,
            "states": states,
            # Times as the stores all keep them, to the microsecond (SQLite's own floats carry more digits).
            "events": [(e.event_type, iso(to_datetime(e.at)), e.duration_ms, e.outcome, e.detail) for e in events],
        }
    out["episodes"] = [e.model_dump(exclude={"project_id"}) for e in await rt.episodic.recent(project, 100)]
    found = await rt.episodic.search(project, "episode importance", limit=10, mode="vector")
    out["search"] = [(e.episode_id, round(e.score, 6)) for e in found]
    return out


async def answers_to_calls(rt: MemoryRuntime, project: uuid.UUID, sessions: list[str]) -> list[str]:
    """What a write, pause, resume and terminate of each session answer, and its working memory after."""
    out: list[str] = []
    for name in sessions:
        agent, sid = name.split("/")
        scope = Scope(project, uuid.UUID(agent), sid)
        calls: list[Callable[[], Awaitable[object]]] = [
            partial(rt.working.set, scope, "after", 1),
            partial(rt.lifecycle.resume, project, agent, sid),
            partial(rt.lifecycle.pause, project, agent, sid, checkpoint_id="after"),
            partial(rt.lifecycle.resume, project, agent, sid, checkpoint_id="kept"),
            partial(rt.lifecycle.terminate, project, agent, sid),
        ]
        for call in calls:
            try:
                data = getattr(await call(), "data", None) or {}
                out.append(canon({k: v for k, v in data.items() if k not in ("episode_id", "created_at")}))
            except MemoryServiceError as exc:
                out.append(exc.code)
        keys = await rt.working.list_keys(scope)
        out.append(canon({k: (await rt.working.get_item(scope, k)).value for k in keys}))
    return out


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{s}->{t}" for s, t in PAIRS])
async def test_an_edge_case_project_reads_back_the_same_after_export_and_import(
    source: str, target: str, tmp_path: Path
) -> None:
    clock = FakeClock()
    project = uuid.uuid4()
    async with (
        runtime_on(source, tmp_path / "source", clock) as src,
        runtime_on(target, tmp_path / "target", clock) as dst,
    ):
        await populate(src, clock, project)
        path = await export_to(src, Selection(project), tmp_path / "export.jsonl", vectors=True)
        clock.advance(0.5)  # "sooner" has expired since the export, "soon" has a quarter of a second left
        want = await state_of(src, project)
        sessions = sorted(k for k in want if "/" in k)
        live = {name.split("/")[1]: want[name]["working"] for name in sessions}
        assert "soon" in live["run.1"] and "sooner" not in live["run.1"] and set(WEIRD_KEYS) <= set(live["run.1"])
        assert list(live["kept-keys"]) == ["k"]

        assert dst.transfer is not None
        report = await dst.transfer.import_file(path)
        assert report.counts["vectors_dropped"] == 0
        assert_same(await state_of(dst, project), want)

        with pytest.raises(Conflict):
            await dst.transfer.import_file(path)
        assert_same(await state_of(dst, project), want)

        # Under another project (the episodes renamed, as the store holds their ids): the original is untouched.
        other = uuid.uuid4()
        mapped = await dst.transfer.import_file(path, as_project=other)
        assert_same(await state_of(dst, project), want)
        renamed = canon(want)
        for old, new in mapped.renamed_episodes.items():
            renamed = renamed.replace(str(old), str(new))
        # Terminate events keep the id they answered with; sessions and episodes follow the new ids.
        diff = differences(orjson.loads(canon(await state_of(dst, other))), orjson.loads(renamed))
        assert all("/events[" in d and d.split(": ")[0].endswith("/episode_id") for d in diff), "\n".join(diff)

        assert await answers_to_calls(dst, project, sessions) == await answers_to_calls(src, project, sessions)


def damaged(path: Path, tmp_path: Path) -> dict[str, Path]:
    """The export at ``path`` cut off mid-line and at a line's end, and with one line in the middle made not JSON,
    or changed to other valid JSON."""
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    middle = len(lines) // 2
    edited = orjson.loads(lines[middle])
    edited["project_id"] = str(uuid.uuid4()) if "project_id" in edited else edited.get("kind")
    versions = {
        "cut-mid-line": data[: len(data) - len(lines[-1]) - 7],
        "cut-at-a-line": b"".join(lines[:middle]),
        "not-json": b"".join([*lines[:middle], lines[middle][:-10] + b"\n", *lines[middle + 1 :]]),
        "changed": b"".join([*lines[:middle], orjson.dumps(edited) + b"\n", *lines[middle + 1 :]]),
    }
    out = {}
    for name, content in versions.items():
        out[name] = tmp_path / f"{name}.jsonl"
        out[name].write_bytes(content)
    return out


@pytest.mark.parametrize("target", ["sqlite", "redis+postgres"])
async def test_a_truncated_or_damaged_export_writes_nothing_anywhere(target: str, tmp_path: Path) -> None:
    clock = FakeClock()
    project = uuid.uuid4()
    async with runtime_on("sqlite", tmp_path / "source", clock) as src:
        await populate(src, clock, project)
        path = await export_to(src, Selection(project), tmp_path / "export.jsonl", vectors=True)
    async with runtime_on(target, tmp_path / "target", clock) as dst:
        assert dst.transfer is not None
        for bad in damaged(path, tmp_path).values():
            for as_project in (None, uuid.uuid4()):
                with pytest.raises(InvalidArgument):
                    await dst.transfer.import_file(bad, as_project=as_project)
                await assert_nothing_written(dst, project)
                if as_project is not None:
                    await assert_nothing_written(dst, as_project)
        prefix = dst.settings.redis_key_prefix
        if dst.settings.redis_url:
            client = redis.Redis.from_url(dst.settings.redis_url)
            try:
                assert not list(client.scan_iter(match=f"{prefix}:*"))
            finally:
                client.close()
        report = await dst.transfer.import_file(path)  # the file itself imports
        assert report.counts["sessions"] == 4
