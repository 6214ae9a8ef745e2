"""``mcp-memory doctor`` on a Redis Cluster looks at the whole cluster, not at the one node it happens to ask: a
cluster that is not serving (``cluster_state:fail``, every call would be ``unavailable``) is not ok (exit 1, with
an error saying so), and a primary whose ``maxmemory-policy`` evicts keys is named in the warning, and in the
start-up warning, whichever primary it is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import made_sqlite_file
from tests.redis_servers import RedisClusterServers
from tests.test_stdio import run_cli, server_env

pytestmark = pytest.mark.anyio


async def test_a_cluster_that_is_not_serving_fails_doctor(tmp_path: Path) -> None:
    cluster = RedisClusterServers(tmp_path / "cluster", node_timeout_ms=1000).start()
    try:
        env = server_env(tmp_path, MCP_MEMORY_REDIS_URL=cluster.url, MCP_MEMORY_REDIS_CLUSTER="true")
        made_sqlite_file(env["MCP_MEMORY_DATABASE_URL"])
        code, out, err = await run_cli("doctor", env=env)
        assert code == 0, err
        assert json.loads(out)["stores"]["working"]["cluster_state"] == "ok"

        cluster.stop_a_node_until_the_cluster_fails()
        code, out, _ = await run_cli("doctor", env=env)
        report = json.loads(out)
        working = report["stores"]["working"]
        assert code == 1 and report["ok"] is False
        assert working["cluster_state"] == "fail"
        assert working["error"].startswith("the Redis Cluster is not serving (cluster_state:fail)")
    finally:
        cluster.stop()


async def test_every_primarys_eviction_policy_is_checked(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = RedisClusterServers(tmp_path / "cluster").start()
    try:
        evicting = cluster.servers[1:]  # not the seed node of the URL
        for server in evicting:
            client = server.client()
            client.config_set("maxmemory-policy", "allkeys-lru")
            client.close()
        settings = Settings(database_url=db_url, redis_url=cluster.url, redis_cluster=True)
        with caplog.at_level(logging.WARNING):
            async with MemoryRuntime(settings) as rt:
                working = (await rt.check())["working"]
        named = [f"127.0.0.1:{s.port} allkeys-lru" for s in evicting]
        assert all(node in working["warning"] for node in named), working
        assert f"127.0.0.1:{cluster.servers[0].port}" not in working["warning"]
        assert working["maxmemory_policy"] == {
            f"127.0.0.1:{s.port}": "allkeys-lru" if s in evicting else "noeviction" for s in cluster.servers
        }
        started = [r.getMessage() for r in caplog.records if "evicts keys" in r.getMessage()]
        assert len(started) == 1 and all(node in started[0] for node in named), started
    finally:
        cluster.stop()
