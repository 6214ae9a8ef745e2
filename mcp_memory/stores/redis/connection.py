"""Connecting to Redis: settings checks, the client for a URL (standalone, Sentinel or Cluster), and redis-py's
failures as the errors a caller sees."""

from __future__ import annotations

import logging
import re
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from redis import exceptions as rex
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff

from mcp_memory.config import Settings, mask_url
from mcp_memory.errors import ConfigurationError, Internal, MemoryServiceError, Unavailable

logger = logging.getLogger(__name__)

Mode = Literal["standalone", "cluster", "sentinel"]


def mode_of(settings: Settings) -> Mode:
    url = settings.redis_url or ""
    if url.startswith("redis+sentinel://"):
        return "sentinel"
    return "cluster" if settings.redis_cluster else "standalone"


def check_redis_settings(settings: Settings) -> None:
    """Refuse a Redis URL or combination of settings that cannot work, with a message saying what to write."""
    url = settings.redis_url
    if not url:
        return
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    allowed = {"redis", "rediss", "unix", "redis+sentinel"}
    if scheme not in allowed:
        raise ConfigurationError(
            f"MCP_MEMORY_REDIS_URL {redact_url(url)!r} is not a Redis URL; use 'redis://host:6379/0', "
            "'rediss://...' (TLS), 'unix:///path/to/redis.sock' or 'redis+sentinel://host:26379/service_name'"
        )
    if settings.redis_cluster and scheme not in ("redis", "rediss"):
        raise ConfigurationError(
            f"MCP_MEMORY_REDIS_CLUSTER=true needs a redis:// or rediss:// URL of one cluster node, not {scheme}://"
        )
    if scheme == "redis+sentinel":
        hosts, service, _db = parse_sentinel(url)
        if not hosts or not service:
            raise ConfigurationError(
                "a Sentinel URL names the sentinels and the service: "
                "'redis+sentinel://host1:26379,host2:26379/service_name'"
            )
        db = _sentinel_path(url)[1:]
        if len(db) > 1 or (db and not _DB_NUMBER.fullmatch(db[0])):
            raise ConfigurationError(
                f"MCP_MEMORY_REDIS_URL {redact_url(url)!r}: after the service name a Sentinel URL takes only a "
                "database number ('redis+sentinel://host:26379/service_name/0')"
            )
    else:
        try:
            parts = urlsplit(url)
            _ = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"MCP_MEMORY_REDIS_URL {redact_url(url)!r} is not a valid URL: {exc}") from exc
        if scheme != "unix" and not parts.hostname:
            raise ConfigurationError(f"MCP_MEMORY_REDIS_URL {redact_url(url)!r} names no host")
        # redis-py reads a path that is not a number as database 0, silently: another database than meant.
        if scheme != "unix" and parts.path not in ("", "/") and not _DB_NUMBER.fullmatch(unquote(parts.path)[1:]):
            raise ConfigurationError(
                f"MCP_MEMORY_REDIS_URL {redact_url(url)!r}: the path must be a database number "
                f"('redis://host:6379/0'), not {parts.path!r}"
            )
        if settings.redis_cluster and _database(parts.path, parts.query) != "0":
            raise ConfigurationError(
                f"MCP_MEMORY_REDIS_URL {redact_url(url)!r}: a Redis Cluster has only database 0; "
                "drop the database number ('redis://host:6379' or 'redis://host:6379/0')"
            )
    if "{" in settings.redis_key_prefix or "}" in settings.redis_key_prefix:
        raise ConfigurationError(
            "MCP_MEMORY_REDIS_KEY_PREFIX must not contain '{' or '}' (they would change Redis Cluster hash slots)"
        )


_DB_NUMBER = re.compile(r"[0-9]+")


def _database(path: str, query: str) -> str:
    """The database number a URL names, without leading zeros ("0" if none; ``?db=N`` wins over the path, as
    redis-py reads it)."""
    db = parse_qs(query).get("db", [unquote(path).strip("/")])[-1]
    return db.lstrip("0") or "0"


def _sentinel_path(url: str) -> list[str]:
    """The path segments of a Sentinel URL (the service name, then the database number)."""
    path = url.split("://", 1)[1].partition("/")[2]
    return [s for s in path.split("?", 1)[0].split("/") if s]


def parse_sentinel(url: str) -> tuple[list[tuple[str, int]], str, int]:
    """``redis+sentinel://[:password@]h1:26379,h2:26379/service[/db]`` -> sentinels, service, db."""
    rest = url.split("://", 1)[1]
    netloc = rest.partition("/")[0].rpartition("@")[2]
    hosts: list[tuple[str, int]] = []
    for part in filter(None, netloc.split(",")):
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "26379")
        try:
            hosts.append((host.strip("[]"), int(port)))
        except ValueError:
            return [], "", 0
    segments = _sentinel_path(url)
    service = unquote(segments[0]) if segments else ""
    db = int(segments[1]) if len(segments) > 1 and _DB_NUMBER.fullmatch(segments[1]) else 0
    return hosts, service, db


def redact_url(url: str) -> str:
    """The URL without its passwords (for logs, error messages and ``doctor``): :func:`~mcp_memory.config.mask_url`."""
    return mask_url(url)


def unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"Redis is not reachable or not answering ({type(exc).__name__}); retry later")


def out_of_memory() -> Unavailable:
    """A write refused because Redis is full (``maxmemory`` under ``noeviction``)."""
    return Unavailable("Redis is out of memory (maxmemory reached); nothing was written; retry later")


_TRANSIENT = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS")


def as_service_error(script: str, exc: Exception) -> MemoryServiceError:
    """A redis-py failure as the error a caller sees: ``unavailable`` for everything that retrying later may
    fix (connection, timeout, out of memory, read-only replica, failover, permissions), ``internal`` otherwise.
    A script refused for lack of memory has written nothing (Redis refuses a script's first write, and once a
    script has written it is never stopped midway)."""
    if isinstance(exc, rex.OutOfMemoryError):
        logger.warning("Redis is out of memory: %s", exc)
        return out_of_memory()
    if isinstance(exc, rex.ReadOnlyError):
        logger.warning("Redis is read-only: %s", exc)
        return Unavailable("Redis is read-only right now (a replica, or failing over); retry later")
    denied = ("NOPERM", "can't run this command", "no permissions")  # from a script, redis-py keeps only the text
    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError | rex.NoPermissionError) or (
        isinstance(exc, rex.ResponseError) and any(marker in str(exc) for marker in denied)
    ):
        logger.error("Redis refused our credentials or permissions: %s", exc)
        return Unavailable("Redis refused mcp-memory's credentials or ACL permissions; see the server log")
    if isinstance(exc, rex.ResponseError) and not isinstance(exc, rex.ClusterError | rex.TryAgainError):
        if str(exc).startswith(_TRANSIENT):
            logger.warning("Redis refused a call: %s", exc)
            return Unavailable("Redis refused the call for now (loading or failing over); retry later")
        logger.error("Redis script %s failed", script, exc_info=exc)
        return Internal("the Redis working store failed unexpectedly; see the server log")
    if isinstance(exc, rex.RedisError | rex.RedisClusterException | OSError | TimeoutError):
        logger.warning("Redis call failed: %r", exc)
        return unavailable(exc)
    logger.error("Redis script %s failed", script, exc_info=exc)
    return Internal("the Redis working store failed unexpectedly; see the server log")


def connect(settings: Settings) -> tuple[Any, Mode, list[Any]]:
    """The client for ``settings.redis_url`` (``Redis``, or ``RedisCluster`` with ``redis_cluster``), its mode, and
    the other clients to close with it (Sentinel's)."""
    check_redis_settings(settings)
    url = settings.redis_url or ""
    mode = mode_of(settings)
    timeout = settings.redis_timeout_seconds
    # Retried: a connection that failed or broke. Not retried: a timeout waiting for a reply, since the script was
    # sent and may have run (it runs to the end in Redis): redis-py's default would run it again, up to
    # 1 + redis_retries times, and a second run answers as if the first had not happened (a key deleted twice
    # answers "not found"), besides loading a Redis that is already slow.
    backoff = ExponentialBackoff(cap=0.5, base=0.05)
    retry = Retry(backoff, settings.redis_retries, supported_errors=(rex.ConnectionError,))
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "decode_responses": True,
        "retry": retry,
    }
    client: Any
    also_close: list[Any] = []
    if mode == "cluster":
        try:
            client = RedisCluster.from_url(
                url,
                max_connections=settings.redis_max_connections,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                decode_responses=True,
                retry=retry,
            )
        except rex.RedisClusterException as exc:  # an argument redis-py refuses for Cluster: say it in one line
            raise ConfigurationError(f"MCP_MEMORY_REDIS_URL {redact_url(url)!r} for a Redis Cluster: {exc}") from exc
    elif mode == "sentinel":
        hosts, service, db = parse_sentinel(url)
        parts = urlsplit(url.replace("redis+sentinel://", "redis://", 1).split(",", 1)[0])
        auth: dict[str, Any] = {"password": parts.password} if parts.password else {}
        if parts.username:
            auth["username"] = parts.username
        sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]  # typed only in some redis-py releases
            hosts,
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            **common,
            **auth,
        )
        client = sentinel.master_for(service, db=db, max_connections=settings.redis_max_connections, **common, **auth)
        also_close = list(sentinel.sentinels)
    else:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=settings.redis_max_connections, timeout=timeout, **common
        )
        client = Redis.from_pool(pool)  # the client owns the pool: closing it closes the connections
    return client, mode, also_close


__all__ = [
    "Mode",
    "as_service_error",
    "check_redis_settings",
    "connect",
    "mode_of",
    "out_of_memory",
    "parse_sentinel",
    "redact_url",
    "unavailable",
]
