"""Import: a truncated file, a tampered line or a newer format version is refused before anything is written; an
import with kept ids into a non-empty scope is ``conflict`` (nothing written); ``--as-project`` moves everything into
another project (clashing episode ids renamed, their sessions following); an export of one agent or one session holds
that scope only; and the ``mcp-memory export`` / ``import`` commands. Targets: SQLite, SQLite + Redis, Postgres."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio
import orjson
import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, TooLarge
from mcp_memory.models import Scope
from mcp_memory.services.export_format import FORMAT_VERSION
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.conftest import FakeClock
from tests.transfer_helpers import (
    Records,
    assert_nothing_written,
    comparable,
    export_to,
    populate,
    records,
    refused,
    resealed,
)

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

SMALL = {"agents": 2, "sessions": 4, "pauses_per_session": 3, "episodes": 12}


@pytest.fixture
async def exported(tmp_path: Path) -> tuple[uuid.UUID, Path]:
    """A small project exported from its own SQLite file."""
    project = uuid.uuid4()
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}", embedding_provider="hash")
    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        await populate(rt, project, **SMALL)
        return project, await export_to(rt, Selection(project), tmp_path / "export.jsonl")


async def test_truncated_file_is_refused_before_anything_is_written(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    _, path = exported
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    cut_mid_line = tmp_path / "cut.jsonl"
    cut_mid_line.write_bytes(data[: len(data) // 2])
    assert "truncated" in await refused(runtime, cut_mid_line)
    no_trailer = tmp_path / "no-trailer.jsonl"
    no_trailer.write_bytes(b"".join(lines[:-1]))
    assert "truncated" in await refused(runtime, no_trailer)
    lost_records = tmp_path / "lost.jsonl"
    lost_records.write_bytes(b"".join(lines[:5] + lines[-1:]))
    assert "truncated or was edited" in await refused(runtime, lost_records)


async def test_tampered_line_is_refused_before_anything_is_written(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    _, path = exported
    lines = path.read_bytes().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if b'"kind":"episode"' in line)
    record = orjson.loads(lines[at])
    record["importance_score"] = 1.0 if record["importance_score"] != 1.0 else 0.0
    lines[at] = orjson.dumps(record) + b"\n"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(b"".join(lines))
    assert "checksum does not match" in await refused(runtime, tampered)
    lines[at] = b'{"kind":"episode","nonsense":true}\n'
    tampered.write_bytes(b"".join(lines))
    assert f"line {at + 1} of the export file is not a valid record" in await refused(runtime, tampered)


async def test_newer_format_version_is_refused_with_a_clear_message(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    _, path = exported
    lines = path.read_bytes().splitlines(keepends=True)
    header = orjson.loads(lines[0])
    header["format_version"] = FORMAT_VERSION + 1
    lines[0] = orjson.dumps(header) + b"\n"
    newer = tmp_path / "newer.jsonl"
    newer.write_bytes(b"".join(lines))
    message = await refused(runtime, newer)
    assert f"format version {FORMAT_VERSION + 1}, newer than this mcp-memory reads ({FORMAT_VERSION})" in message


async def test_kept_ids_into_a_non_empty_scope_is_conflict_and_writes_nothing(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    project, path = exported
    assert runtime.transfer is not None
    await runtime.lifecycle.spawn(project, uuid.uuid4(), "already-here")
    before = comparable(await export_to(runtime, Selection(project), tmp_path / "before.jsonl"))[0]
    with pytest.raises(Conflict):
        await runtime.transfer.import_file(path)
    assert comparable(await export_to(runtime, Selection(project), tmp_path / "after.jsonl"))[0] == before


async def test_import_into_an_empty_scope_keeps_ids_and_a_second_import_is_conflict(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    project, path = exported
    assert runtime.transfer is not None
    report = await runtime.transfer.import_file(path)
    assert report.project_id == project and not report.renamed_episodes
    again = await export_to(runtime, Selection(project), tmp_path / "again.jsonl")
    assert comparable(again)[0] == comparable(path)[0]
    with pytest.raises(Conflict):
        await runtime.transfer.import_file(path)


async def test_as_project_moves_everything_and_renames_clashing_episodes(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    _, path = exported
    assert runtime.transfer is not None
    await runtime.transfer.import_file(path)  # the episode ids are taken in this store now
    other = uuid.uuid4()
    report = await runtime.transfer.import_file(path, as_project=other)
    assert report.project_id == other and len(report.renamed_episodes) == SMALL["episodes"]
    moved = comparable(await export_to(runtime, Selection(other), tmp_path / "moved.jsonl"))[0]
    renames = {str(k): str(v) for k, v in report.renamed_episodes.items()}
    expected = []
    for rec in comparable(path, project=str(other))[0]:
        for field in ("episode_id",):
            if rec.get(field) in renames:
                rec[field] = renames[rec[field]]
        if rec["kind"] == "session" and rec["terminate_result"] and "episode_id" in rec["terminate_result"]:
            rec["terminate_result"]["episode_id"] = renames[rec["terminate_result"]["episode_id"]]
        if rec["kind"] == "event" and rec["detail"].get("episode_id") in renames:  # a terminate's
            rec["detail"]["episode_id"] = renames[rec["detail"]["episode_id"]]
        expected.append(rec)
    assert moved == expected
    # Searching the new project finds its own (renamed) episodes only.
    found = await runtime.episodic.search(other, "deploy rollback", limit=20)
    assert found and {str(e.episode_id) for e in found} <= set(renames.values())
    # A third import into the same project: its sessions exist there now.
    with pytest.raises(Conflict):
        await runtime.transfer.import_file(path, as_project=other)


async def test_export_of_one_agent_and_of_one_session_holds_that_scope_only(
    runtime: MemoryRuntime, tmp_path: Path
) -> None:
    project = uuid.uuid4()
    sessions = await populate(runtime, project, **SMALL)
    agent, sid = sessions[1]
    for sel in (Selection(project, agent), Selection(project, agent, sid)):
        path = await export_to(runtime, sel, tmp_path / "part.jsonl")
        recs = records(path)
        body = recs[1:-1]
        assert body and all(r["agent_instance_id"] == str(agent) for r in body)
        if sel.session_id is not None:
            assert all(r["session_id"] == sid for r in body)
            assert recs[0]["counts"]["sessions"] == 1
        assert recs[-1]["counts"] == recs[0]["counts"]
        # It imports into another store as it is.
        fresh = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / f'{uuid.uuid4()}.db'}")
        async with MemoryRuntime(fresh, embedding_retry=False) as other:
            assert other.transfer is not None
            await other.transfer.import_file(path)
            assert comparable(await export_to(other, sel, tmp_path / "back.jsonl"))[0] == comparable(path)[0]


@pytest.mark.backends("sqlite")
async def test_export_and_import_commands(exported: tuple[uuid.UUID, Path], tmp_path: Path) -> None:
    project, path = exported
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env["MCP_MEMORY_CONFIG"] = ""
    env["MCP_MEMORY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    cli = [sys.executable, "-m", "mcp_memory.cli"]
    done = await anyio.run_process([*cli, "import", str(path)], env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert orjson.loads(done.stdout)["counts"]["episodes"] == SMALL["episodes"]
    again = await anyio.run_process([*cli, "import", str(path)], env=env, check=False)
    assert again.returncode == 1 and again.stderr.decode().startswith("mcp-memory: conflict:")
    out = await anyio.run_process([*cli, "export", "--project", str(project)], env=env, check=False)
    assert out.returncode == 0, out.stderr.decode()
    stdout_file = tmp_path / "stdout.jsonl"
    stdout_file.write_bytes(out.stdout)
    assert comparable(stdout_file)[0] == comparable(path)[0]
    target = tmp_path / "out.jsonl"
    to_file = await anyio.run_process(
        [*cli, "export", "--project", str(project), "--output", str(target)], env=env, check=False
    )
    assert to_file.returncode == 0 and to_file.stdout == b"" and comparable(target)[0] == comparable(path)[0]
    bad = await anyio.run_process([*cli, "export", "--project", "nope"], env=env, check=False)
    assert bad.returncode == 1 and bad.stderr.decode().startswith("mcp-memory: invalid_argument:")


async def test_a_resealed_file_with_a_value_no_store_can_hold_is_refused(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """Records are checked one by one too, not only the checksum: a file edited and given a fresh checksum still
    cannot carry what ``memory_set`` would refuse."""
    _, path = exported
    at = next(i for i, rec in enumerate(records(path)) if rec["kind"] == "working")
    for bad in ("{not json", '"a\\u0000b"'):

        def edit(recs: Records, bad: str = bad) -> None:
            recs[at]["value"] = bad

        crafted = resealed(path, tmp_path / "crafted.jsonl", edit)
        assert f"line {at + 1} of the export file is not a valid record: working.value: Value error" in await refused(
            runtime, crafted
        )


async def test_a_session_over_the_key_limit_is_refused_whole_on_every_store(
    make_settings: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    """A session whose live working keys exceed ``max_keys_per_session`` where it lands is ``too_large`` and nothing
    of the file is imported, whichever store holds working memory (keys whose TTL has passed do not count)."""
    project, agent = uuid.uuid4(), uuid.uuid4()
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'wide.db'}")
    async with MemoryRuntime(source, clock=clock) as rt:
        await rt.lifecycle.spawn(project, agent, "wide", initial_state={f"k{i}": i for i in range(5)})
        await rt.working.set(Scope(project, agent, "wide"), "brief", 1, ttl_seconds=1)
        path = await export_to(rt, Selection(project), tmp_path / "wide.jsonl")
    clock.advance(2)  # "brief" has expired by the import: five live keys
    async with MemoryRuntime(make_settings(max_keys_per_session=4), clock=clock) as rt:
        assert rt.transfer is not None
        with pytest.raises(TooLarge, match="limit"):
            await rt.transfer.import_file(path)
        await assert_nothing_written(rt, project)
    async with MemoryRuntime(make_settings(max_keys_per_session=5), clock=clock) as rt:
        assert rt.transfer is not None
        await rt.transfer.import_file(path)
        assert sorted(await rt.working.list_keys(Scope(project, agent, "wide"))) == [f"k{i}" for i in range(5)]


async def test_keys_and_values_past_this_servers_limits_are_refused_whole(
    make_settings: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    """A file made by a server with larger limits, in working memory or in a checkpoint, is ``too_large`` naming the
    line where it lands (it was imported, leaving keys that memory_delete refused as too long, and that a resume
    restored); an expiry past the longest TTL is ``invalid_argument`` (Redis failed on it as ``internal``)."""
    project, agent = uuid.uuid4(), uuid.uuid4()
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'wide.db'}")
    files: dict[str, Path] = {}
    async with MemoryRuntime(source, clock=clock) as rt:
        for name, state in (("long_key", {"k" * 40: 1}), ("big_value", {"k": "v" * 500})):
            sel = Scope(project, agent, name)
            await rt.lifecycle.spawn(project, agent, name, initial_state=state)
            if name == "big_value":  # in a checkpoint only: working memory is cleared
                await rt.lifecycle.pause(project, agent, name)
                await rt.working.delete(sel, "k")
            files[name] = await export_to(rt, Selection(project, agent, name), tmp_path / f"{name}.jsonl")
        await rt.lifecycle.spawn(project, agent, "s", initial_state={"k": 1})
        files["expiry"] = await export_to(rt, Selection(project, agent, "s"), tmp_path / "s.jsonl")
    at = next(i for i, rec in enumerate(records(files["expiry"])) if rec["kind"] == "working")

    def far_expiry(recs: Records) -> None:
        recs[at]["expires_at"], recs[at]["ttl_remaining"] = 1e15, 1e15

    resealed(files["expiry"], files["expiry"], far_expiry)

    async with MemoryRuntime(make_settings(max_key_length=16, max_value_bytes=100), clock=clock) as rt:
        assert rt.transfer is not None
        with pytest.raises(TooLarge, match=r"line \d+: key 'k{40}' is 40 characters long.*max_key_length"):
            await rt.transfer.import_file(files["long_key"])
        with pytest.raises(TooLarge, match=r"line \d+ \(checkpoint '.*'\): the value of key 'k' is 502 bytes"):
            await rt.transfer.import_file(files["big_value"])
        assert f"line {at + 1}: key 'k' expires at 1000000000000000.0, past the longest TTL" in await refused(
            rt, files["expiry"]
        )
        await assert_nothing_written(rt, project)


async def test_a_resealed_file_listing_a_key_or_an_episode_twice_is_refused_naming_the_line(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """A file edited to list a working key or an episode twice, given fresh counts and checksum, is
    ``invalid_argument`` naming the second line (it failed inside the import's transaction, as ``internal``)."""
    _, path = exported
    for kind, what in (("working", "working key"), ("episode", "episode")):
        at = next(i for i, rec in enumerate(records(path)) if rec["kind"] == kind)

        def twice(recs: Records, at: int = at) -> None:
            recs.insert(at + 1, recs[at])

        crafted = resealed(path, tmp_path / "twice.jsonl", twice)
        message = await refused(runtime, crafted)
        assert message.startswith(f"line {at + 2}: {what}") and "listed twice" in message, message


async def test_a_resealed_file_whose_session_keys_are_apart_is_refused_naming_the_line(
    runtime: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """A session's working lines come together: a file edited to put another session's key between them, given a
    fresh checksum, is ``invalid_argument`` naming the line (into Redis the import staged that session twice, and
    the switch kept only the second group, losing the first's keys)."""
    _, path = exported
    recs = records(path)
    working = [i for i, rec in enumerate(recs) if rec["kind"] == "working"]
    other = next(i for i in working if recs[i]["session_id"] != recs[working[0]]["session_id"])

    def apart(recs: Records) -> None:
        # Just after the other session's first key (one line up, as one was taken out).
        recs.insert(other, recs.pop(working[0]))

    crafted = resealed(path, tmp_path / "apart.jsonl", apart)
    message = await refused(runtime, crafted)
    assert message.startswith(f"line {other + 1}: working key") and "apart from the session's other" in message, message


async def test_a_header_naming_a_session_without_its_agent_holds_that_session_id_only(
    runtime: MemoryRuntime, tmp_path: Path
) -> None:
    """A header whose scope has a session_id but no agent_instance_id (``mcp-memory export --session S`` without
    ``--agent``) scopes the file to the sessions of that id under every agent: a file of that scope imports, and one
    holding a record of another session id is ``invalid_argument`` naming its line, nothing written."""
    project = uuid.uuid4()
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    async with MemoryRuntime(settings, embedding_retry=False) as source:
        agent, sid = (await populate(source, project, **SMALL))[0]
        path = await export_to(source, Selection(project, agent, sid), tmp_path / "one-session.jsonl")
        whole = await export_to(source, Selection(project), tmp_path / "whole.jsonl")

    def no_agent(recs: Records) -> None:
        recs[0]["scope"]["agent_instance_id"] = None
        recs[0]["scope"]["session_id"] = sid

    wider = resealed(whole, tmp_path / "wider.jsonl", no_agent)
    stray = next(i for i, rec in enumerate(records(wider), start=1) if rec.get("session_id") not in (sid, None))
    message = await refused(runtime, wider)
    assert message.startswith(f"line {stray}: a record of session"), message
    assert runtime.transfer is not None
    await runtime.transfer.import_file(resealed(path, tmp_path / "no-agent.jsonl", no_agent))
    back = await export_to(runtime, Selection(project, None, sid), tmp_path / "back.jsonl")
    assert comparable(back)[0][1:] == comparable(path)[0][1:]
