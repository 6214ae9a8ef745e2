"""A Redis Cluster has only database 0: a Cluster URL naming another (``/1``, ``?db=2``) is a one-line configuration
error naming the URL with its password masked (``serve`` exits 2), as other bad Redis URLs are. Before, redis-py
refused it while the store was being made, and ``serve`` died with a 37-line traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import ConfigurationError
from mcp_memory.stores.redis.connection import check_redis_settings
from tests.test_stdio import run_cli, server_env

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "url",
    [
        "redis://:secret@127.0.0.1:7000/1",
        "redis://:secret@127.0.0.1:7000/15",
        "redis://:secret@127.0.0.1:7000?db=2",
        "redis://:secret@127.0.0.1:7000/0?db=3",
        "rediss://user:secret@redis.example.com:7000/%31",
    ],
)
def test_a_cluster_url_with_another_database_is_refused(db_url: str, url: str) -> None:
    with pytest.raises(ConfigurationError, match="a Redis Cluster has only database 0") as refused:
        check_redis_settings(Settings(database_url=db_url, redis_url=url, redis_cluster=True))
    assert "secret" not in str(refused.value) and ":***@" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:7000", "redis://127.0.0.1:7000/", "redis://127.0.0.1:7000/0", "redis://127.0.0.1:7000?db=0"],
)
def test_a_cluster_url_with_database_0_or_none_is_accepted(db_url: str, url: str) -> None:
    check_redis_settings(Settings(database_url=db_url, redis_url=url, redis_cluster=True))


async def test_serve_refuses_a_cluster_url_with_another_database_in_one_line(tmp_path: Path) -> None:
    env = server_env(tmp_path, MCP_MEMORY_REDIS_URL="redis://:secret@127.0.0.1:7000/1", MCP_MEMORY_REDIS_CLUSTER="true")
    code, _, err = await run_cli("serve", env=env)
    assert code == 2, err
    assert err.splitlines() == [
        "mcp-memory: configuration error: MCP_MEMORY_REDIS_URL 'redis://:***@127.0.0.1:7000/1': a Redis Cluster has "
        "only database 0; drop the database number ('redis://host:6379' or 'redis://host:6379/0')"
    ]
