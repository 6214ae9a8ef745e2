"""The path of a Redis URL is a database number or nothing: anything else (``redis://host:6379/9x``) is a
configuration error naming the URL with its password masked. redis-py reads such a path as database 0, so working
memory silently went to another database than the one meant (shared with whatever else lives there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import ConfigurationError
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.connection import check_redis_settings, parse_sentinel
from tests.test_stdio import run_cli, server_env

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "url",
    [
        "redis://:secret@127.0.0.1:6379/9x",
        "redis://:secret@127.0.0.1:6379/1/2",
        "rediss://user:secret@redis.example.com:6380/db1",
        "redis://:secret@127.0.0.1:6379/-1",
        "redis://:secret@127.0.0.1:6379/\N{SUPERSCRIPT TWO}",
        "redis+sentinel://:secret@10.0.0.1:26379/mymaster/9x",
        "redis+sentinel://:secret@10.0.0.1:26379/mymaster/1/2",
    ],
)
def test_a_path_that_is_not_a_database_number_is_refused(db_url: str, url: str) -> None:
    settings = Settings(database_url=db_url, redis_url=url)
    with pytest.raises(ConfigurationError, match="database number") as refused:
        check_redis_settings(settings)
    assert "secret" not in str(refused.value) and ":***@" in str(refused.value)
    with pytest.raises(ConfigurationError, match="database number"):
        MemoryRuntime(settings)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379",
        "redis://127.0.0.1:6379/",
        "redis://127.0.0.1:6379/15",
        "redis://127.0.0.1:6379/%31",  # redis-py unquotes the path: database 1
        "redis://127.0.0.1:6379/3?socket_keepalive=true",
        "unix:///var/run/redis.sock?db=2",
        "redis+sentinel://10.0.0.1:26379/mymaster",
        "redis+sentinel://10.0.0.1:26379/mymaster/4",
    ],
)
def test_no_path_or_a_database_number_is_accepted(db_url: str, url: str) -> None:
    check_redis_settings(Settings(database_url=db_url, redis_url=url))


def test_a_sentinel_url_reads_its_database_number() -> None:
    assert parse_sentinel("redis+sentinel://a:26379,b:26380/mymaster/4") == (
        [("a", 26379), ("b", 26380)],
        "mymaster",
        4,
    )


async def test_serve_refuses_a_redis_url_with_a_bad_database_in_one_line(tmp_path: Path) -> None:
    env = server_env(tmp_path, MCP_MEMORY_REDIS_URL="redis://:secret@127.0.0.1:6379/9x")
    code, _, err = await run_cli("serve", env=env)
    assert code == 2, err
    assert err.splitlines()[-1] == (
        "mcp-memory: configuration error: MCP_MEMORY_REDIS_URL 'redis://:***@127.0.0.1:6379/9x': the path must be a "
        "database number ('redis://host:6379/0'), not '/9x'"
    )
    assert "secret" not in err and not (tmp_path / "desktop.db").exists()
