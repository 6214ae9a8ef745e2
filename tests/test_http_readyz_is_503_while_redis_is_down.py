"""``/readyz`` answers 503 while the Redis working store is down and 200 again once it is back.

The SQL stores raise when they do not answer, but the Redis store reports ``reachable: False`` (so ``doctor`` can
show its other facts): ``/readyz`` took "no exception" for ready and kept a process that could serve no tool call
in the balancer's rotation.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.http_helpers import ServerProcess, assert_ready, server_env, until_unavailable
from tests.redis_servers import RedisServer, unique_prefix
from tests.waiting import wait_until


def test_readyz_follows_redis_going_down_and_coming_back(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        env = server_env(
            tmp_path / "memory.db", MCP_MEMORY_REDIS_URL=redis_server.url, MCP_MEMORY_REDIS_KEY_PREFIX=unique_prefix()
        )
        with ServerProcess(env) as server, httpx.Client(base_url=server.url, timeout=30) as h:
            assert_ready(h)

            redis_server.stop()
            until_unavailable(h)
            wait_until(lambda: any("not ready: a store is not reachable" in line for line in server.log), what="a log")

            redis_server.start()  # the same port
            wait_until(lambda: h.get("/readyz").status_code == 200, what="/readyz ready again")
    finally:
        redis_server.stop()
