"""The Python API's ``record_episode`` takes a ``context_summary`` (the tool has none) by the rule an import applies
to it: at most 2,000 bytes of UTF-8 (``too_large`` past that) that a store can hold (``invalid_argument`` for a NUL
character, a lone surrogate or a non-string). It took any text, so an episode it wrote could make the export of its
project one that no import would take."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import InvalidArgument, TooLarge
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from mcp_memory.summary import DEFAULT_BUDGET
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio


def settings(path: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{path}", embedding_provider="hash")


async def test_a_context_summary_past_the_import_limit_or_not_storable_is_refused(tmp_path: Path) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    base: dict[str, Any] = {
        "project_id": project,
        "agent_instance_id": agent,
        "task_type": "t",
        "task_description": "d",
        "outcome": "success",
    }
    async with MemoryRuntime(settings(tmp_path / "m.db"), embedding_retry=False) as rt:
        with pytest.raises(TooLarge, match=f"context_summary is {DEFAULT_BUDGET + 1} bytes; the limit is 2000"):
            await rt.episodic.record_episode(**base, context_summary="é" * (DEFAULT_BUDGET // 2) + "a")
        with pytest.raises(InvalidArgument, match="context_summary contains a NUL character"):
            await rt.episodic.record_episode(**base, context_summary="a\x00b")
        with pytest.raises(InvalidArgument, match="context_summary is not valid Unicode text"):
            await rt.episodic.record_episode(**base, context_summary="a\ud800")
        with pytest.raises(InvalidArgument, match="context_summary must be a string"):
            await rt.episodic.record_episode(**base, context_summary=["a"])
        assert await rt.episodic.recent(project) == []


async def test_a_context_summary_at_the_limit_is_recorded_and_imported(tmp_path: Path) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    summary = "é" * (DEFAULT_BUDGET // 2)
    async with MemoryRuntime(settings(tmp_path / "source.db"), embedding_retry=False) as rt:
        episode = await rt.episodic.record_episode(
            project_id=project,
            agent_instance_id=agent,
            task_type="t",
            task_description="d",
            outcome="success",
            context_summary=summary,
        )
        path = await export_to(rt, Selection(project), tmp_path / "export.jsonl")
    async with MemoryRuntime(settings(tmp_path / "target.db"), embedding_retry=False) as rt:
        assert rt.transfer is not None
        await rt.transfer.import_file(path)
        assert (await rt.episodic.get(project, episode.episode_id)).context_summary == summary
