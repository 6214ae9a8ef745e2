"""Closing calls wait for a replica: what a terminate or an erase has closed must survive a failover.

Redis replicates asynchronously, so a failover (Sentinel, or a Cluster replica taking over its primary) can promote
a replica that has not received the last writes. For working memory that costs the newest writes (the session keeps
the replica's older state); for a close it would undo it: a terminated session open again, an erased one back. So
the scripts that close (terminate's marking, delete_session's and forget's erase) are followed by ``WAIT 1`` on the
connection that ran them (``WAIT`` waits for what *its own* connection wrote), in one pipeline: the call answers
once a replica holds the closed state. Standalone Redis is not replicated by us (no failover to follow), and a
Cluster slot whose primary has no replica has no failover either: neither sends ``WAIT``, and so neither pays for
it. Hot-path calls (``memory_set``, pause, resume) never wait.

If no replica acknowledges within the wait, the close is already complete on the primary (and in the durable
store), so the call still succeeds: answering ``unavailable`` for a close that is done would only be retried to the
same end. It is logged as a warning instead (docs/configuration.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from mcp_memory.stores.redis.connection import Mode
from mcp_memory.stores.redis.scripts import Scripts

logger = logging.getLogger(__name__)


class ReplicaWait:
    """Run a closing script, then ``WAIT 1`` for a replica on the same connection, where a failover could lose it."""

    def __init__(self, client: Any, mode: Mode, scripts: Scripts) -> None:
        self._client = client
        self._mode = mode
        self._scripts = scripts

    def _target(self, key: str) -> Any | None:
        """The Cluster node to wait on for ``key`` (its slot's primary), or None where there is nothing to wait for:
        standalone, or a Cluster primary without replicas (by the client's view of the topology)."""
        if self._mode == "sentinel":
            return self._client
        if self._mode != "cluster":
            return None
        nodes = self._client.nodes_manager.slots_cache.get(self._client.keyslot(key)) or []
        return nodes[0] if len(nodes) > 1 else None

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any], wait_ms: int) -> list[Any]:
        """The script's reply, once a replica acknowledged it (or ``wait_ms`` passed: then a warning is logged)."""
        target = self._target(keys[0])
        if target is None:
            return await self._scripts.run(name, keys, args)
        reply, acked = await self._run_and_wait(name, keys, args, wait_ms, target)
        if isinstance(reply, NoScriptError):  # Redis forgot the script (a restart, a failover): load it, once
            await self._scripts.load(name)
            reply, acked = await self._run_and_wait(name, keys, args, wait_ms, target)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acked, Exception):
            raise acked
        if not acked:
            logger.warning(
                "no Redis replica acknowledged the %s of %s within %d ms: it is done on the primary, but a failover "
                "now could promote a replica without it (docs/configuration.md)",
                name,
                keys[0].removesuffix(":m"),
                wait_ms,
            )
        result: list[Any] = reply
        return result

    async def _run_and_wait(
        self, name: str, keys: Sequence[str], args: Sequence[Any], wait_ms: int, target: Any
    ) -> tuple[Any, Any]:
        # One pipeline, so EVALSHA and WAIT go over one connection (in Cluster: both to the slot's primary).
        pipe = self._client.pipeline(transaction=False)
        pipe.evalsha(self._scripts.sha(name), len(keys), *keys, *args)
        if self._mode == "cluster":
            pipe.execute_command("WAIT", 1, wait_ms, target_nodes=target)
        else:
            pipe.execute_command("WAIT", 1, wait_ms)
        self._scripts.count()
        reply, acked = await pipe.execute(raise_on_error=False)
        return reply, acked


__all__ = ["ReplicaWait"]
