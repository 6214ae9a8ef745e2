"""Closing calls wait for a replica: what a terminate or an erase has closed must survive a failover.

Redis replicates asynchronously, so a failover (Sentinel, or a Cluster replica taking over its primary) can promote
a replica that has not received the last writes. For working memory that costs the newest writes (the session keeps
the replica's older state); for a close it would undo it: a terminated session open again, an erased one back. So
the scripts that close (terminate's marking, delete_session's and forget's erase) are followed by ``WAIT 1`` on the
connection that ran them (``WAIT`` waits for what *its own* connection wrote), in one pipeline: the call answers
once a replica holds the closed state. A batch of closes (forget's erase of many sessions) goes in one pipeline too,
with one ``WAIT`` per primary after it: the replication offset is the primary's, so it covers every script before.
Standalone Redis is not replicated by us (no failover to follow), and a Cluster slot whose primary has no replica has
no failover either: neither sends ``WAIT``, and so neither pays for it. Hot-path calls (``memory_set``, pause,
resume) never wait.

If no replica acknowledges within the wait, the close is already complete on the primary (and in the durable
store), so the call still succeeds: answering ``unavailable`` for a close that is done would only be retried to the
same end. It is logged as a warning instead (docs/configuration.md), once: for the next ``UNACKED_PAUSE_SECONDS``
closes on that primary do not wait (a replica that is down would make each of them wait the whole timeout for
nothing), then one close waits again, as a probe, while the others still do not; when a replica acknowledges again,
that is logged too and every close waits again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from mcp_memory.stores.redis.connection import Mode
from mcp_memory.stores.redis.scripts import Scripts

logger = logging.getLogger(__name__)

UNACKED_PAUSE_SECONDS = 10.0
"""After a ``WAIT`` no replica acknowledged, how long closes on that primary answer without waiting."""

Call = tuple[Sequence[str], Sequence[Any]]
"""One script run: its keys and its arguments."""


class ReplicaWait:
    """Run closing scripts, then ``WAIT 1`` for a replica on the same connection, where a failover could lose them."""

    def __init__(self, client: Any, mode: Mode, scripts: Scripts) -> None:
        self._client = client
        self._mode = mode
        self._scripts = scripts
        self._unacked: dict[str, float] = {}
        """Primaries (by node name; "" for Sentinel's) whose last ``WAIT`` no replica acknowledged, each with the
        ``time.monotonic()`` from which one close waits again."""

    def _target(self, key: str) -> tuple[str, Any] | None:
        """The node to wait on for ``key`` (its slot's primary), by name, or None where there is nothing to wait for:
        standalone, or a Cluster primary without replicas (by the client's view of the topology)."""
        if self._mode == "sentinel":
            return "", self._client
        if self._mode != "cluster":
            return None
        nodes = self._client.nodes_manager.slots_cache.get(self._client.keyslot(key)) or []
        return (nodes[0].name, nodes[0]) if len(nodes) > 1 else None

    def _waits_on(self, name: str) -> bool:
        """Whether a close now waits on the primary ``name``: unless its replicas failed to acknowledge lately. The
        first close past the pause waits (a probe) and moves the pause on, so that closes beside it do not."""
        probe_at = self._unacked.get(name)
        if probe_at is None:
            return True
        if time.monotonic() < probe_at:
            return False
        self._unacked[name] = time.monotonic() + UNACKED_PAUSE_SECONDS
        return True

    async def run_many(self, name: str, calls: Sequence[Call], wait_ms: int | None) -> list[list[Any]]:
        """Each call's reply, in order, the scripts sent in one pipeline; then, with ``wait_ms``, once a replica of
        each primary they ran on acknowledged them (or ``wait_ms`` passed). One call that waits for nothing is sent
        as a script alone (its counted round trips as before)."""
        targets: dict[str, Any] = {}
        for keys, _ in calls:
            target = self._target(keys[0]) if wait_ms is not None else None
            if target is not None and target[0] not in targets and self._waits_on(target[0]):
                targets[target[0]] = target[1]
        if not targets and len(calls) == 1:
            return [await self._scripts.run(name, *calls[0])]
        replies, acked = await self._pipeline(name, calls, wait_ms or 0, targets)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # Redis forgot the script (a restart, a failover): load it, once, and run those calls again
            await self._scripts.load(name)
            again, acked_again = await self._pipeline(name, [calls[i] for i in missing], wait_ms or 0, targets)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
            # The fewer acknowledgements of the two WAITs, or the first failure of either (raised below).
            acked = [
                a if isinstance(a, Exception) else b if isinstance(b, Exception) else min(a, b)
                for a, b in zip(acked, acked_again, strict=True)
            ]
        for reply in (*replies, *acked):
            if isinstance(reply, Exception):
                raise reply
        first = calls[0][0][0].removesuffix(":m")
        what = f"{name} of {first}" if len(calls) == 1 else f"{name} of {len(calls)} sessions"
        for node, count in zip(targets, acked, strict=True):
            self._acknowledged(node, bool(count), what, wait_ms or 0)
        return replies

    def _acknowledged(self, node: str, acked: bool, what: str, wait_ms: int) -> None:
        """Note whether a replica of ``node`` acknowledged: a warning when it stops, a line when it starts again."""
        if acked:
            if self._unacked.pop(node, None) is not None:
                logger.info("a Redis replica%s acknowledges closes again: they wait for it again", _of(node))
            return
        if node not in self._unacked:
            logger.warning(
                "no Redis replica%s acknowledged the %s within %d ms: it is done on the primary, but a failover now "
                "could promote a replica without it; closes there answer without waiting for a replica for the next "
                "%g s, then one waits again (docs/configuration.md)",
                _of(node),
                what,
                wait_ms,
                UNACKED_PAUSE_SECONDS,
            )
        self._unacked[node] = time.monotonic() + UNACKED_PAUSE_SECONDS

    async def _pipeline(
        self, name: str, calls: Sequence[Call], wait_ms: int, targets: dict[str, Any]
    ) -> tuple[list[Any], list[Any]]:
        # One pipeline, so the scripts and the WAIT after them go over one connection (in Cluster: one per primary,
        # each WAIT sent last to its own primary).
        pipe = self._client.pipeline(transaction=False)
        sha = self._scripts.sha(name)
        for keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        for target in targets.values():
            if self._mode == "cluster":
                pipe.execute_command("WAIT", 1, wait_ms, target_nodes=target)
            else:
                pipe.execute_command("WAIT", 1, wait_ms)
        self._scripts.count()
        replies = list(await pipe.execute(raise_on_error=False))
        return replies[: len(calls)], replies[len(calls) :]


def _of(node: str) -> str:
    return f" of {node}" if node else ""


__all__ = ["UNACKED_PAUSE_SECONDS", "Call", "ReplicaWait"]
