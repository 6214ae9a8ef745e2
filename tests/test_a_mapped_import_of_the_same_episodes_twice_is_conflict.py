"""An import with ``--as-project P`` never brings in the same episode twice: an episode of the file that P holds
already, under its own id or under the id an earlier import into P renamed it to, is ``conflict`` and nothing is
written. A file of episodes alone has no session to collide on, and each import of it gave every episode whose id
the store held a fresh random UUID, so importing it twice doubled the project's episodes. On every store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mcp_memory.errors import Conflict
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to, records

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]


async def episode_ids(rt: MemoryRuntime, project: uuid.UUID, path: Path) -> list[str]:
    """The ids of the episodes ``project`` holds (read through an export written to ``path``)."""
    return sorted(
        r["episode_id"] for r in records(await export_to(rt, Selection(project), path)) if r["kind"] == "episode"
    )


async def test_a_second_import_of_an_episodes_only_file_into_the_same_project_is_conflict(
    runtime: MemoryRuntime, tmp_path: Path
) -> None:
    rt = runtime
    assert rt.transfer is not None
    source, agent = uuid.uuid4(), uuid.uuid4()
    recorded = [
        await rt.episodic.record_episode(
            project_id=source, agent_instance_id=agent, task_type="t", task_description=f"task {n}", outcome="success"
        )
        for n in range(2)
    ]
    first, second = (e.episode_id for e in recorded)
    path = await export_to(rt, Selection(source), tmp_path / "episodes.jsonl")
    assert {r["kind"] for r in records(path)} == {"header", "episode", "trailer"}

    # The source holds both ids: both are renamed into Q, and the file again into Q finds them there.
    q = uuid.uuid4()
    report = await rt.transfer.import_file(path, as_project=q)
    assert set(report.renamed_episodes) == {first, second}
    in_q = await episode_ids(rt, q, tmp_path / "q.jsonl")
    assert in_q == sorted(str(new) for new in report.renamed_episodes.values())
    with pytest.raises(Conflict, match="nothing was imported"):
        await rt.transfer.import_file(path, as_project=q)
    assert await episode_ids(rt, q, tmp_path / "q.jsonl") == in_q
    # Once the source forgets an episode its id is free, yet Q holds that episode under the id it was renamed to.
    await rt.episode_control.forget(source, episode_ids=[str(first)])
    with pytest.raises(Conflict, match="nothing was imported"):
        await rt.transfer.import_file(path, as_project=q)
    assert await episode_ids(rt, q, tmp_path / "q.jsonl") == in_q

    # Into R: the free id is kept, the held one renamed, and a second import finds both in R.
    r = uuid.uuid4()
    report = await rt.transfer.import_file(path, as_project=r)
    assert set(report.renamed_episodes) == {second}
    in_r = await episode_ids(rt, r, tmp_path / "r.jsonl")
    assert in_r == sorted([str(first), str(report.renamed_episodes[second])])
    with pytest.raises(Conflict, match="nothing was imported"):
        await rt.transfer.import_file(path, as_project=r)
    assert await episode_ids(rt, r, tmp_path / "r.jsonl") == in_r
