"""Export and import stream: the memory either holds at its peak stays a fraction of the file's size (the export reads
keyset pages, the import reads the file in batches of lines, twice), so a file many times larger than memory moves
the same way. Measured with tracemalloc on SQLite with a 16 MB project (2,000 episodes of 8 KB)."""

from __future__ import annotations

import tracemalloc
import uuid
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.models import Episode, Outcome, to_datetime
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
