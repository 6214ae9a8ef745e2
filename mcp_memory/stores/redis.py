"""Working memory in Redis (standalone, Sentinel or Cluster): one round trip per store call.

Key layout (``P`` = ``redis_key_prefix``; the braces are a Cluster hash tag, so one session's keys share a
hash slot and one Lua script can touch all of them, also in Cluster)::

    P:{<project_id>/<agent_instance_id>/<session_id>}:m   string  "o" open, "s:<token>:<lease end>" sealed by the
                                                          terminate <token> ("s": by nobody), "t" terminated (or
                                                          absent)
    P:{<project_id>/<agent_instance_id>/<session_id>}:v   hash    key -> value (JSON text, never decoded)
    P:{<project_id>/<agent_instance_id>/<session_id>}:x   zset    key -> expires_at (only keys with a TTL)
    P:{<project_id>/<agent_instance_id>/<session_id>}:i   string  the durable session a re-open was made from

Every method is one ``EVALSHA`` of a Lua script (falling back to ``EVAL`` once if the server forgot the script,
e.g. after a restart), so each is atomic and costs one round trip whatever the number of keys. Redis 7.0 has
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
under way; then the call goes on. What was written after that checkpoint lived only in Redis and is gone; that
is the price of running Redis without persistence. The other way round, ``open`` (spawn: the durable store has
just created the session) starts from exactly the initial items, whatever a Redis that outlived its durable
store still held under that scope, with one exception: a call that came between spawn's durable create and its
``open`` found the session missing and re-opened it from the durable store, and what it wrote was acknowledged.
A re-open notes which durable session it was made from (``i``: its creation time); when ``open`` finds the
session re-opened from the very session it is opening, it keeps what is there and adds the initial items whose
keys are not (as if spawn had created the session empty and written its initial state right after; the key
limit is not enforced on these, so a session can exceed it by the keys written in that window), or refuses
with ``conflict`` if a terminate sealed it meanwhile.

Once the durable record says terminated, terminate marks ``m`` terminated ("t"): no seal, unseal, restore or
re-open changes that (an unseal of a failed terminate of another server, which read the durable record just before
this one recorded it, leaves it terminated; only ``open`` of another incarnation, spawn of a session whose durable
record was lost, starts afresh over it).

Connection errors are retried with a short exponential backoff (``redis_retries``); every call is bounded by
a deadline (within a tool call, what is left of the call's, :mod:`mcp_memory.deadlines`) and any connection
failure or timeout becomes :class:`~mcp_memory.errors.Unavailable`. The client
reconnects by itself when Redis is back.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
from redis import exceptions as rex
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff

from mcp_memory import deadlines
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, Internal, MemoryServiceError, NotFound, TooLarge, Unavailable
from mcp_memory.models import Item, Scope, SessionInfo, SessionStatus
from mcp_memory.stores.factory import ConfigurationError
from mcp_memory.stores.ports import DurableStore, Limits
from mcp_memory.stores.redis_staging import COMMIT_STAGED, DROP_STAGED, RedisStaging

logger = logging.getLogger(__name__)

RECLAIM_MARGIN_MS = 3_600_000
"""Real Redis expiry of a session whose keys all have a TTL: its latest expiry plus this margin."""
TOMBSTONE_MS = 86_400_000
"""How long the sealed marker of a cleared (terminated) session stays, to refuse late writes from Redis alone."""

Mode = Literal["standalone", "cluster", "sentinel"]

# -- Lua ---------------------------------------------------------------------------------------------------
# KEYS = {m, v, x} for every script. Replies are arrays whose first element is a status string:
# "ok", "missing" (Redis does not know the session), "sealed" or "full".
_LIB = """
local m, v, x = KEYS[1], KEYS[2], KEYS[3]
local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', x, '-inf', now)
  for i = 1, #dead, 500 do
    local j = math.min(i + 499, #dead)
    redis.call('HDEL', v, unpack(dead, i, j))
    redis.call('ZREM', x, unpack(dead, i, j))
  end
end
local function reclaim(now, margin)
  local n = redis.call('HLEN', v)
  if n == 0 then
    redis.call('DEL', x)
  elseif redis.call('ZCARD', x) == n then
    local last = redis.call('ZRANGE', x, -1, -1, 'WITHSCORES')
    local ms = math.ceil((tonumber(last[2]) - tonumber(now)) * 1000) + tonumber(margin)
    redis.call('PEXPIRE', v, ms)
    redis.call('PEXPIRE', x, ms)
  else
    redis.call('PERSIST', v)
    redis.call('PERSIST', x)
  end
end
"""

# ARGV: now, key, value, expires_at ('' = none), max_keys, margin
_SET = (
    _LIB
    + """
local state = redis.call('GET', m)
if not state or string.sub(state, 1, 1) == 'p' then return {'missing'} end
if state ~= 'o' then return {'sealed'} end
local now, key = ARGV[1], ARGV[2]
purge(now)
if redis.call('HEXISTS', v, key) == 0 and redis.call('HLEN', v) >= tonumber(ARGV[5]) then return {'full'} end
redis.call('HSET', v, key, ARGV[3])
if ARGV[4] == '' then redis.call('ZREM', x, key) else redis.call('ZADD', x, ARGV[4], key) end
reclaim(now, ARGV[6])
return {'ok'}
"""
)

# ARGV: now, key
_GET = """
local m, v, x = KEYS[1], KEYS[2], KEYS[3]
local st = redis.call('GET', m)
if not st or string.sub(st, 1, 1) == 'p' then return {'missing'} end
local value = redis.call('HGET', v, ARGV[2])
if not value then return {'ok'} end
local e = redis.call('ZSCORE', x, ARGV[2])
if e and tonumber(e) <= tonumber(ARGV[1]) then return {'ok'} end
return {'ok', value, e or ''}
"""

# ARGV: now, key, margin
_DELETE = (
    _LIB
    + """
local state = redis.call('GET', m)
if not state or string.sub(state, 1, 1) == 'p' then return {'missing'} end
if state ~= 'o' then return {'sealed'} end
local e = redis.call('ZSCORE', x, ARGV[2])
if redis.call('HDEL', v, ARGV[2]) == 0 then return {'ok', 0} end
redis.call('ZREM', x, ARGV[2])
reclaim(ARGV[1], ARGV[3])
if e and tonumber(e) <= tonumber(ARGV[1]) then return {'ok', 0} end
return {'ok', 1}
"""
)

# ARGV: now, prefix
_LIST = """
local m, v, x = KEYS[1], KEYS[2], KEYS[3]
local st = redis.call('GET', m)
if not st or string.sub(st, 1, 1) == 'p' then return {'missing'} end
local dead = {}
for _, k in ipairs(redis.call('ZRANGEBYSCORE', x, '-inf', ARGV[1])) do dead[k] = true end
local prefix = ARGV[2]
local n = #prefix
local out = {'ok'}
for _, k in ipairs(redis.call('HKEYS', v)) do
  if not dead[k] and (n == 0 or string.sub(k, 1, n) == prefix) then out[#out + 1] = k end
end
return out
"""

# ARGV: now
_SNAPSHOT = (
    _LIB
    + """
local st = redis.call('GET', m)
if not st or string.sub(st, 1, 1) == 'p' then return {'missing'} end
purge(ARGV[1])
return {'ok', redis.call('HGETALL', v), redis.call('ZRANGE', x, 0, -1, 'WITHSCORES')}
"""
)

# ARGV: now, tombstone_ms, terminated ('1': the durable record says so), keep ('1': the items stay)
# A terminated session's marker becomes 't' whatever it was (a failed terminate elsewhere may have unsealed it to
# 'o' meanwhile, or Redis may not know the session at all): only a spawn of another incarnation overwrites 't'. It
# lasts as long as the data it guards, a day (the tombstone) once the data is gone.
_CLEAR = """
local m, v, x, inc = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local state = redis.call('GET', m)
if state and string.sub(state, 1, 1) == 'p' then state = false end  -- a staged spawn: not a session yet
local terminated = ARGV[3] == '1'
if not state and not terminated then return {'ok', 0} end
local live = 0
if ARGV[4] ~= '1' then
  live = redis.call('HLEN', v) - redis.call('ZCOUNT', x, '-inf', ARGV[1])
  redis.call('DEL', v, x)
end
if terminated then
  local n, ms = redis.call('HLEN', v), tonumber(ARGV[2])
  if n > 0 and redis.call('ZCARD', x) < n then  -- items kept, one at least without a TTL: no expiry either
    redis.call('SET', m, 't')
    redis.call('PERSIST', inc)
    return {'ok', live}
  end
  if n > 0 then  -- items kept, each with a TTL: the marker outlives the last (Redis drops them after it)
    local last = redis.call('ZRANGE', x, -1, -1, 'WITHSCORES')
    ms = ms + math.max(0, math.ceil((tonumber(last[2]) - tonumber(ARGV[1])) * 1000))
  end
  redis.call('SET', m, 't', 'PX', ms)
  redis.call('PEXPIRE', inc, ms)
elseif string.sub(state, 1, 1) == 's' then
  redis.call('PEXPIRE', m, ARGV[2])
  redis.call('PEXPIRE', inc, ARGV[2])
end
return {'ok', live}
"""

# ARGV: 's' to seal, 'o' to unseal; the terminate's token; now; the lease's end (seal only). A sealed marker is
# 's:<token>:<lease end>', or 's' (no owner: re-opened sealed from the durable record). A seal succeeds if the session
# is open, sealed by this token or by nobody, or its owner's lease has run out ('held' otherwise); an unseal clears
# only this token's seal (or an ownerless one). A terminated session ('t') stays terminated.
_SEAL = """
local m = KEYS[1]
local state = redis.call('GET', m)
if not state or string.sub(state, 1, 1) == 'p' then return {'missing'} end
if state == 't' then return {'ok'} end
local owner, lease = string.match(state, '^s:([^:]*):(.*)$')
local mine = state == 's' or owner == ARGV[2]
if ARGV[1] == 's' then
  if not (mine or state == 'o' or (lease and tonumber(lease) <= tonumber(ARGV[3]))) then return {'held'} end
  redis.call('SET', m, 's:' .. ARGV[2] .. ':' .. ARGV[4])
elseif mine then
  redis.call('SET', m, 'o')
end
return {'ok'}
"""

# ARGV: incarnation. Spawn discarded the durable session ``incarnation`` (it could not open it): a re-open of it
# by another call is an orphan now, dropped (a later call finds the session unknown, as the durable store does).
_FORGET = """
local m, v, x, inc = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('GET', inc) ~= ARGV[1] then return {'ok', 0} end
redis.call('DEL', m, v, x, inc)
return {'ok', 1}
"""

# ARGV: mode, now, clear, max_keys, margin, state, n_plain, n_ttl, incarnation, spawn token, then n_plain (key,
# value) pairs, then n_ttl (key, value, expires_at) triples. Items expired at ``now`` are filtered out by the caller.
# mode "open": the durable store has just created the session (``incarnation``): open it with exactly these items
#   (whatever a Redis that outlived its durable store still held under this scope is stale), unless a re-open of
#   this very incarnation came first: then keep what it holds and add the items whose keys it has not ("sealed" if
#   a terminate sealed it). An empty ``incarnation`` asks: "stamp" if a re-open's incarnation is there to compare.
# mode "restore": the session must be open; clear ("1") or merge, within max_keys.
# mode "recover": only if Redis does not know the session: create it in ``state`` with exactly these items, and
#   note the durable ``incarnation`` it was made from. A staged spawn ("p:<token>") of the spawn token given (the
#   durable store says it completed) becomes the session as it is, in ``state``; another staged spawn is stale.
# mode "spawn": stage exactly these items for the spawn token ("p:<token>": unknown to every other script until
#   redis_staging's commit), over whatever Redis held under this scope (the durable row was just made for it).
_WRITE = (
    _LIB
    + """
local inc = KEYS[4]
local mode, now, clear, maxk, margin = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4]), ARGV[5]
local np, nt, incarnation, token = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], ARGV[10]
local p0 = 11
local t0 = p0 + 2 * np
local state = redis.call('GET', m)
if mode == 'recover' then
  if state and string.sub(state, 1, 1) == 'p' then
    if token ~= '' and state == 'p:' .. token then
      redis.call('SET', m, ARGV[6])
      if incarnation ~= '' then redis.call('SET', inc, incarnation) end
      purge(now)
      reclaim(now, margin)
      return {'ok', redis.call('HLEN', v)}
    end
    state = false
  end
  if state then return {'exists'} end
  clear = true
elseif mode == 'spawn' then
  redis.call('DEL', inc)
  clear = true
elseif mode == 'open' then
  local made_from = state and redis.call('GET', inc)
  if made_from and incarnation == '' then return {'stamp'} end
  if made_from and made_from == incarnation then
    if state ~= 'o' then return {'sealed'} end
    purge(now)
    local n = 0
    for i = p0, t0 - 1, 2 do
      if redis.call('HEXISTS', v, ARGV[i]) == 0 then
        redis.call('HSET', v, ARGV[i], ARGV[i + 1])
        n = n + 1
      end
    end
    for i = t0, t0 + 3 * nt - 1, 3 do
      if redis.call('HEXISTS', v, ARGV[i]) == 0 then
        redis.call('HSET', v, ARGV[i], ARGV[i + 1])
        redis.call('ZADD', x, ARGV[i + 2], ARGV[i])
        n = n + 1
      end
    end
    redis.call('DEL', inc)
    reclaim(now, margin)
    return {'ok', n}
  end
  redis.call('DEL', inc)
  clear = true
else
  if not state or string.sub(state, 1, 1) == 'p' then return {'missing'} end
  if state ~= 'o' then return {'sealed'} end
end
if clear then
  if np + nt > maxk then return {'full'} end
  redis.call('DEL', v, x)
else
  purge(now)
  local n = redis.call('HLEN', v)
  for i = p0, t0 - 1, 2 do
    if redis.call('HEXISTS', v, ARGV[i]) == 0 then n = n + 1 end
  end
  for i = t0, t0 + 3 * nt - 1, 3 do
    if redis.call('HEXISTS', v, ARGV[i]) == 0 then n = n + 1 end
  end
  if n > maxk then return {'full'} end
end
if mode == 'recover' then
  redis.call('SET', m, ARGV[6])
  if incarnation ~= '' then redis.call('SET', inc, incarnation) end
elseif mode == 'spawn' then
  redis.call('SET', m, 'p:' .. token)
elseif mode == 'open' and state ~= 'o' then
  redis.call('SET', m, 'o')
end
-- unpack() is limited by Lua's C stack (a few thousand values): write in chunks of 500 items.
local fields, members, plain = {}, {}, {}
local function flush()
  if #fields > 0 then redis.call('HSET', v, unpack(fields)) fields = {} end
  if #members > 0 then redis.call('ZADD', x, unpack(members)) members = {} end
  if #plain > 0 then redis.call('ZREM', x, unpack(plain)) plain = {} end
end
for i = p0, t0 - 1, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if not clear then plain[#plain + 1] = ARGV[i] end
  if #fields >= 1000 then flush() end
end
for i = t0, t0 + 3 * nt - 1, 3 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  members[#members + 1] = ARGV[i + 2]
  members[#members + 1] = ARGV[i]
  if #fields >= 1000 then flush() end
end
flush()
reclaim(now, margin)
return {'ok', np + nt}
"""
)


class _Script:
    """A Lua script sent by SHA (``EVALSHA``), and by body (``EVAL``) if the server does not have it cached."""

    def __init__(self, name: str, body: str) -> None:
        self.name = name
        self.body = body
        self.sha = hashlib.sha1(body.encode()).hexdigest()  # Redis names scripts by SHA-1


_SCRIPTS = {
    name: _Script(name, body)
    for name, body in (
        ("set", _SET),
        ("get", _GET),
        ("delete", _DELETE),
        ("list", _LIST),
        ("snapshot", _SNAPSHOT),
        ("clear", _CLEAR),
        ("seal", _SEAL),
        ("forget", _FORGET),
        ("write", _WRITE),
        ("commit", COMMIT_STAGED),
        ("drop", DROP_STAGED),
    )
}


# -- settings ----------------------------------------------------------------------------------------------
def _mode_of(settings: Settings) -> Mode:
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
        hosts, service, _db = _parse_sentinel(url)
        if not hosts or not service:
            raise ConfigurationError(
                "a Sentinel URL names the sentinels and the service: "
                "'redis+sentinel://host1:26379,host2:26379/service_name'"
            )
    else:
        try:
            parts = urlsplit(url)
            _ = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"MCP_MEMORY_REDIS_URL {redact_url(url)!r} is not a valid URL: {exc}") from exc
        if scheme != "unix" and not parts.hostname:
            raise ConfigurationError(f"MCP_MEMORY_REDIS_URL {redact_url(url)!r} names no host")
    if "{" in settings.redis_key_prefix or "}" in settings.redis_key_prefix:
        raise ConfigurationError(
            "MCP_MEMORY_REDIS_KEY_PREFIX must not contain '{' or '}' (they would change Redis Cluster hash slots)"
        )


def _parse_sentinel(url: str) -> tuple[list[tuple[str, int]], str, int]:
    """``redis+sentinel://[:password@]h1:26379,h2:26379/service[/db]`` -> sentinels, service, db."""
    rest = url.split("://", 1)[1]
    netloc, _, path = rest.partition("/")
    netloc = netloc.rpartition("@")[2]
    hosts: list[tuple[str, int]] = []
    for part in filter(None, netloc.split(",")):
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "26379")
        try:
            hosts.append((host.strip("[]"), int(port)))
        except ValueError:
            return [], "", 0
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    service = unquote(segments[0]) if segments else ""
    db = int(segments[1]) if len(segments) > 1 and segments[1].isdigit() else 0
    return hosts, service, db


def redact_url(url: str) -> str:
    """The URL without its password (for logs and ``doctor``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def _incarnation(info: SessionInfo) -> str:
    """Which durable session a Redis session was made from: a session id used again after its record was lost
    (or discarded) is another session, created at another time."""
    return info.created_at.isoformat()


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"Redis is not reachable or not answering ({type(exc).__name__}); retry later")


_TRANSIENT = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS")


def _as_service_error(script: str, exc: Exception) -> MemoryServiceError:
    """A redis-py failure as the error a caller sees: ``unavailable`` for everything that retrying later may
    fix (connection, timeout, out of memory, read-only replica, failover, permissions), ``internal`` otherwise.
    A script refused for lack of memory has written nothing (Redis refuses a script's first write, and once a
    script has written it is never stopped midway)."""
    if isinstance(exc, rex.OutOfMemoryError):
        logger.warning("Redis is out of memory: %s", exc)
        return Unavailable("Redis is out of memory (maxmemory reached); nothing was written; retry later")
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
        return _unavailable(exc)
    logger.error("Redis script %s failed", script, exc_info=exc)
    return Internal("the Redis working store failed unexpectedly; see the server log")


# -- the adapter -------------------------------------------------------------------------------------------
class RedisWorkingStore(RedisStaging):
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
        self.round_trips = 0
        """Requests sent to Redis (client-side count; a script cache miss counts its extra ``EVAL``)."""

    @classmethod
    def from_settings(cls, settings: Settings, durable: DurableStore | None = None) -> RedisWorkingStore:
        """A store for ``settings.redis_url`` (standalone, Sentinel, or Cluster with ``redis_cluster``)."""
        check_redis_settings(settings)
        url = settings.redis_url or ""
        mode = _mode_of(settings)
        timeout = settings.redis_timeout_seconds
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), settings.redis_retries)
        common: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "decode_responses": True,
            "retry": retry,
        }
        client: Any
        also_close: list[Any] = []
        if mode == "cluster":
            client = RedisCluster.from_url(
                url,
                max_connections=settings.redis_max_connections,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                decode_responses=True,
                retry=retry,
            )
        elif mode == "sentinel":
            hosts, service, db = _parse_sentinel(url)
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
            client = sentinel.master_for(
                service, db=db, max_connections=settings.redis_max_connections, **common, **auth
            )
            also_close = list(sentinel.sentinels)
        else:
            pool = BlockingConnectionPool.from_url(
                url, max_connections=settings.redis_max_connections, timeout=timeout, **common
            )
            client = Redis.from_pool(pool)  # the client owns the pool: closing it closes the connections
        return cls(
            client,
            mode=mode,
            key_prefix=settings.redis_key_prefix,
            timeout_seconds=timeout,
            retries=settings.redis_retries,
            durable=durable,
            url=redact_url(url),
            also_close=also_close,
        )

    # -- plumbing --------------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The redis-py client (``Redis`` or ``RedisCluster``)."""
        return self._client

    def keys(self, scope: Scope) -> tuple[str, str, str, str]:
        """The session's four Redis keys: state marker, values hash, expiry sorted set, and the incarnation a
        re-open was made from (every script is given all four)."""
        base = f"{self.key_prefix}:{{{scope.project}/{scope.agent}/{scope.session_id}}}"
        return f"{base}:m", f"{base}:v", f"{base}:x", f"{base}:i"

    async def start(self) -> None:
        """Load the scripts into Redis's cache. A Redis that is down now is not fatal: calls answer
        ``unavailable`` until it is back (scripts are sent again then if it forgot them)."""
        try:
            with anyio.fail_after(self._deadline):
                for script in _SCRIPTS.values():
                    await self._client.script_load(script.body)
        except Exception as exc:
            logger.warning("Redis at %s is not reachable at start-up (%s); will retry on each call", self._url, exc)

    async def close(self) -> None:
        if not self._owns_client:
            return
        for client in (self._client, *self._also_close):
            try:
                await client.aclose()
            except Exception:
                logger.debug("closing a Redis client failed", exc_info=True)

    async def ping(self) -> dict[str, Any]:
        """Reachability, version and mode, for ``mcp-memory doctor`` (never raises)."""
        facts: dict[str, Any] = {"backend": "redis", "url": self._url, "mode": self.mode, "key_prefix": self.key_prefix}
        try:
            with anyio.fail_after(self._deadline):
                info = await self._client.info("server")
                if self.mode == "cluster":
                    cluster = await self._client.cluster_info()
                    facts["cluster_state"] = cluster.get("cluster_state")
                    facts["cluster_known_nodes"] = cluster.get("cluster_known_nodes")
                    facts["nodes"] = len(self._client.get_nodes())
        except Exception as exc:
            facts.update(reachable=False, error=str(_unavailable(exc)))
            return facts
        if info and all(isinstance(v, dict) for v in info.values()):  # cluster: one reply per node
            info = next(iter(info.values()))
        facts.update(reachable=True, version=info.get("redis_version"), server_mode=info.get("redis_mode"))
        return facts

    async def _eval(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> list[Any]:
        """Run one script: one round trip (two if Redis had forgotten the script)."""
        script = _SCRIPTS[name]
        # Within a tool call, what is left of the call's deadline, if less than our own (mcp_memory.deadlines).
        # A request cut off mid-way is dropped by redis-py with its connection (never reused half-read).
        limit = deadlines.step_limit(self._deadline)
        if limit <= 0:
            raise Unavailable(deadlines.deadline_message("Redis"))
        try:
            with anyio.fail_after(limit):
                try:
                    self.round_trips += 1
                    reply = await self._client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                except rex.NoScriptError:
                    self.round_trips += 1
                    reply = await self._client.execute_command("EVAL", script.body, len(keys), *keys, *args)
        except MemoryServiceError:
            raise
        except TimeoutError as exc:
            if deadlines.spent():
                logger.warning("Redis script %s cut off by the call's deadline", name)
                raise Unavailable(deadlines.deadline_message("Redis")) from exc
            raise _as_service_error(name, exc) from exc
        except Exception as exc:
            raise _as_service_error(name, exc) from exc
        result: list[Any] = reply
        return result

    async def _recover(self, scope: Scope, now: float, state: str = "o") -> Literal["ok", "none", "terminated"]:
        """Redis does not know the session: re-open it from the durable store (see the module docstring)."""
        if self.durable is None:
            return "none"
        info = await self.durable.get_session(scope)
        if info is None:
            return "none"
        if info.status == SessionStatus.TERMINATED:
            return "terminated"
        if info.sealed:  # a terminate is under way (or was cut off): it stays sealed, as on the durable store
            state = "s"
        checkpoint = await self.durable.get_checkpoint(scope, None)
        items = checkpoint.items if checkpoint is not None else {}
        made_by = info.spawn_token or ""  # a staged state of this spawn is the session's initial state: kept
        args = self._item_args("recover", now, True, len(items) + 1, items, state, _incarnation(info), made_by)
        reply = await self._eval("write", self.keys(scope), args)
        if reply[0] == "ok":  # (not "exists": a concurrent call re-opened it first)
            logger.warning(
                "Redis had lost session %s; re-opened it with checkpoint %s (%d items)",
                scope,
                checkpoint.info.checkpoint_id if checkpoint else None,
                reply[1],
            )
        return "ok"

    async def _writable(self, scope: Scope, now: float, name: str, args: Sequence[Any]) -> list[Any]:
        """Run a write script; on "missing" re-open the session from the durable store and run it again."""
        reply = await self._eval(name, self.keys(scope), args)
        if reply[0] == "missing":
            found = await self._recover(scope, now)
            if found == "none":
                raise NotFound(f"session '{scope.session_id}' does not exist for this agent; call spawn first")
            if found == "terminated":
                raise Conflict(f"session '{scope.session_id}' is terminated and accepts no writes")
            reply = await self._eval(name, self.keys(scope), args)
        if reply[0] == "sealed":
            raise await self._sealed(scope)
        if reply[0] == "missing":  # lost again between the two calls: let the caller retry
            raise Unavailable("Redis lost this session's working memory while it was being re-opened; retry")
        return reply

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

    @staticmethod
    def _item_args(
        mode: str,
        now: float,
        clear: bool,
        max_keys: int,
        items: Mapping[str, Item],
        state: str = "o",
        incarnation: str = "",
        token: str = "",
    ) -> list[Any]:
        plain: list[str] = []
        ttl: list[Any] = []
        for key, it in items.items():
            if it.expires_at is None:
                plain += (key, it.value)
            elif it.expires_at > now:
                ttl += (key, it.value, repr(float(it.expires_at)))
        return [
            mode,
            repr(float(now)),
            "1" if clear else "0",
            max_keys,
            RECLAIM_MARGIN_MS,
            state,
            len(plain) // 2,
            len(ttl) // 3,
            incarnation,
            token,
            *plain,
            *ttl,
        ]

    @staticmethod
    def _too_large(limits: Limits, what: str) -> TooLarge:
        return TooLarge(f"{what} would exceed the limit of {limits.max_keys} keys per session; nothing was written")

    # -- the port --------------------------------------------------------------------------------------
    async def open(self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits) -> int:
        """Open the session spawn has just created durably (see the module docstring): with exactly ``items``,
        or, if a call re-opened it from the durable store first, keeping what that call wrote. Returns the count
        of items written. ``Conflict`` if a terminate has sealed it meanwhile."""
        args = self._item_args("open", now, True, limits.max_keys, items)
        if args[6] + args[7] > limits.max_keys:
            raise self._too_large(limits, f"{args[6] + args[7]} keys")
        reply = await self._eval("write", self.keys(scope), args)
        if reply[0] == "stamp":  # re-opened by another call: from this session, or from a stale one?
            info = await self.durable.get_session(scope) if self.durable is not None else None
            args[8] = _incarnation(info) if info is not None else "-"  # "-" matches no incarnation
            reply = await self._eval("write", self.keys(scope), args)
        if reply[0] == "sealed":
            raise await self._sealed(scope)
        if reply[0] == "full":
            raise self._too_large(limits, "the initial state")
        return int(reply[1])

    async def forget(self, scope: Scope, session: SessionInfo) -> None:
        await self._eval("forget", self.keys(scope), [_incarnation(session)])

    async def seal(self, scope: Scope, token: str, now: float, lease_seconds: float) -> None:
        args = ["s", token, repr(float(now)), repr(float(now + lease_seconds))]
        reply = await self._eval("seal", self.keys(scope), args)
        if reply[0] == "missing":
            # Re-open it sealed by nobody (with its newest checkpoint, which terminate then consolidates); take it.
            await self._recover(scope, now, state="s")
            reply = await self._eval("seal", self.keys(scope), args)
        if reply[0] == "held":
            raise Conflict(
                f"a terminate of session '{scope.session_id}' is already in progress; retry "
                f"(if it was interrupted, its seal lapses within {lease_seconds:g} seconds)"
            )

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
            raise TooLarge(
                f"session '{scope.session_id}' holds {limits.max_keys} keys, the limit; "
                "delete some before adding new ones"
            )

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

    async def restore(self, scope: Scope, items: Mapping[str, Item], clear: bool, now: float, limits: Limits) -> int:
        args = self._item_args("restore", now, clear, limits.max_keys, items)
        if clear and args[6] + args[7] > limits.max_keys:
            raise TooLarge(f"{args[6] + args[7]} keys exceed the limit of {limits.max_keys} keys per session")
        reply = await self._writable(scope, now, "write", args)
        if reply[0] == "full":
            if clear:
                raise TooLarge(f"the checkpoint exceeds the limit of {limits.max_keys} keys per session")
            raise TooLarge(
                f"restoring without clearing would exceed {limits.max_keys} keys per session; nothing was restored"
            )
        return int(reply[1])

    async def clear(self, scope: Scope, now: float) -> int:
        reply = await self._eval("clear", self.keys(scope), [repr(float(now)), TOMBSTONE_MS, "0", "0"])
        return int(reply[1])

    async def mark_terminated(self, scope: Scope, now: float, clear: bool) -> int:
        args = [repr(float(now)), TOMBSTONE_MS, "1", "0" if clear else "1"]
        reply = await self._eval("clear", self.keys(scope), args)
        return int(reply[1])


__all__ = ["RECLAIM_MARGIN_MS", "TOMBSTONE_MS", "RedisWorkingStore", "check_redis_settings", "redact_url"]
