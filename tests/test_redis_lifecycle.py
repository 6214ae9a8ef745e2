"""The lifecycle guarantees of ``test_lifecycle.py``, the MCP sessions of ``test_mcp_session.py`` and
``test_hooks.py`` and the store-independent edge cases, again with working memory in Redis.

Same tests, imported; only the settings differ (``redis_url`` on the shared test Redis, a unique key prefix
whose keys are deleted afterwards). The tests that put a deliberately failing wrapper in front of the SQLite
store test the lifecycle manager, not a store, and are not repeated.
"""

from __future__ import annotations

import inspect

from mcp_memory.config import Settings
from mcp_memory.runtime import MemoryRuntime
from mcp_memory.stores.redis import RedisWorkingStore
from tests import test_hooks, test_lifecycle, test_mcp_session
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
