"""Pause and resume with working memory in Redis run no Python code per key: the state travels packed (one text
from the snapshot script to the durable store's row, one argument from that row to the restore script), so the
number of calls into mcp-memory's own code is the same for 10 keys as for 1,000 (a loop calling a packing or
decoding function per item, or a generator per item, would add a call per key). The round trip keeps every
value exactly, TTLs included, and the content hash is the one the other paths compute."""

from __future__ import annotations

import inspect
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import mcp_memory
from mcp_memory.json_values import encode_value
from mcp_memory.models import Item, Scope, content_hash
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.store import RedisWorkingStore
from tests.conftest import FakeClock, new_scope
from tests.store_settings import settings_for

pytestmark = pytest.mark.anyio

OURS = str(Path(mcp_memory.__file__).parent)
ENCODER = str(Path("redis", "_parsers", "encoders.py"))


async def python_work(action: Callable[[], Awaitable[Any]]) -> Counter[str]:
    """The Python work on this thread while ``action`` runs: calls into mcp_memory's modules and the lines they
    execute (a loop over the items, comprehensions included, runs a line per item), calls of redis-py's argument
    encoder (once per command argument) and of generated code such as a dataclass's ``__init__`` (``Item``), by
    function. A coroutine resumed after an await is not counted: how often a reply arrives in pieces depends on
    the socket, not on our code."""
    counted: Counter[str] = Counter()

    def lines(frame: FrameType, event: str, _arg: object) -> Any:
        if event == "line":
            counted[f"{frame.f_code.co_filename[len(OURS) :]}:{frame.f_code.co_name} lines"] += 1
        return lines

    def calls(frame: FrameType, event: str, _arg: object) -> Any:
        code = frame.f_code
        if code.co_filename.startswith(OURS):
            if not (code.co_flags & inspect.CO_COROUTINE and frame.f_lasti > 0):
                counted[f"{code.co_filename[len(OURS) :]}:{code.co_name}"] += 1
            return lines
        if code.co_filename == "<string>" or code.co_filename.endswith(ENCODER):
            counted[f"{code.co_filename}:{code.co_name}"] += 1
        return None

    sys.settrace(calls)
    try:
        await action()
    finally:
        sys.settrace(None)
    return counted


@pytest.fixture
async def redis_sqlite(tmp_path: Path, clock: FakeClock) -> AsyncIterator[MemoryRuntime]:
    async with redis_runtime("sqlite", tmp_path, clock) as rt:
        yield rt


@pytest.fixture(params=["sqlite", "postgres"])
async def redis_and_records(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[MemoryRuntime]:
    """Working memory in Redis, records in SQLite or in Postgres."""
    async with redis_runtime(request.param, tmp_path, clock) as rt:
        yield rt


@asynccontextmanager
async def redis_runtime(records: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[MemoryRuntime]:
    async with (
        settings_for(f"redis+{records}", tmp_path, max_keys_per_session=5_000) as settings,
        MemoryRuntime(settings, clock=clock) as rt,
    ):
        store = rt.working_store
        assert isinstance(store, RedisWorkingStore)
        store.copy_min_keys = 1  # 10 keys take the pause's copy too: the same path as 1,000
        yield rt


def ids(scope: Scope) -> tuple[str, str, str]:
    return str(scope.project_id), str(scope.agent_instance_id), scope.session_id


async def pause_and_resume_calls(
    rt: MemoryRuntime, clock: FakeClock, keys: int, copy: bool = True
) -> tuple[Counter[str], ...]:
    """The Python work of a pause and of the resume after it: through the pause's copy (stores/redis/copies.py),
    or, without ``copy`` (dropped before the resume), from the checkpoint's text."""
    scope = new_scope()
    state: dict[str, Any] = {f"key-{i:05d}": {"n": i, "text": "v" * 60} for i in range(keys)}
    await rt.lifecycle.spawn(*ids(scope), initial_state=state)
    for i in range(0, keys, 2):  # half of them with a TTL: the packed path carries expiries too
        await rt.working.set(scope, f"key-{i:05d}", state[f"key-{i:05d}"], ttl_seconds=3600)
    await rt.lifecycle.pause(*ids(scope))  # warm-up: scripts loaded, connections open
    await rt.lifecycle.resume(*ids(scope))
    paused = await python_work(lambda: rt.lifecycle.pause(*ids(scope)))
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    if not copy:
        await store.drop_copy(scope)
    resumed = await python_work(lambda: rt.lifecycle.resume(*ids(scope)))
    assert await store.client.exists(store.copy_keys(scope)[2]) == int(copy)  # kept once taken, or dropped
    return paused, resumed


@pytest.mark.parametrize("copy", [True, False], ids=["through the copy", "from the text"])
async def test_pause_and_resume_make_as_many_calls_into_our_code_for_1000_keys_as_for_10(
    redis_sqlite: MemoryRuntime, clock: FakeClock, copy: bool
) -> None:
    small_pause, small_resume = await pause_and_resume_calls(redis_sqlite, clock, 10, copy)
    big_pause, big_resume = await pause_and_resume_calls(redis_sqlite, clock, 1_000, copy)
    # Equal call for call: what differs names the function that runs per key.
    assert big_pause - small_pause == Counter(), big_pause - small_pause
    assert big_resume - small_resume == Counter(), big_resume - small_resume
    # And no per-key work hides in there (a resume from the text also checks which session its checkpoint was read
    # from at its take, restore and record: about 460 lines and calls in all).
    assert sum(big_pause.values()) < 500 and sum(big_resume.values()) < 500


async def test_a_packed_pause_and_resume_keep_values_ttls_and_the_content_hash(
    redis_and_records: MemoryRuntime, clock: FakeClock
) -> None:
    rt = redis_and_records
    scope = new_scope()
    tricky = {
        "json-looking string": '{"a": 1}',
        "quoted": '"already quoted"',
        "escapes": 'tab\there "q" back\\slash / slash \u2028 \x01',
        "unicode": "é ü 😀 𝄞",
        "number": 1.5e300,
        "nested": {"list": [1, "two", None, True, {"x": [[]]}]},
        "empty": {},
        "null": None,
    }
    await rt.lifecycle.spawn(*ids(scope), initial_state=tricky)
    await rt.working.set(scope, "short", "gone soon", ttl_seconds=10)
    await rt.working.set(scope, "long", "stays", ttl_seconds=1000)
    done = await rt.lifecycle.pause(*ids(scope), checkpoint_id="c1")
    checkpoint = await rt.store.get_checkpoint(scope, "c1")
    assert checkpoint is not None
    expected = {key: encode_value(value) for key, value in tricky.items()}
    assert {k: it.value for k, it in checkpoint.items.items() if k not in ("short", "long")} == expected
    assert checkpoint.items["long"].expires_at == clock() + 1000
    digest, size = content_hash(checkpoint.items)
    assert (checkpoint.info.content_hash, checkpoint.info.bytes, checkpoint.info.keys_count) == (digest, size, 10)
    assert done.data["items_saved"] == 10
    # The resume that may take the pause's copy reads the same checkpoint without its state first.
    for below, state in ((10, ""), (11, await rt.store.get_packed_checkpoint(scope, "c1"))):
        described = await rt.store.get_packed_checkpoint(scope, "c1", state_below=below)
        assert described is not None and described.info == checkpoint.info
        assert described.state == (state if isinstance(state, str) else state.state)  # type: ignore[union-attr]

    clock.advance(100)  # "short" expires in the checkpoint: never restored
    store = rt.working_store
    assert isinstance(store, RedisWorkingStore)
    # The first resume takes the pause's copy (the checkpoint's record names the snapshot that made it: round trips
    # show it was taken); the second, the copy dropped, restores the checkpoint's text.
    for copied in (True, False):
        if not copied:
            await store.drop_copy(scope)
        await rt.working.set(scope, "later", 1)
        before = store.round_trips
        await rt.lifecycle.resume(*ids(scope), checkpoint_id="c1")
        assert store.round_trips - before == (1 if copied else 2)
        assert await rt.working.list_keys(scope) == sorted([*tricky, "long"])
        for key, value in tricky.items():
            assert await rt.working.get(scope, key) == value
        item = await rt.working_store.get(scope, "long", clock())
        assert item == Item('"stays"', checkpoint.items["long"].expires_at)
