"""After a change of embedding model or dimension, the stored vectors are of the old one and vector search ignores
them: ``mcp-memory doctor`` counts them and warns with the command that re-embeds them (``reembed --all``), and
counts without reading the episodes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_memory.cli import main
from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.sqlite.store import SqliteStore


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


@pytest.fixture
def hash_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("MCP_MEMORY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MCP_MEMORY_CONFIG", "")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("MCP_MEMORY_DATABASE_URL", db_url)
    monkeypatch.setenv("MCP_MEMORY_EMBEDDING_PROVIDER", "hash")
    return monkeypatch


async def _record_with_hash_64(db_url: str) -> None:
    project = uuid.uuid4()
    async with MemoryRuntime(Settings(database_url=db_url, embedding_provider="hash", embedding_dimension=64)) as rt:
        for i in range(3):
            await rt.episodic.record_episode(
                project_id=project,
                agent_instance_id=uuid.uuid4(),
                task_type="deploy",
                task_description=f"deploy the billing service {i}",
                outcome="success",
            )


def test_doctor_counts_vectors_of_the_old_dimension_and_names_reembed_all(
    hash_env: pytest.MonkeyPatch, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    anyio.run(_record_with_hash_64, db_url)

    async def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("doctor read the episodes to count them")

    hash_env.setenv("MCP_MEMORY_EMBEDDING_DIMENSION", "128")
    with monkeypatch.context() as m:
        m.setattr(SqliteStore, "episodes_missing_embedding", never)
        code, out = _cli("doctor")
    report = json.loads(out)
    assert report["episodes_without_vector"] == 0 and report["episodes_of_another_model"] == 3
    assert "`mcp-memory reembed --all`" in report["embedding_warning"]
    assert "3 episodes" in report["embedding_warning"] and "hash-128" in report["embedding_warning"]
    assert code == 0 and report["ok"] is True, out  # a warning: every tool works, full-text search finds them

    assert _cli("reembed", "--all")[0] == 0
    code, out = _cli("doctor")
    report = json.loads(out)
    assert report["episodes_of_another_model"] == 0 and "embedding_warning" not in report
