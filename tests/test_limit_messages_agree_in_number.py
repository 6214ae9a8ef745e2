"""A refusal built from a configured limit says ``1 key``, never ``1 keys``, whichever store enforces it: a limit
of 1 is where a message that pastes a number before a plural noun shows its seams (``summary.counted``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import TooLarge
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.sql.rules import terminate_in_progress
from mcp_memory.stores.transfer import Selection
from mcp_memory.summary import counted
from tests.conftest import FakeClock
from tests.transfer_helpers import export_to

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

WRONG_PLURAL = re.compile(r"\b1 (live )?(key|byte|second)s\b")


def refusal(exc: pytest.ExceptionInfo[TooLarge]) -> str:
    message = str(exc.value)
    assert not WRONG_PLURAL.search(message), message
    return message


async def test_every_key_limit_refusal_at_a_limit_of_one_says_1_key(
    make_settings: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    ids = (str(project), str(agent))
    # A checkpoint of two keys, written while the limit was 2, for the resume under a limit of 1 below.
    async with MemoryRuntime(make_settings(max_keys_per_session=2), clock=clock) as rt:
        await rt.lifecycle.spawn(*ids, "wide", initial_state={"a": 1, "b": 2})
        await rt.lifecycle.pause(*ids, "wide")
        source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, clock=clock) as src:
        await src.lifecycle.spawn(*ids, "exported", initial_state={"a": 1, "b": 2})
        exported = await export_to(src, Selection(project), tmp_path / "two_keys.jsonl")

    async with MemoryRuntime(make_settings(max_keys_per_session=1), clock=clock) as rt:
        await rt.lifecycle.spawn(*ids, "s1", initial_state={"a": 1})
        with pytest.raises(TooLarge) as full:
            await rt.working.set(Scope(project, agent, "s1"), "b", 2)
        assert "holds 1 key, the limit" in refusal(full)

        await rt.lifecycle.pause(*ids, "s1")
        await rt.working.delete(Scope(project, agent, "s1"), "a")
        await rt.working.set(Scope(project, agent, "s1"), "c", 3)
        with pytest.raises(TooLarge) as overflow:
            await rt.lifecycle.resume(*ids, "s1", clear_current=False)
        assert "would exceed 1 key per session" in refusal(overflow)

        with pytest.raises(TooLarge) as wide:
            await rt.lifecycle.resume(*ids, "wide")
        assert "the limit of 1 key per session" in refusal(wide)

        assert rt.transfer is not None
        with pytest.raises(TooLarge) as imported:
            await rt.transfer.import_file(exported, as_project=uuid.uuid4())
        assert re.search(r"\b1 (live )?key\b", refusal(imported))

        with pytest.raises(TooLarge) as too_many:
            await rt.lifecycle.spawn(*ids, "s2", initial_state={"a": 1, "b": 2})
        assert "initial_state has 2 keys; the limit is 1 key per session" in refusal(too_many)


async def test_byte_and_second_limits_of_one_are_singular_too(
    make_settings: Callable[..., Settings], clock: FakeClock, scope: Scope
) -> None:
    async with MemoryRuntime(make_settings(max_value_bytes=1), clock=clock) as rt:
        await rt.lifecycle.spawn(str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
        with pytest.raises(TooLarge) as big:
            await rt.working.set(scope, "k", "v")
        assert "value is 3 bytes serialised; the limit is 1 byte" in refusal(big)
    assert "lapses within 1 second)" in str(terminate_in_progress(scope, 1.0))
    assert counted(1.5, "second") == "1.5 seconds" and counted(90.0, "second") == "90 seconds"
