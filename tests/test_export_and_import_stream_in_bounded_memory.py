"""Export and import stream: the memory either holds at its peak stays a fraction of the file's size (the export reads
keyset pages, the import reads the file in batches of lines, twice), so a file many times larger than memory moves
the same way. Measured with tracemalloc on SQLite with a 16 MB project (2,000 episodes of 8 KB)."""

from __future__ import annotations

import tracemalloc
import uuid
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Episode, Outcome, Scope, to_datetime
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio

EPISODES = 2000
BLOB = 8000


async def test_export_and_import_peak_memory_is_a_fraction_of_the_file(tmp_path: Path) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        for n in range(EPISODES):
            await rt.store.add_episode(
                Episode(
                    episode_id=uuid.uuid4(),
                    project_id=project,
                    agent_instance_id=agent,
                    task_type="bulk",
                    task_description=f"bulk episode {n}",
                    outcome=Outcome.SUCCESS,
                    metadata={"blob": f"{n:08d}" * (BLOB // 8)},
                    created_at=to_datetime(1_700_000_000.0 + n),
                ),
                None,
            )
        tracemalloc.start()
        try:
            path = await export_to(rt, Selection(project), tmp_path / "big.jsonl")
            _, export_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    size = path.stat().st_size
    assert size > EPISODES * BLOB
    assert export_peak < size / 3, (export_peak, size)

    target = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'target.db'}")
    async with MemoryRuntime(target, embedding_retry=False) as rt:
        assert rt.transfer is not None
        tracemalloc.start()
        try:
            report = await rt.transfer.import_file(path)
            _, import_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert report.counts["episodes"] == EPISODES
    assert import_peak < size / 3, (import_peak, size)


CHECKPOINTS = 150
STATE = 100_000


async def test_export_holds_a_page_of_checkpoint_states_at_most(tmp_path: Path) -> None:
    """Checkpoints carry their states, so the export reads them 20 at a time, and its counting pass (the header's
    counts) reads none: the peak stays near a page of states, not all of them (fewer than the 200 rows of a page of
    the other kinds)."""
    project, agent = uuid.uuid4(), uuid.uuid4()
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}", checkpoint_retention_count=0)
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(project, agent, "heavy", initial_state={"blob": "x" * STATE})
        for n in range(CHECKPOINTS):
            await rt.working.set(Scope(project, agent, "heavy"), "n", n)
            await rt.lifecycle.pause(project, agent, "heavy")
            await rt.lifecycle.resume(project, agent, "heavy", checkpoint_id=None)
        tracemalloc.start()
        try:
            path = await export_to(rt, Selection(project), tmp_path / "heavy.jsonl")
            _, export_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert path.stat().st_size > CHECKPOINTS * STATE
    # A page of 20 states (each held as read and decoded) and the lines made of them come to some 60 states' worth;
    # the 150 states of one page of the counting pass, to more than 160.
    assert export_peak < 100 * STATE, (export_peak, path.stat().st_size)
