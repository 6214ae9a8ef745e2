"""A mapped import (``--as-project P``) renames an episode whose id another project holds, and the events that name
it follow: a terminate's and an edit's ``detail.episode_id``, and a forget's ``detail.episode_ids`` (the list of the
episodes ``forget_episodes`` removed from that session), which kept the old id, an episode of another project.

A forget's ids are of episodes gone from the source, so an export lacks them; a file holds one only if it was
assembled (here: the episode's line from an export made before the forget spliced into one made after it). An id
the file lacks is not renamed (the import renames the file's episodes only), whatever project holds it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection, renamed_episode_id
from tests.transfer_helpers import Records, export_to, records, resealed

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


@pytest.mark.parametrize("episode_first", [False, True], ids=["episode-after-events", "episode-first"])
async def test_a_forget_event_names_the_renamed_ids_of_the_episodes_it_forgot(
    runtime: MemoryRuntime, tmp_path: Path, episode_first: bool
) -> None:
    rt = runtime
    assert rt.transfer is not None
    source, agent = uuid.uuid4(), uuid.uuid4()
    await rt.lifecycle.spawn(source, agent, "s1", initial_state={"a": 1})
    ended = await rt.lifecycle.terminate(source, agent, "s1", task_description="the task")
    kept = uuid.UUID(ended.data["episode_id"])  # in the assembled file
    lost = (
        await rt.episodic.record_episode(
            project_id=source,
            agent_instance_id=agent,
            session_id="s1",
            task_type="t",
            task_description="another task",
            outcome="success",
        )
    ).episode_id  # not in it
    before = await export_to(rt, Selection(source), tmp_path / "before.jsonl")
    await rt.episode_control.forget(source, episode_ids=[kept, lost])
    after = await export_to(rt, Selection(source), tmp_path / "after.jsonl")
    # Another project holds both ids from now on (the source forgot them: this import keeps them).
    holder = await rt.transfer.import_file(before, as_project=uuid.uuid4())
    assert holder.renamed_episodes == {}
    kept_line = next(r for r in records(before) if r["kind"] == "episode" and r["episode_id"] == str(kept))

    def splice(recs: Records) -> None:
        recs.insert(1, kept_line) if episode_first else recs.append(kept_line)

    assembled = resealed(after, tmp_path / "assembled.jsonl", splice)
    source_forget = next(r for r in records(assembled) if r["kind"] == "event" and r["event_type"] == "forget_episodes")
    assert set(source_forget["detail"]["episode_ids"]) == {str(kept), str(lost)}

    target = uuid.uuid4()
    report = await rt.transfer.import_file(assembled, as_project=target)
    new = renamed_episode_id(target, kept)
    assert report.renamed_episodes == {kept: new}
    events = await rt.store.list_events(Scope(target, agent, "s1"), 100)
    forget = next(e for e in events if e.event_type == "forget_episodes")
    renames = {str(kept): str(new)}
    assert forget.detail["episode_ids"] == [renames.get(i, i) for i in source_forget["detail"]["episode_ids"]]
    assert forget.detail["forgotten"] == 2
    terminate = next(e for e in events if e.event_type == "terminate")
    assert terminate.detail["episode_id"] == str(new)
    assert (await rt.episodic.get(target, new)).task_description == "the task"
