"""A session refers only to its own episode, never to another project's. Forgetting a terminated session's episode
leaves the session without one (its record, listing, briefing and export say none), while a repeated terminate still
answers the first call's episode id. A session whose episode its file does not hold is imported referring to none,
even when the store holds an episode of that id in another project; and a session that kept the id of a forgotten
episode (as earlier releases left it) never shows the episode another project took the id for. On every store."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from mcp_memory.models import Scope
from mcp_memory.services.briefing import BriefingRequest, build_briefing
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.queries import SCOPE
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import Records, export_to, records, resealed

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

SECRET = "SECRET plan of project one"


async def terminated(rt: MemoryRuntime, project: uuid.UUID) -> tuple[Scope, uuid.UUID]:
    """A session of ``project`` spawned and terminated with the secret task; its scope and episode."""
    scope = Scope(project, uuid.uuid4(), "s1")
    await rt.lifecycle.spawn(project, scope.agent_instance_id, "s1", initial_state={"k": 1})
    done = await rt.lifecycle.terminate(project, scope.agent_instance_id, "s1", task_description=SECRET)
    return scope, uuid.UUID(done.data["episode_id"])


async def summaries(rt: MemoryRuntime, project: uuid.UUID) -> list[str]:
    return [s["summary"] for s in (await rt.sessions.list_sessions(project))["sessions"]]


async def stored_link(rt: MemoryRuntime, scope: Scope) -> Any:
    """The session row's ``episode_id`` column as stored."""
    async with rt.store._read() as conn:  # type: ignore[attr-defined]
        row = await conn.execute(
            text(f"SELECT episode_id FROM sessions WHERE {SCOPE}"),
            rt.store._dialect.scope_params(scope),  # type: ignore[attr-defined]
        )
        return row.scalar_one()


def session_line(path: Path) -> dict[str, Any]:
    (line,) = [r for r in records(path) if r["kind"] == "session"]
    return line


async def test_a_forgotten_episode_leaves_its_session_terminated_without_one(
    runtime: MemoryRuntime, tmp_path: Path
) -> None:
    rt = runtime
    scope, episode = await terminated(rt, uuid.uuid4())
    await rt.episode_control.forget(scope.project_id, episode_ids=[str(episode)])

    info = await rt.lifecycle.session(scope)
    assert info.status.value == "terminated" and info.episode_id is None
    assert info.terminate_result is not None and info.terminate_result["episode_id"] == str(episode)
    assert await stored_link(rt, scope) is None
    assert await summaries(rt, scope.project_id) == ["terminated without an episode"]
    request = BriefingRequest(scope.project_id, None, scope.agent_instance_id, scope.session_id)
    assert str(episode) not in (await build_briefing(rt, request)).text
    line = session_line(await export_to(rt, Selection(scope.project_id), tmp_path / "after.jsonl"))
    assert line["episode_id"] is None and line["terminate_result"]["episode_id"] == str(episode)

    # terminate stays idempotent: the first call's answer, nothing recorded.
    events = await rt.store.list_events(scope, 100)
    again = await rt.lifecycle.terminate(scope.project_id, scope.agent_instance_id, "s1", task_description="other")
    assert again.data["episode_id"] == str(episode) and again.message == "session was already terminated"
    assert await rt.store.list_events(scope, 100) == events
    assert await rt.store.recent_episodes([scope.project_id], 5) == []


async def test_a_session_never_shows_the_episode_another_project_took_the_id_of(
    runtime: MemoryRuntime, tmp_path: Path
) -> None:
    """Exported before and after its episode was forgotten, then both imported into other projects: the first import
    takes the freed episode id, and the second's session must not show that project's episode."""
    rt = runtime
    assert rt.transfer is not None
    scope, episode = await terminated(rt, uuid.uuid4())
    before = await export_to(rt, Selection(scope.project_id), tmp_path / "before.jsonl")
    await rt.episode_control.forget(scope.project_id, episode_ids=[str(episode)])
    after = await export_to(rt, Selection(scope.project_id), tmp_path / "after.jsonl")
    p3, p4 = uuid.uuid4(), uuid.uuid4()
    report = await rt.transfer.import_file(before, as_project=p3)
    assert report.renamed_episodes == {}  # the freed id is p3's episode now
    await rt.transfer.import_file(after, as_project=p4)

    assert await summaries(rt, p3) == [f"success: {SECRET}"]  # its own episode
    assert await summaries(rt, p4) == ["terminated without an episode"]
    assert (await rt.lifecycle.session(Scope(p4, scope.agent_instance_id, "s1"))).episode_id is None
    assert (await rt.lifecycle.session(Scope(p3, scope.agent_instance_id, "s1"))).episode_id == episode


async def test_an_imported_session_whose_episode_its_file_lacks_refers_to_none(
    runtime: MemoryRuntime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file whose session names an episode it does not hold (forgotten while the export ran, or exported by a
    release that kept a forgotten episode's id) is imported, the session referring to no episode: not to the
    episode the store holds under that id in another project, kept ids or not."""
    rt = runtime
    assert rt.transfer is not None
    scope, episode = await terminated(rt, uuid.uuid4())
    whole = await export_to(rt, Selection(scope.project_id), tmp_path / "whole.jsonl")

    def drop_episode(recs: Records) -> None:
        recs[:] = [r for r in recs if r["kind"] != "episode"]

    lacking = resealed(whole, tmp_path / "lacking.jsonl", drop_episode)
    assert session_line(lacking)["episode_id"] == str(episode)
    # The source project is emptied (the id is free again), and another project takes the id.
    await rt.control.delete_session(scope.project_id, scope.agent_instance_id, "s1", keep_episodes=False)
    other = uuid.uuid4()
    assert (await rt.transfer.import_file(whole, as_project=other)).renamed_episodes == {}

    for as_project in (None, uuid.uuid4()):  # kept ids (into the emptied source project), then mapped
        caplog.clear()
        report = await rt.transfer.import_file(lacking, as_project=as_project)
        project = report.project_id
        into = Scope(project, scope.agent_instance_id, "s1")
        info = await rt.lifecycle.session(into)
        assert info.episode_id is None and await stored_link(rt, into) is None
        assert info.terminate_result is not None and info.terminate_result["episode_id"] == str(episode)
        assert await summaries(rt, project) == ["terminated without an episode"]
        assert "imported 1 session whose episode the export file does not hold" in caplog.text
    assert (await rt.lifecycle.session(Scope(other, scope.agent_instance_id, "s1"))).episode_id == episode


async def test_a_session_that_kept_a_forgotten_episodes_id_does_not_show_the_episode_now_under_it(
    runtime: MemoryRuntime, tmp_path: Path
) -> None:
    """A session row whose episode was forgotten by an earlier release still carries the id; once another
    project's import holds that id, neither the record, the listing, the briefing nor an export shows it."""
    rt = runtime
    assert rt.transfer is not None
    scope, episode = await terminated(rt, uuid.uuid4())
    whole = await export_to(rt, Selection(scope.project_id), tmp_path / "whole.jsonl")
    await rt.episode_control.forget(scope.project_id, episode_ids=[str(episode)])
    async with rt.store._write() as conn:  # type: ignore[attr-defined]
        await conn.execute(
            text(f"UPDATE sessions SET episode_id = :e WHERE {SCOPE}"),
            {
                "e": rt.store._dialect.write_uuid(episode),  # type: ignore[attr-defined]
                **rt.store._dialect.scope_params(scope),  # type: ignore[attr-defined]
            },
        )
    assert (await rt.transfer.import_file(whole, as_project=uuid.uuid4())).renamed_episodes == {}  # the freed id

    assert (await rt.lifecycle.session(scope)).episode_id is None
    assert await summaries(rt, scope.project_id) == ["terminated without an episode"]
    request = BriefingRequest(scope.project_id, None, scope.agent_instance_id, scope.session_id)
    assert str(episode) not in (await build_briefing(rt, request)).text
    line = session_line(await export_to(rt, Selection(scope.project_id), tmp_path / "again.jsonl"))
    assert line["episode_id"] is None


async def test_an_imported_session_never_refers_to_an_episode_of_its_project_that_its_file_lacks(
    runtime: MemoryRuntime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file whose session names an episode it does not hold, one the project it lands in holds (another agent's,
    unrelated), is imported with the session referring to none, mapped or with kept ids: the import kept the link
    whenever the target project held an episode of that id."""
    rt = runtime
    assert rt.transfer is not None
    scope, _ = await terminated(rt, uuid.uuid4())
    project = scope.project_id
    unrelated = await rt.episodic.record_episode(
        project_id=project, agent_instance_id=uuid.uuid4(), task_type="t", task_description="another", outcome="failure"
    )
    one_session = await export_to(rt, Selection(project, scope.agent_instance_id, "s1"), tmp_path / "s1.jsonl")

    def name_the_unrelated_episode(recs: Records) -> None:
        recs[:] = [r for r in recs if r["kind"] != "episode"]
        line = next(r for r in recs if r["kind"] == "session")
        line["episode_id"] = line["terminate_result"]["episode_id"] = str(unrelated.episode_id)

    crafted = resealed(one_session, tmp_path / "crafted.jsonl", name_the_unrelated_episode)
    await rt.control.delete_session(project, scope.agent_instance_id, "s1", keep_episodes=False)
    for as_project in (project, None):  # mapped into the project that holds the episode, then kept ids
        caplog.clear()
        assert (await rt.transfer.import_file(crafted, as_project=as_project)).project_id == project
        info = await rt.lifecycle.session(scope)
        assert info.episode_id is None and await stored_link(rt, scope) is None
        assert info.terminate_result is not None and info.terminate_result["episode_id"] == str(unrelated.episode_id)
        assert await summaries(rt, project) == ["terminated without an episode"]
        assert "imported 1 session whose episode the export file does not hold" in caplog.text
        await rt.control.delete_session(project, scope.agent_instance_id, "s1")
