"""Deletion of sessions' keys in Redis: one session's (``delete_session``) or every session of a project, agent or
session id that Redis holds (the operator's ``forget``), found by ``SCAN`` and erased in pipelines that wait for a
replica once per batch. A mixin of :class:`~mcp_memory.stores.redis.store.RedisWorkingStore`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from mcp_memory.models import Scope
from mcp_memory.stores.records import Incarnation
from mcp_memory.stores.redis.connection import as_service_error
from mcp_memory.stores.redis.copies import all_keys_of
from mcp_memory.stores.redis.scripts import incarnation

if TYPE_CHECKING:
    from mcp_memory.stores.redis.replication import Call

SCAN_BATCH = 500
"""Keys asked for per ``SCAN`` step of :meth:`RedisErasure.erase`."""


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisErasure:
    """The deletion calls of :class:`~mcp_memory.stores.redis.store.RedisWorkingStore`."""

    if TYPE_CHECKING:
        key_prefix: str
        _client: Any

        def all_keys(self, scope: Scope) -> tuple[str, ...]: ...

        async def _eval(
            self, name: str, keys: Sequence[str], args: Sequence[Any], closing: bool = False
        ) -> list[Any]: ...

        async def _eval_many(self, name: str, calls: Sequence[Call], closing: bool = False) -> list[list[Any]]: ...

    async def erase_session(self, scope: Scope, now: float, dry_run: bool = False) -> int:
        """Delete every key of the session, whatever its state (one script); the count of its live keys. A later
        call finds the session missing here and asks the durable store, which no longer knows it either."""
        args = [repr(float(now)), "1" if dry_run else "0"]
        reply = await self._eval("erase", self.all_keys(scope), args, closing=not dry_run)
        return int(reply[1])

    async def leftover(self, scope: Scope) -> str | None:
        """What the session's keys note they were made from ('' if nothing), if Redis holds a session of this scope
        that is not a spawn's staging; None if it holds none (``lua/erase_leftover.lua``, read only)."""
        reply = await self._eval("erase_leftover", self.all_keys(scope), ["probe", ""])
        return str(reply[1]) if reply[0] == "found" else None

    async def erase_leftover(self, scope: Scope, noted: str) -> int:
        """Delete what is left of a session the durable store no longer holds, if its keys still note ``noted`` (what
        :meth:`leftover` read), but a spawn's staged state and the note of imports staged for it (one script,
        ``lua/erase_leftover.lua``); the count of keys deleted."""
        reply = await self._eval("erase_leftover", self.all_keys(scope), ["erase", noted], closing=True)
        return int(reply[1]) if reply[0] == "ok" else 0

    async def erase_closed(self, scope: Scope, recorded: Incarnation) -> bool:
        """Delete the session's keys if they are ``recorded``'s, or only a terminated marker noting no incarnation (one
        script, ``lua/erase_closed.lua``); whether anything was deleted."""
        reply = await self._eval("erase_closed", self.all_keys(scope), [incarnation(recorded)], closing=True)
        return bool(int(reply[1]))

    async def erase(
        self, project_id: UUID, agent_instance_id: UUID | None, session_id: str | None, now: float, dry_run: bool
    ) -> tuple[int, int]:
        """Delete the keys of every session of the project (of one agent, or one session) that Redis holds, found by
        ``SCAN`` over the key layout's prefix in batches (never ``KEYS``; in Cluster, on every primary), then one
        script per session, a batch of them in one pipeline that waits for a replica once (:mod:`.replication`).
        Returns the live keys and the sessions removed (with ``dry_run``: that would be); the keys
        a crashed import left staged (:mod:`.staging`) are erased too, but are neither sessions nor live keys."""
        pattern = "{}:{{{}/{}/{}}}:*".format(
            _glob_escape(self.key_prefix), project_id, agent_instance_id or "*", session_id or "*"
        )
        bases: set[str] = set()
        args = [repr(float(now)), "1" if dry_run else "0"]
        try:
            async for key in self._client.scan_iter(match=pattern, count=SCAN_BATCH):
                name = key.decode() if isinstance(key, bytes) else str(key)
                bases.add(name.rsplit(":", 1)[0])
        except Exception as exc:
            raise as_service_error("scan", exc) from exc
        live = sessions = 0
        ordered = sorted(bases)
        for start in range(0, len(ordered), SCAN_BATCH):  # a pipeline per batch, which waits for a replica once
            batch = ordered[start : start + SCAN_BATCH]
            calls = [(all_keys_of(base), args) for base in batch]
            replies = await self._eval_many("erase", calls, closing=not dry_run)
            for base, reply in zip(batch, replies, strict=True):
                # A session's keys, not "...}:import:<token>" (staged by an import), nor only its order key ``g`` or a
                # copy that outlived its own keys (they expire later): a session counts if Redis held it.
                if not base.rpartition("}")[2] and int(reply[2]):
                    live += int(reply[1])
                    sessions += 1
        return live, sessions
