"""Real Redis servers for tests: the shared one, private ``redis-server`` processes, a 3-node Cluster.

The shared Redis (``MCP_MEMORY_TEST_REDIS_URL``, else 127.0.0.1:6379 if it answers, else a private server
started once per test run) may be used by others at the same time: tests write under a unique key prefix and
delete only their own keys. Tests that stop Redis, count its commands or need a cluster start their own
servers on free loopback ports in a temporary directory and kill them afterwards.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from mcp_memory.stores.ports import DurableStore
from mcp_memory.stores.redis.store import RedisWorkingStore

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


SERVICE_PORTS = frozenset({5432, 5672, 6379})
"""Services a machine may run (Postgres, AMQP, Redis): never handed out, even while one of them is down."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now, below the kernel's ephemeral range (32768 and up on
    Linux) and the cluster nodes' ports: a private server stopped and started again on it keeps it, since no outgoing
    connection of another test can be given it in between."""
    for _ in range(200):
        port = random.randint(5_000, 11_999)
        if port in SERVICE_PORTS:
            continue
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port below the ephemeral range")


def free_cluster_port() -> int:
    """A free port P whose cluster bus port P + 10000 is free too, both below the kernel's ephemeral range (32768 and
    up on Linux), where no outgoing connection of another test can take one before the node binds it."""
    for _ in range(200):
        port = random.randint(12_000, 22_700)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


def unique_prefix() -> str:
    """A key prefix no other test (or engineer) uses."""
    return f"mcpmem-test-{uuid.uuid4().hex[:16]}"


def answers(url: str, timeout: float = 0.5) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


class RedisServer:
    """A private ``redis-server`` on a free loopback port, in its own directory. Not persistent unless
    ``appendonly`` (then it keeps its data across ``stop``/``start``)."""

    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool = False,
        extra: list[str] | None = None,
        port: int | None = None,
        choose_port: Callable[[], int] = free_port,
    ) -> None:
        if REDIS_SERVER is None:
            pytest.skip("redis-server is not installed")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._port_chosen = port is None
        self._choose_port = choose_port
        self._started = False
        self.port = port or choose_port()
        self.appendonly = appendonly
        self.extra = extra or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        assert REDIS_SERVER is not None
        return [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            *self.extra,
        ]

    def start(self) -> RedisServer:
        # A port free when chosen can be taken before redis-server binds it (tests run in parallel under
        # pytest-xdist): a first start whose port was ours to choose retries on another one.
        for _ in range(3 if self._port_chosen and not self._started else 1):
            self.process = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_until_ours():
                self._started = True
                return self
            self.stop()
            self.port = self._choose_port()
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def _wait_until_ours(self) -> bool:
        """Whether our process answers on the port (not another server that bound it first)."""
        assert self.process is not None
        deadline = time.monotonic() + 10
        while self.process.poll() is None and time.monotonic() < deadline:
            if answers(self.url, 0.2):
                client = self.client()
                try:
                    return int(client.info("server")["process_id"]) == self.process.pid
                finally:
                    client.close()
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: with appendonly the AOF is synced before exit
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)


_private: RedisServer | None = None


def shared_redis_url() -> str:
    """The Redis the contract suite runs on (see the module docstring)."""
    global _private
    explicit = os.environ.get("MCP_MEMORY_TEST_REDIS_URL")
    if explicit:
        return explicit
    default = "redis://127.0.0.1:6379/0"
    if answers(default):
        return default
    if _private is None:
        directory = Path(tempfile.mkdtemp(prefix="mcpmem-redis-"))
        _private = RedisServer(directory).start()
        atexit.register(_private.stop)
        atexit.register(shutil.rmtree, directory, True)
    return _private.url


def delete_keys(url: str, prefix: str) -> int:
    """Delete every key under ``prefix`` (only ours: never a flush on a shared server)."""
    client = redis.Redis.from_url(url)
    try:
        deleted = 0
        batch: list[Any] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
        return deleted
    finally:
        client.close()


class CleaningRedisStore(RedisWorkingStore):
    """The real Redis store, under a unique prefix, which deletes its own keys when closed."""

    shared_url = ""

    async def close(self) -> None:
        try:
            delete_keys(self.shared_url, self.key_prefix)
        finally:
            await super().close()


async def make_redis_store(durable: DurableStore | None, url: str | None = None) -> RedisWorkingStore:
    """A started Redis working store on the shared Redis, with a fresh key prefix."""
    from mcp_memory.config import Settings

    url = url or shared_redis_url()
    settings = Settings(redis_url=url, redis_key_prefix=unique_prefix())
    base = RedisWorkingStore.from_settings(settings, durable=durable)
    store = CleaningRedisStore(
        base.client, mode=base.mode, key_prefix=base.key_prefix, durable=durable, url=url, owns_client=True
    )
    store.shared_url = url
    await store.start()
    return store


class SentinelServer(RedisServer):
    """A Sentinel on a free loopback port, monitoring the primary at ``primary_port`` as service ``svc`` (quorum 1)."""

    def __init__(self, directory: Path, primary_port: int) -> None:
        super().__init__(directory)
        self.conf = directory / "sentinel.conf"
        self.conf.write_text(f"sentinel monitor svc 127.0.0.1 {primary_port} 1\n")

    @property
    def sentinel_url(self) -> str:
        """The URL a client of service ``svc`` is given (``url`` stays the server's own, for its readiness check)."""
        return f"redis+sentinel://127.0.0.1:{self.port}/svc"

    def args(self) -> list[str]:
        assert REDIS_SERVER is not None
        return [REDIS_SERVER, str(self.conf), "--sentinel", "--port", str(self.port), "--bind", "127.0.0.1"]


class RedisClusterServers:
    """Cluster-enabled ``redis-server`` nodes on loopback ports, joined by ``redis-cli --cluster``: three primaries,
    each with ``replicas`` replicas (``nodes`` = 3 x (1 + ``replicas``))."""

    def __init__(self, directory: Path, nodes: int = 3, replicas: int = 0, node_timeout_ms: int | None = None) -> None:
        """``node_timeout_ms``: how soon a node down is noticed (Redis's default is 15 s; tests that stop one want
        about a second)."""
        self.replicas = replicas
        if REDIS_SERVER is None or REDIS_CLI is None:
            pytest.skip("redis-server / redis-cli are not installed")
        timeout = ["--cluster-node-timeout", str(node_timeout_ms)] if node_timeout_ms is not None else []
        self.servers = [
            RedisServer(
                directory / f"node{i}",
                extra=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(directory / f"node{i}" / "nodes.conf"),
                    *timeout,
                ],
                choose_port=free_cluster_port,  # chosen again if taken before the node binds it
            )
            for i in range(nodes)
        ]

    @property
    def url(self) -> str:
        return self.servers[0].url

    def start(self) -> RedisClusterServers:
        for server in self.servers:
            server.start()
        assert REDIS_CLI is not None
        addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        deadline = time.monotonic() + (30 if self.replicas else 15)
        for server in self.servers:
            client = server.client()
            try:
                # Up when every node serves and knows the replicas of every slot range (a client reads the topology
                # once, from one node: a replica it does not know of is one it does not wait for).
                while client.cluster("info").get("cluster_state") != "ok" or not all(
                    len(slots) >= 3 + self.replicas for slots in client.execute_command("CLUSTER", "SLOTS")
                ):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the test cluster did not reach cluster_state:ok")
                    time.sleep(0.05)
            finally:
                client.close()
        return self

    def _serving(self, key: str, index: int) -> RedisServer:
        """The server at ``index`` of the ``CLUSTER SLOTS`` entry of ``key``'s slot (0: its primary)."""
        admin = self.servers[0].client()
        try:
            slot = int(admin.cluster("keyslot", key))
            for low, high, *servers in admin.execute_command("CLUSTER", "SLOTS"):
                if low <= slot <= high:
                    port = int(servers[index][1])
                    return next(s for s in self.servers if s.port == port)
        finally:
            admin.close()
        raise AssertionError(f"no slot range holds {slot}")

    def primary_of(self, key: str) -> RedisServer:
        """The primary that holds ``key``'s slot."""
        return self._serving(key, 0)

    def replica_of(self, key: str) -> RedisServer:
        """The (first) replica of the primary that holds ``key``'s slot."""
        return self._serving(key, 1)

    def stop_a_node_until_the_cluster_fails(self, within: float = 20.0) -> None:
        """Stop the last node (not the seed node of :attr:`url`) and wait until the seed reports
        ``cluster_state:fail``: in a cluster without replicas, that node's slots are then served by no one."""
        self.servers[-1].stop()
        seed = self.servers[0].client()
        try:
            deadline = time.monotonic() + within
            while seed.cluster("info")["cluster_state"] != "fail":
                assert time.monotonic() < deadline, "the cluster did not notice its node was down"
                time.sleep(0.1)
        finally:
            seed.close()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
