"""Working memory in Redis (standalone, Sentinel or Cluster): one round trip per store call.

Key layout (``P`` = ``redis_key_prefix``; the braces are a Cluster hash tag, so one session's keys share a
hash slot and one Lua script can touch all of them, also in Cluster)::

    P:{<project_id>/<agent_instance_id>/<session_id>}:m   string  "o" open, "s:<token>:<lease end>" sealed by the
                                                          terminate <token> ("s": by nobody), "t" terminated (or
                                                          absent), "p:<token>" staged by a spawn (:mod:`.staging`)
    P:{<project_id>/<agent_instance_id>/<session_id>}:v   hash    key -> value (JSON text, never decoded)
    P:{<project_id>/<agent_instance_id>/<session_id>}:x   zset    key -> expires_at (only keys with a TTL)
    P:{<project_id>/<agent_instance_id>/<session_id>}:i   string  the durable session a spawn's commit, a re-open or
                                                          an import's switch made it from (its creation time);
                                                          a terminate's seal notes it where an earlier release
                                                          left none; pauses and resumes land only on it
                                                          (:mod:`.copies`, WHICH SESSION)
    P:{<project_id>/<agent_instance_id>/<session_id>}:cv, :cx, :ct    a pause's copy of v and x, and its tag
                                                          (:mod:`.copies`: what a resume of that checkpoint takes)
    P:{<project_id>/<agent_instance_id>/<session_id>}:g   string  the order of its latest pause or resume
                                                          (:mod:`.copies`: the durable records carry it)
    P:{<project_id>/<agent_instance_id>/<session_id>}:im  hash    token -> incarnation of each import that staged
                                                          the session and has not switched it in (:mod:`.staging`:
                                                          a re-open takes that staged state; a switch whose token
                                                          a deletion erased leaves the session deleted)
    P:{<project_id>/<agent_instance_id>/<session_id>}:r   hash    nonce -> "1" of each call re-opening the session from
                                                          the durable store (below; ``lua/claim.lua``)

Every method is one ``EVALSHA`` of a Lua script (``lua/``, run by :mod:`.scripts`: loaded again if the server
forgot it, e.g. after a restart), so each is atomic and costs one round trip whatever the number of keys (a pause
is its snapshot, which also makes its copy). Redis 7.0 has
no per-field hash expiry, so TTL lives in the ``x`` sorted set: scripts compare scores with the caller's
``now`` (never Redis server time, so TTL behaves exactly as on every other adapter), and write scripts and
``snapshot`` purge the expired entries they find. Memory of sessions nobody touches again is reclaimed by a
real Redis expiry on ``v``/``x`` whenever every key left has a TTL (the latest expiry plus a margin, so a live
key is never cut early), and by terminate, which deletes the keys (a terminated session's ``m`` lingers a day).

The durable store (SQL) is the authority on whether a session exists and whether it is terminated; Redis is
where its live state is. When Redis has lost a session (restarted without persistence, a flush, eviction, a
failover to a replica that had not received it), the first call that touches it notices ``m`` is missing and
asks the durable store: an unknown session stays unknown (writes ``not_found``, reads see nothing), a
terminated one stays closed (writes ``conflict``), and a running or paused one is **re-opened with its newest
checkpoint** (empty if it has none), as a resume would do, and sealed if the durable record says a terminate is
under way, with its order key at least the order of the transition last recorded (:mod:`.copies`); then the call
goes on. What was written after that checkpoint lived only in Redis and is gone; that
is the price of running Redis without persistence. A re-open is never written for a session deleted meanwhile
(``delete_session``, ``forget``, a discarded spawn), however late its write lands: it writes only under a claim
(``r``) that every deletion erases with the session's keys (:mod:`.reopen`).

The other way round, ``open`` (spawn: the durable store has just created the session) starts from exactly the
initial items, whatever a Redis that outlived its durable store still held under that scope, with one exception: a
call that came between spawn's durable create and its ``open`` found the session missing and re-opened it from the
durable store, and what it wrote was acknowledged.
A re-open notes which durable session it was made from (``i``: its creation time), as a spawn's commit does; when
``open`` finds the session re-opened from the very session it is opening, it keeps what is there and adds the
initial items whose keys are not (as if spawn had created the session empty and written its initial state right
after; the key limit is not enforced on these, so a session can exceed it by the keys written in that window), or
refuses with ``conflict`` if a terminate sealed it meanwhile.

Once the durable record says terminated, terminate marks ``m`` terminated ("t"): no seal, unseal, restore or
re-open changes that (an unseal of a failed terminate of another server, which read the durable record just before
this one recorded it, leaves it terminated; only ``open`` of another incarnation, spawn of a session whose durable
record was lost, starts afresh over it). That marking (and its clear) is of the session the record is of only: one
deleted and spawned again under its id meanwhile, staged, noting another ``i`` or noting none (an earlier release's:
every session this release writes notes one by the time it is terminated), is left alone (``lua/clear.lua``).
Where Redis can fail over, the closing scripts (that marking, and the erases of delete_session and forget) answer
only once a replica has them (:mod:`.replication`): a failover to a replica that lags keeps a present but older
marker, which no call asks the durable store about.

Connection errors are retried with a short exponential backoff (``redis_retries``); every call is bounded by
a deadline (within a tool call, what is left of the call's, :mod:`mcp_memory.deadlines`) and any connection
failure or timeout becomes :class:`~mcp_memory.errors.Unavailable`. The client
reconnects by itself when Redis is back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import anyio

from mcp_memory import deadlines
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, MemoryServiceError, TooLarge, Unavailable
from mcp_memory.models import Item, PackedState, Restoration, Scope, SessionInfo, SessionStatus, pack_state
from mcp_memory.stores.ports import DurableStore, Incarnation, Limits, respawned, spawn_first
from mcp_memory.stores.redis import health
from mcp_memory.stores.redis.connection import (
    Mode,
    as_service_error,
    connect,
    out_of_memory,
    redact_url,
    unavailable,
)
from mcp_memory.stores.redis.copies import RedisPauseCopies, order_of, packed_snapshot
from mcp_memory.stores.redis.erasure import RedisErasure
from mcp_memory.stores.redis.reopen import RedisReopen
from mcp_memory.stores.redis.replication import Call, ReplicaWait
from mcp_memory.stores.redis.scripts import (
    RECLAIM_MARGIN_MS,
    TOMBSTONE_MS,
    Scripts,
    incarnation,
    item_args,
    noted,
    too_large,
)
from mcp_memory.stores.redis.staging import RedisStaging
from mcp_memory.stores.sql.rules import keys_exceed, keys_full, restore_overflows, terminate_in_progress
from mcp_memory.summary import counted

logger = logging.getLogger(__name__)


# -- the adapter -------------------------------------------------------------------------------------------
class RedisWorkingStore(RedisReopen, RedisStaging, RedisPauseCopies, RedisErasure):
    """The :class:`~mcp_memory.stores.ports.WorkingStore` on Redis (see the module docstring for the design).

    ``durable`` is the durable store, consulted only off the hot path: to keep ``unseal`` a no-op once a
    session is terminated, and to re-open sessions Redis has lost. Without it, Redis alone decides.
    """

    def __init__(
        self,
        client: Any,
        *,
        mode: Mode = "standalone",
        key_prefix: str = "mcpmem",
        timeout_seconds: float = 2.0,
        retries: int = 2,
        durable: DurableStore | None = None,
        url: str = "",
        owns_client: bool = True,
        also_close: Sequence[Any] = (),
    ) -> None:
        self._client = client
        self._also_close = list(also_close)
        self.mode: Mode = mode
        self.key_prefix = key_prefix
        self.durable = durable
        self._url = url
        self._owns_client = owns_client
        # A whole call, retries and backoff included, never takes longer than this.
        self._deadline = timeout_seconds * (retries + 1) + 0.5 * retries + 0.5
        self._timeout = timeout_seconds
        self._scripts = Scripts(client)
        self._replicas = ReplicaWait(client, mode, self._scripts)

    @property
    def round_trips(self) -> int:
        """Requests sent to Redis by the store's calls (client-side count; a script Redis had forgotten counts its
        ``SCRIPT LOAD`` and second ``EVALSHA``)."""
        return self._scripts.sent

    @classmethod
    def from_settings(cls, settings: Settings, durable: DurableStore | None = None) -> RedisWorkingStore:
        """A store for ``settings.redis_url`` (standalone, Sentinel, or Cluster with ``redis_cluster``)."""
        client, mode, also_close = connect(settings)
        return cls(
            client,
            mode=mode,
            key_prefix=settings.redis_key_prefix,
            timeout_seconds=settings.redis_timeout_seconds,
            retries=settings.redis_retries,
            durable=durable,
            url=redact_url(settings.redis_url or ""),
            also_close=also_close,
        )

    # -- plumbing --------------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The redis-py client (``Redis`` or ``RedisCluster``)."""
        return self._client

    def keys(self, scope: Scope) -> tuple[str, str, str, str]:
        """The session's four Redis keys: state marker, values hash, expiry sorted set, and the incarnation a
        spawn's commit or a re-open made it from (every script is given all four)."""
        base = f"{self.key_prefix}:{{{scope.project}/{scope.agent}/{scope.session_id}}}"
        return f"{base}:m", f"{base}:v", f"{base}:x", f"{base}:i"

    async def start(self) -> None:
        """Load the scripts into Redis's cache. A Redis that is down now is not fatal: calls answer
        ``unavailable`` until it is back (scripts are sent again then if it forgot them)."""
        try:
            with anyio.fail_after(self._deadline):
                await self._scripts.preload()
                evicting = health.evicting(await health.eviction_policies(self._client, self.mode))
        except Exception as exc:
            logger.warning("Redis at %s is not reachable at start-up (%s); will retry on each call", self._url, exc)
            return
        if evicting is not None:
            logger.warning(
                "Redis at %s evicts keys (maxmemory-policy %s): it can evict one of a session's keys and keep the "
                "others, which no call can tell from memory the session wrote (its values or TTLs silently gone); "
                "run it with maxmemory-policy noeviction (docs/configuration.md)",
                self._url,
                evicting,
            )

    async def close(self) -> None:
        if not self._owns_client:
            return
        for client in (self._client, *self._also_close):
            try:
                await client.aclose()
            except Exception:
                logger.debug("closing a Redis client failed", exc_info=True)

    async def ping(self) -> dict[str, Any]:
        """Reachability, version, mode and eviction policy, for ``mcp-memory doctor`` (never raises); ``/readyz``
        asks :meth:`probe`."""
        facts: dict[str, Any] = {"backend": "redis", "url": self._url, "mode": self.mode, "key_prefix": self.key_prefix}
        try:
            with anyio.fail_after(self._deadline * 2):  # (:func:`.health.ping` sends a few requests)
                facts.update(await health.ping(self._client, self.mode))
        except TimeoutError as exc:
            facts.update(reachable=False, error=str(unavailable(exc)))
        return facts

    async def probe(self) -> dict[str, Any]:
        """Reachability (and a Cluster's state) in one request, for ``/readyz`` (never raises); bounded by the
        deadline it runs under, if less than our own."""
        limit = deadlines.step_limit(self._deadline)
        try:
            with anyio.fail_after(max(limit, 0.0)):
                return await health.probe(self._client, self.mode)
        except TimeoutError as exc:
            return {"reachable": False, "error": str(unavailable(exc))}

    async def _eval(self, name: str, keys: Sequence[str], args: Sequence[Any], closing: bool = False) -> list[Any]:
        """Run one script: one round trip (three if Redis had forgotten the script). A ``closing`` one answers once a
        replica has it, where Redis is replicated (:mod:`.replication`)."""
        return (await self._eval_many(name, [(keys, args)], closing))[0]

    async def _eval_many(self, name: str, calls: Sequence[Call], closing: bool = False) -> list[list[Any]]:
        """Run a script once per call, more than one in one pipeline; closing ones wait for a replica once for all."""
        # Within a tool call, what is left of the call's deadline, if less than our own (mcp_memory.deadlines).
        # A request cut off mid-way is dropped by redis-py with its connection (never reused half-read).
        limit = deadlines.step_limit(self._deadline)
        if limit <= 0:
            raise Unavailable(deadlines.deadline_message("Redis"))
        try:
            with anyio.fail_after(limit):
                # The wait leaves half of the limit to the scripts (and stays within Redis's socket timeout).
                wait_ms = max(1, int(min(self._timeout, limit) * 500)) if closing else None
                if wait_ms is None and len(calls) == 1:
                    replies = [await self._scripts.run(name, *calls[0])]
                else:
                    replies = await self._replicas.run_many(name, calls, wait_ms)
        except MemoryServiceError:
            raise
        except TimeoutError as exc:
            if deadlines.spent():
                logger.warning("Redis script %s cut off by the call's deadline", name)
                raise Unavailable(deadlines.deadline_message("Redis")) from exc
            raise as_service_error(name, exc) from exc
        except Exception as exc:
            raise as_service_error(name, exc) from exc
        if any(reply and reply[0] == "oom" for reply in replies):  # refused whole before its first write (no_room)
            raise out_of_memory()
        return replies

    async def _writable(
        self, scope: Scope, now: float, name: str, args: Sequence[Any], keys: Sequence[str] | None = None
    ) -> list[Any]:
        """Run a write script (given ``keys``, else :meth:`keys`); on "missing" re-open the session from the durable
        store and run it again."""
        keys = self.keys(scope) if keys is None else keys
        reply = await self._eval(name, keys, args)
        if reply[0] == "missing":
            found = await self._recover(scope, now)
            if found == "none":
                raise spawn_first(scope)
            if found == "terminated":
                raise Conflict(f"session '{scope.session_id}' is terminated and accepts no writes")
            reply = await self._eval(name, keys, args)
        if reply[0] == "sealed" and await self._cleared_stale_seal(scope, reply[1]):
            reply = await self._eval(name, keys, args)
        if reply[0] == "sealed":
            raise await self._sealed(scope)
        if reply[0] == "missing":
            # Gone again between the two calls: a deletion (of any server) that erased the re-opened session after
            # the re-open read its record (done: not_found; under way, its seal on the record: conflict), or Redis
            # losing it once more (only that is worth a retry).
            info = await self.durable.get_session(scope) if self.durable is not None else None
            if self.durable is not None and info is None:
                raise spawn_first(scope)
            if info is not None and (info.sealed or info.status == SessionStatus.TERMINATED):
                raise await self._sealed(scope)
            raise Unavailable("Redis lost this session's working memory while it was being re-opened; retry")
        return reply

    async def _cleared_stale_seal(self, scope: Scope, marker: str) -> bool:
        """Redis holds the session sealed (``marker``): clear the seal if it is stale, True if it was cleared.

        A terminate seals the durable record before Redis, so a Redis seal by token X was made while X held the
        durable seal; if the durable record, read after Redis showed X's seal, no longer says X holds it, X has
        failed and unsealed there (or another terminate took the seal over) and its Redis seal can only be one that
        landed late: a script sent just before Redis stalled, run after the failed terminate gave up and undid its
        durable seal. Without this it would refuse writes and terminates until its lease ran out. The seal is
        cleared only if X still holds it in Redis (compare and delete), never a seal another terminate has made
        since. A seal with no owner (a re-open of a durably sealed session) is stale once the durable record is
        not sealed at all."""
        if self.durable is None or not marker.startswith("s"):
            return False
        owner = marker.split(":")[1] if marker.startswith("s:") else ""
        info = await self.durable.get_session(scope)
        if info is None or info.status == SessionStatus.TERMINATED:
            return False
        if info.sealed and (info.seal_token == owner or not owner):
            return False  # the seal's owner still holds the durable seal (or one it may take over): not stale
        await self._eval("seal", self.keys(scope), ["c", owner])
        logger.warning(
            "cleared the stale Redis seal of a terminate of %s that had failed (its durable seal was undone)", scope
        )
        return True

    async def _sealed(self, scope: Scope) -> Conflict:
        """The error for a write to a sealed session: terminated, or a terminate is under way (or was cut off)."""
        info = await self.durable.get_session(scope) if self.durable is not None else None
        if info is not None and info.status == SessionStatus.TERMINATED:
            return Conflict(f"session '{scope.session_id}' is terminated and accepts no writes")
        return Conflict(
            f"session '{scope.session_id}' is being terminated and accepts no writes "
            "(if a terminate was interrupted, call terminate again to finish it once its seal lapses)"
        )

    async def _readable(self, scope: Scope, now: float, name: str, args: Sequence[Any]) -> list[Any] | None:
        """Run a read script; None if the session does not exist (or is terminated and its state gone)."""
        reply = await self._eval(name, self.keys(scope), args)
        if reply[0] == "missing":
            if await self._recover(scope, now) != "ok":
                return None
            reply = await self._eval(name, self.keys(scope), args)
            if reply[0] == "missing":
                return None
        return reply

    # -- the port --------------------------------------------------------------------------------------
    async def open(self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits) -> int:
        """Open the session spawn has just created durably (see the module docstring): with exactly ``items``,
        or, if a call re-opened it from the durable store first, keeping what that call wrote. Returns the count
        of items written. ``Conflict`` if a terminate has sealed it meanwhile."""
        args = item_args("open", now, True, limits.max_keys, items)
        if args[6] + args[7] > limits.max_keys:
            raise too_large(limits, counted(args[6] + args[7], "key"))
        reply = await self._eval("write", self.keys(scope), args)
        if reply[0] == "stamp":  # re-opened by another call: from this session, or from a stale one?
            info = await self.durable.get_session(scope) if self.durable is not None else None
            args[8] = incarnation(info) if info is not None else "-"  # "-" matches no incarnation
            reply = await self._eval("write", self.keys(scope), args)
        if reply[0] == "sealed" and await self._cleared_stale_seal(scope, reply[1]):
            reply = await self._eval("write", self.keys(scope), args)
        if reply[0] == "sealed":
            raise await self._sealed(scope)
        if reply[0] == "full":
            raise too_large(limits, "the initial state")
        return int(reply[1])

    async def forget(self, scope: Scope, session: SessionInfo) -> None:
        await self._eval("forget", self.all_keys(scope), [incarnation(session)], closing=True)

    async def seal(
        self, scope: Scope, token: str, now: float, lease_seconds: float, made_from: Incarnation | None = None
    ) -> bool:
        # A session that does not note the durable session it is (``i``: made by an earlier release) notes
        # ``made_from`` from now on, so that this terminate's last step (lua/clear.lua) knows it for its own.
        args = ["s", token, repr(float(now)), repr(float(now + lease_seconds))]
        args.append("" if made_from is None else incarnation(made_from))
        reply = await self._eval("seal", self.keys(scope), args)
        if reply[0] == "missing":
            # Re-open it sealed by nobody (with its newest checkpoint, which terminate then consolidates); take it.
            await self._recover(scope, now, state="s")
            reply = await self._eval("seal", self.keys(scope), args)
        if reply[0] == "held" and await self._cleared_stale_seal(scope, reply[1]):
            reply = await self._eval("seal", self.keys(scope), args)
        if reply[0] == "held":
            raise terminate_in_progress(scope, lease_seconds)
        return bool(reply[0] != "terminated")

    async def unseal(self, scope: Scope, token: str) -> None:
        if self.durable is not None:
            info = await self.durable.get_session(scope)
            if info is not None and info.status == SessionStatus.TERMINATED:
                return
        # The script leaves a terminated session ('t') alone: a terminate of another server recorded since the read
        # above has marked it (or will: its ``mark_terminated`` overwrites this 'o').
        # Only this terminate's own seal is cleared: one another terminate has made or taken over since stays.
        await self._eval("seal", self.keys(scope), ["o", token])  # "missing" is fine: it re-opens unsealed

    async def set(self, scope: Scope, key: str, item: Item, now: float, limits: Limits) -> None:
        expires = "" if item.expires_at is None else repr(float(item.expires_at))
        args = [repr(float(now)), key, item.value, expires, limits.max_keys, RECLAIM_MARGIN_MS]
        reply = await self._writable(scope, now, "set", args)
        if reply[0] == "full":
            raise keys_full(scope, limits)

    async def get(self, scope: Scope, key: str, now: float) -> Item | None:
        reply = await self._readable(scope, now, "get", [repr(float(now)), key])
        if reply is None or len(reply) < 3:
            return None
        return Item(reply[1], float(reply[2]) if reply[2] else None)

    async def delete(self, scope: Scope, key: str, now: float) -> bool:
        reply = await self._writable(scope, now, "delete", [repr(float(now)), key, RECLAIM_MARGIN_MS])
        return bool(reply[1])

    async def list_keys(self, scope: Scope, prefix: str, now: float) -> list[str]:
        reply = await self._readable(scope, now, "list", [repr(float(now)), prefix])
        return [] if reply is None else sorted(reply[1:])

    async def snapshot(self, scope: Scope, now: float) -> dict[str, Item]:
        reply = await self._readable(scope, now, "snapshot", [repr(float(now))])
        if reply is None:
            return {}
        flat, scored = reply[1], reply[2]
        keys, values = flat[0::2], flat[1::2]
        if not scored:  # no key has a TTL: the common case, built without a per-item Python loop
            return dict(zip(keys, map(Item, values), strict=True))
        expiry = {k: float(e) for k, e in zip(scored[0::2], scored[1::2], strict=True)}
        return {k: Item(val, expiry.get(k)) for k, val in zip(keys, values, strict=True)}

    async def snapshot_packed(self, scope: Scope, now: float) -> PackedState:
        """``snapshot`` as the checkpoint's packed state (:func:`.copies.packed_snapshot`: nothing per key in
        Python)."""
        reply = await self._readable(scope, now, "snapshot", [repr(float(now))])
        return pack_state([], [], ()) if reply is None else packed_snapshot(reply)

    async def restore_packed(
        self, scope: Scope, state: str, clear: bool, now: float, limits: Limits, made_from: datetime | None = None
    ) -> Restoration:
        """``restore`` of a checkpoint's stored state text, sent as one argument and decoded by the script (which
        leaves out the items expired at ``now``): no Python code per key, no argument per item. Ordered among the
        session's transitions (:mod:`.copies`), as a resume's restore. Refused (``Respawned``, nothing changed) if the
        working memory notes another durable session than ``made_from``, the one the checkpoint was read from."""
        args = ["restore", repr(float(now)), "1" if clear else "0", limits.max_keys, RECLAIM_MARGIN_MS, "o"]
        args += ["json", 0, noted(made_from), "", state]
        reply = await self._writable(scope, now, "write", args, self.all_keys(scope))
        if reply[0] == "other":
            raise respawned(scope.session_id, "resume")
        return Restoration(self._restored(reply, clear, limits), order_of(reply[2]))

    @staticmethod
    def _restored(reply: list[Any], clear: bool, limits: Limits) -> int:
        if reply[0] == "full":
            if clear:
                raise TooLarge(f"the checkpoint exceeds the limit of {counted(limits.max_keys, 'key')} per session")
            raise restore_overflows(limits)
        return int(reply[1])

    async def restore(self, scope: Scope, items: Mapping[str, Item], clear: bool, now: float, limits: Limits) -> int:
        args = item_args("restore", now, clear, limits.max_keys, items)
        if clear and args[6] + args[7] > limits.max_keys:
            raise keys_exceed(args[6] + args[7], limits)
        return self._restored(await self._writable(scope, now, "write", args), clear, limits)

    async def clear(self, scope: Scope, now: float) -> int:
        reply = await self._eval("clear", self.all_keys(scope), [repr(float(now)), TOMBSTONE_MS, "0", "0", "", ""])
        return int(reply[1])

    async def mark_terminated(self, scope: Scope, now: float, clear: bool, recorded: Incarnation | None) -> int:
        # Which session the record is of, for the script to leave another alone (lua/clear.lua): the terminate's
        # token (its seal in Redis names it) and the record's creation time (what a spawn's commit notes in i).
        token, made_from = "", ""
        if recorded is not None:
            token = recorded.seal_token or ""
            made_from = incarnation(recorded)
        args = [repr(float(now)), TOMBSTONE_MS, "1", "0" if clear else "1", token, made_from]
        reply = await self._eval("clear", self.all_keys(scope), args, closing=True)
        return int(reply[1])


__all__ = ["RedisWorkingStore"]
