"""``/readyz`` answers 503 while the Redis Cluster holding working memory reports ``cluster_state:fail``.

The store stays reachable (the node asked answers) and reports the cluster's state as an error, as ``doctor``
shows it; every working-memory call would be ``unavailable``, so the process must leave the balancer's rotation
(``doctor`` and ``/readyz`` decide by one predicate, ``runtime.not_serving``).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.http_helpers import ServerProcess, assert_ready, server_env, until_unavailable
from tests.redis_servers import RedisClusterServers, unique_prefix
from tests.waiting import wait_until


def test_readyz_is_503_while_the_cluster_state_is_fail(tmp_path: Path) -> None:
    cluster = RedisClusterServers(tmp_path / "cluster", node_timeout_ms=1000).start()
    try:
        env = server_env(
            tmp_path / "memory.db",
            MCP_MEMORY_REDIS_URL=cluster.url,
            MCP_MEMORY_REDIS_CLUSTER="true",
            MCP_MEMORY_REDIS_KEY_PREFIX=unique_prefix(),
        )
        with ServerProcess(env) as server, httpx.Client(base_url=server.url, timeout=30) as h:
            assert_ready(h)

            cluster.stop_a_node_until_the_cluster_fails()
            until_unavailable(h)
            wait_until(lambda: any("cluster_state:fail" in line for line in server.log), what="the state logged")
    finally:
        cluster.stop()
