"""A forget in project A leaves project B bit-identical: B's export (through the export service, as
``mcp-memory export`` writes it) is the same bytes before and after ``forget_episodes`` by ids, by a filter with
``confirm``, and the operator's ``mcp-memory forget --project A`` (one agent, then all of A), on SQLite,
Redis + SQLite, Postgres and Redis + Postgres.

The two projects share their agent ids, session ids and episode texts, so that a forget that looked at anything but
the project would show. The runtime's clock stands still, so the header's ``created_at`` and each key's
``ttl_remaining`` (both read from it) are the same in both exports and nothing needs leaving out of the comparison."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_memory.cli import main as cli_main
from mcp_memory.config import Settings
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.transfer_helpers import export_to

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

AGENTS = [uuid.uuid4() for _ in range(2)]


async def fill(rt: MemoryRuntime, project: uuid.UUID) -> list[str]:
    """Two agents with two sessions each (keys with and without TTL, checkpoints, one terminated), and episodes;
    the same ids and texts in every project. Returns the recorded episodes' ids."""
    ids: list[str] = []
    for agent in AGENTS:
        for sid in ("s1", "s2"):
            scope = Scope(project, agent, sid)
            await rt.lifecycle.spawn(project, agent, sid, initial_state={"goal": sid}, metadata={"a": 1})
            await rt.working.set(scope, "short", "soon", ttl_seconds=3600)
            for p in range(3):
                await rt.working.set(scope, "step", p)
                await rt.lifecycle.pause(project, agent, sid, label=f"p{p}", keep=p == 0)
        await rt.lifecycle.terminate(project, agent, "s2", task_description="ship the parser release")
        for i in range(6):
            done = await rt.episodic.record_episode(
                project_id=project,
                agent_instance_id=agent,
                session_id="s1" if i % 2 else None,
                task_type=("deploy", "debug")[i % 2],
                task_description=f"rebuild the search index, attempt {i}",
                outcome=("success", "failure", "partial")[i % 3],
                lessons_learned=[f"lesson {i}"],
                importance_score=i / 10,
            )
            ids.append(str(done.episode_id))
    return ids


async def check_forget_leaves_b_bit_identical(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    project_a, project_b = uuid.uuid4(), uuid.uuid4()
    frozen = time.time()
    async with MemoryRuntime(settings, clock=lambda: frozen, embedding_retry=False) as rt:
        episodes_a = await fill(rt, project_a)
        await fill(rt, project_b)
        exports = 0

        async def export_b() -> bytes:
            nonlocal exports
            exports += 1
            path = await export_to(rt, Selection(project_b), tmp_path / f"b-{exports}.jsonl", vectors=True)
            return path.read_bytes()

        before = await export_b()
        assert before.count(b'"kind":"episode"') == 14 and before.count(b'"kind":"working"') > 0
        ctl = rt.episode_control
        assert len((await ctl.forget(project_a, episode_ids=episodes_a[:3])).episode_ids) == 3
        assert await export_b() == before
        preview = await ctl.forget(project_a, outcome="failure")
        assert not preview.episode_ids and preview.would_forget
        assert (await ctl.forget(project_a, confirm=True, outcome="failure")).episode_ids
        assert await export_b() == before
        assert (await ctl.forget(project_a, confirm=True, agent_instance_id=str(AGENTS[1]))).episode_ids
        assert await export_b() == before

        # The operator's CLI, in a thread of its own (it runs its own event loop, as from a shell).
        monkeypatch.setenv("MCP_MEMORY_CONFIG", "")
        monkeypatch.setenv("MCP_MEMORY_DATABASE_URL", settings.database_url)
        if settings.redis_url is not None:
            monkeypatch.setenv("MCP_MEMORY_REDIS_URL", str(settings.redis_url))
            monkeypatch.setenv("MCP_MEMORY_REDIS_KEY_PREFIX", settings.redis_key_prefix)

        async def forget_cli(*args: str) -> dict[str, Any]:
            capsys.readouterr()
            assert await anyio.to_thread.run_sync(cli_main, ["forget", "--project", str(project_a), *args]) == 0
            report: dict[str, Any] = json.loads(capsys.readouterr().out)
            return report

        assert (await forget_cli("--agent", str(AGENTS[0])))["sessions"] == 2
        assert await export_b() == before
        assert (await forget_cli())["sessions"] == 2
        assert await export_b() == before
        assert (await forget_cli("--dry-run"))["sessions"] == 0
        emptied = (await export_to(rt, Selection(project_a), tmp_path / "a.jsonl")).read_bytes()
        assert b'"kind":"session"' not in emptied and b'"kind":"episode"' not in emptied


async def test_a_forget_in_a_leaves_b_bit_identical(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    await check_forget_leaves_b_bit_identical(settings, tmp_path, monkeypatch, capsys)


@pytest.mark.backends("redis")
async def test_a_forget_in_a_leaves_b_bit_identical_on_redis_and_postgres(
    make_settings: Any, postgres_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    settings: Settings = make_settings(database_url=postgres_database_url)
    await check_forget_leaves_b_bit_identical(settings, tmp_path, monkeypatch, capsys)
