"""A mapped import (``--as-project P``) renames an episode whose id another project holds, and the session that
refers to it follows (its ``episode_id``, its terminate result's). Its events followed it not: the terminate event's
detail, and an edit's (``update_episode``), still named the old id, an episode of another project (or none), so an
operator following the event from P did not find the episode. On every store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection, renamed_episode_id
from tests.transfer_helpers import Records, export_to, resealed

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


def episodes_first(recs: Records) -> None:
    """The file's episodes moved before its sessions (after the header): a file the import takes in any order."""
    episodes = [r for r in recs if r["kind"] == "episode"]
    recs[1:] = episodes + [r for r in recs[1:] if r["kind"] != "episode"]


@pytest.mark.parametrize("reordered", [False, True], ids=["as-exported", "episodes-first"])
async def test_the_events_naming_a_renamed_episode_name_its_new_id(
    runtime: MemoryRuntime, tmp_path: Path, reordered: bool
) -> None:
    rt = runtime
    assert rt.transfer is not None
    source, agent = uuid.uuid4(), uuid.uuid4()
    await rt.lifecycle.spawn(source, agent, "s1", initial_state={"a": 1})
    ended = await rt.lifecycle.terminate(source, agent, "s1", task_description="the task")
    old = uuid.UUID(ended.data["episode_id"])
    await rt.episode_control.update(source, old, lessons_learned=["edited before the export"])
    path = await export_to(rt, Selection(source), tmp_path / "source.jsonl")
    if reordered:
        path = resealed(path, tmp_path / "reordered.jsonl", episodes_first)

    target = uuid.uuid4()
    report = await rt.transfer.import_file(path, as_project=target)
    new = renamed_episode_id(target, old)  # the source project still holds the old id
    assert report.renamed_episodes == {old: new}
    events = await rt.store.list_events(Scope(target, agent, "s1"), 100)
    naming = {e.event_type: e.detail.get("episode_id") for e in events if "episode_id" in e.detail}
    assert naming == {"terminate": str(new), "update_episode": str(new)}
    episode = await rt.episodic.get(target, naming["terminate"])
    assert episode.lessons_learned == ["edited before the export"]
    # The source's own events still name its own episode.
    source_events = await rt.store.list_events(Scope(source, agent, "s1"), 100)
    assert {e.detail.get("episode_id") for e in source_events if "episode_id" in e.detail} == {str(old)}
