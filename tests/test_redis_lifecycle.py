"""The lifecycle guarantees of ``test_lifecycle.py``, again with working memory in Redis.

Same tests, imported; only the settings differ (``redis_url`` on the shared test Redis, a unique key prefix
whose keys are deleted afterwards). The tests that put a deliberately failing wrapper in front of the SQLite
store test the lifecycle manager, not the store, and are not repeated.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mcp_memory.config import Settings
from tests import test_lifecycle
from tests.redis_servers import delete_keys, shared_redis_url, unique_prefix
from tests.test_lifecycle import *  # noqa: F403

for _name, _fn in list(vars(test_lifecycle).items()):
    if _name.startswith("test_") and {"flaky", "real"} & set(inspect.signature(_fn).parameters):
        del globals()[_name]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = unique_prefix()
    yield prefix
    delete_keys(shared_redis_url(), prefix)


@pytest.fixture
def settings(db_url: str, redis_prefix: str) -> Settings:
    return Settings(database_url=db_url, redis_url=shared_redis_url(), redis_key_prefix=redis_prefix)


@pytest.fixture
def make_settings(db_url: str, redis_prefix: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        base = {"database_url": db_url, "redis_url": shared_redis_url(), "redis_key_prefix": redis_prefix}
        return Settings(**{**base, **overrides})

    return make


def test_runtime_uses_redis(settings: Settings) -> None:
    from mcp_memory.runtime import MemoryRuntime
    from mcp_memory.stores.redis import RedisWorkingStore

    rt = MemoryRuntime(settings)
    assert isinstance(rt.working_store, RedisWorkingStore)
    assert rt.working_store.durable is rt.store
