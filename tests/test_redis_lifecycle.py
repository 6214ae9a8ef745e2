"""The lifecycle guarantees of ``test_lifecycle.py``, the MCP sessions of ``test_mcp_session.py`` and
``test_hooks.py`` and the store-independent edge cases, again with working memory in Redis.

Same tests, imported; only the settings differ (``redis_url`` on the shared test Redis, a unique key prefix
whose keys are deleted afterwards). The tests that put a deliberately failing wrapper in front of the SQLite
store test the lifecycle manager, not a store, and are not repeated.
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any

import anyio

from mcp_memory.config import Settings
from mcp_memory.models import Scope, SessionStatus
from mcp_memory.runtime import MemoryRuntime
from mcp_memory.stores.redis import RedisWorkingStore
from tests import test_hooks, test_lifecycle, test_mcp_session
from tests.conftest import new_scope
from tests.redis_servers import _redis_make_settings, _redis_prefix, _redis_settings  # noqa: F401
from tests.test_edge_cases import (  # noqa: F401 - the ones not about SQLite itself
    test_a_session_mid_terminate_says_so,
    test_checkpoint_resource_hides_keys_whose_ttl_passed,
    test_events_carry_duration_and_metadata,
    test_lone_surrogates_are_invalid_arguments,
    test_only_canonical_uuids,
    test_resources_list_pages_do_not_repeat_when_checkpoints_arrive,
    test_seed_style_api,
    test_unknown_tool_arguments_are_refused,
)
from tests.test_hooks import *  # noqa: F403
from tests.test_lifecycle import *  # noqa: F403
from tests.test_mcp_session import *  # noqa: F403

for _module in (test_lifecycle, test_mcp_session, test_hooks):
    for _name, _fn in list(vars(_module).items()):
        if _name.startswith("test_") and {"flaky", "real"} & set(inspect.signature(_fn).parameters):
            globals().pop(_name, None)
# A thousand pauses test the durable store's ids (working memory is empty): not worth 5 s again.
globals().pop("test_thousand_pauses_give_distinct_sortable_ids_listed_newest_first")


def test_runtime_uses_redis(settings: Settings) -> None:
    rt = MemoryRuntime(settings)
    assert isinstance(rt.working_store, RedisWorkingStore)
    assert rt.working_store.durable is rt.store


async def test_a_pause_overtaken_by_a_resume_does_not_mark_the_session_paused(runtime: MemoryRuntime) -> None:
    """On the two-step path a pause snapshots Redis, then records the checkpoint (and status `paused`). A resume
    that ran in between restored and marked the session running: the pause must not then mark it paused (the
    session lock makes the resume wait for the pause)."""
    rt = runtime
    scope = new_scope()
    ids = (str(scope.project_id), str(scope.agent_instance_id), scope.session_id)
    await rt.lifecycle.spawn(*ids, initial_state={"a": 1})
    await rt.lifecycle.pause(*ids, checkpoint_id="first")
    record_pause, session_lock = rt.store.record_pause, rt.lifecycle._session_lock
    snapshotted = anyio.Event()  # the pause has its snapshot and is about to record it
    overtaken = anyio.Event()  # the resume has run, or is waiting for the pause

    async def held_record_pause(*args: Any, **kwargs: Any) -> None:
        snapshotted.set()
        await overtaken.wait()
        await record_pause(*args, **kwargs)

    def spied_lock(s: Scope) -> Any:
        if snapshotted.is_set():
            overtaken.set()
        return session_lock(s)

    rt.store.record_pause = held_record_pause  # type: ignore[method-assign]
    rt.lifecycle._session_lock = spied_lock  # type: ignore[method-assign]

    async def resume() -> None:
        await rt.lifecycle.resume(*ids, checkpoint_id="first")
        overtaken.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(rt.lifecycle.pause, *ids, checkpoint_id="second"))
        await snapshotted.wait()
        tg.start_soon(resume)

    session = await rt.store.get_session(scope)
    assert session is not None and session.status == SessionStatus.RUNNING
    kinds = [e.event_type for e in await rt.store.list_events(scope, 100)]
    assert kinds[-2:] == ["pause", "resume"]
