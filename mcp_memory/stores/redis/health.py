"""What ``mcp-memory doctor`` and the start-up check say about Redis: reachability, version, mode, whether a Cluster
serves, and the eviction policy of every server that holds sessions (each Cluster primary); and the cheap probe of
``/readyz`` (reachability, and whether a Cluster serves)."""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from mcp_memory.stores.redis.connection import Mode, unavailable

EVICTION_WARNING = "maxmemory-policy evicts keys: a session can lose some of its keys unnoticed"


def _one_node(info: dict[str, Any]) -> dict[str, Any]:
    """An ``INFO`` reply of one server: in Cluster redis-py answers one reply per node (the first is taken)."""
    if info and all(isinstance(v, dict) for v in info.values()):
        return dict(next(iter(info.values())))
    return info


async def eviction_policies(client: Any, mode: Mode) -> dict[str, str | None]:
    """Each server's ``maxmemory-policy`` (from ``INFO memory``, which the documented ACL allows), by node name in
    Cluster (every primary: each holds its own slots' sessions and may be configured apart), under "" otherwise."""
    if mode != "cluster":
        info = await client.info("memory")
        return {"": _policy(info)}
    replies = await client.info("memory", target_nodes=RedisCluster.PRIMARIES)
    if replies and not all(isinstance(v, dict) for v in replies.values()):  # one primary: redis-py answers its reply
        node = client.get_primaries()[0].name
        return {node: _policy(replies)}
    return {node: _policy(info) for node, info in sorted(replies.items())}


def _policy(info: dict[str, Any] | None) -> str | None:
    policy = info.get("maxmemory_policy") if info else None
    return str(policy) if policy is not None else None


def evicting(policies: dict[str, str | None]) -> str | None:
    """The servers whose policy evicts keys, as a log or report names them ("allkeys-lru", or in Cluster
    "127.0.0.1:7001 allkeys-lru, ..."), or None if none does."""
    bad = [f"{node} {policy}".strip() for node, policy in policies.items() if policy not in (None, "noeviction")]
    return ", ".join(bad) or None


async def ping(client: Any, mode: Mode) -> dict[str, Any]:
    """The facts ``doctor`` reports (never raises: a failure is reported). ``error`` is set, and ``doctor`` fails,
    when Redis is unreachable or a Cluster is not serving (``cluster_state`` other than ok: every call would be
    ``unavailable``)."""
    facts: dict[str, Any] = {}
    try:
        info = await client.info("server")
        if mode == "cluster":
            cluster = await client.cluster_info()
            facts["cluster_state"] = cluster.get("cluster_state")
            facts["cluster_known_nodes"] = cluster.get("cluster_known_nodes")
            facts["nodes"] = len(client.get_nodes())
    except Exception as exc:
        facts.update(reachable=False, error=str(unavailable(exc)))
        return facts
    info = _one_node(info)
    facts.update(reachable=True, version=info.get("redis_version"), server_mode=info.get("redis_mode"))
    if mode == "cluster" and facts["cluster_state"] != "ok":
        facts["error"] = _not_serving(facts["cluster_state"])
    try:
        policies = await eviction_policies(client, mode)
    except Exception:
        policies = {}
    distinct = set(policies.values())
    facts["maxmemory_policy"] = distinct.pop() if len(distinct) == 1 else (policies or None)
    bad = evicting(policies)
    if bad is not None:
        facts["warning"] = f"{EVICTION_WARNING} ({bad})"
    return facts


async def probe(client: Any, mode: Mode) -> dict[str, Any]:
    """Whether Redis serves, for ``/readyz`` (never raises): ``PING``, or in Cluster ``CLUSTER INFO`` (a round trip
    to the same node that also says whether the cluster serves). Reported as :func:`ping` reports it, so that
    ``runtime.not_serving`` decides alike; no ``INFO``, which is larger and which ``doctor`` alone needs."""
    try:
        if mode == "cluster":
            state = (await client.cluster_info()).get("cluster_state")
        else:
            await client.ping()
    except Exception as exc:
        return {"reachable": False, "error": str(unavailable(exc))}
    if mode != "cluster":
        return {"reachable": True}
    facts: dict[str, Any] = {"reachable": True, "cluster_state": state}
    if state != "ok":
        facts["error"] = _not_serving(state)
    return facts


def _not_serving(state: object) -> str:
    return (
        f"the Redis Cluster is not serving (cluster_state:{state}): every working-memory call answers unavailable "
        "until it is"
    )


__all__ = ["EVICTION_WARNING", "evicting", "eviction_policies", "ping", "probe"]
