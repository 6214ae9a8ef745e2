"""The Lua scripts of the Redis working store: one file per script in ``lua/``, run through redis-py's script
objects (``register_script``), which send ``EVALSHA`` and, if Redis has forgotten the script (a restart, ``SCRIPT
FLUSH``, a failover), load it and send ``EVALSHA`` again.

Every script is given the session's four keys (``KEYS = {m, v, x, i}``: see :mod:`.store`), and those that make, use
or drop a pause's copy (:mod:`.copies`) its three copy keys after them; all share one Cluster hash slot, so each
script runs on one node, also in Cluster. Replies are arrays whose first element is a status
string: "ok", "missing" (Redis does not know the session), "sealed" or "held" (with the marker met), "full", ...

:meth:`Scripts.preload` sends them all at start-up, so that a call costs one round trip from its first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from redis.commands.core import AsyncScript

from mcp_memory.errors import TooLarge
from mcp_memory.models import Item, SessionInfo
from mcp_memory.stores.records import Incarnation, Limits
from mcp_memory.summary import counted

NAMES = (
    "set",
    "get",
    "delete",
    "list",
    "snapshot",
    "clear",
    "seal",
    "forget",
    "write",
    "commit",
    "drop",
    "erase",
    "erase_closed",
    "erase_leftover",
    "switch",
    "take",
    "drop_copy",
    "adopt",
    "claim",
)
"""Every script, by the name of its file in ``lua/`` (and the name the store runs it by)."""
USE_LIB = frozenset({"set", "delete", "snapshot", "write", "switch", "take", "adopt", "clear"})
"""The scripts that start with ``lua/lib.lua`` (its locals and functions), as if it were part of them."""


RECLAIM_MARGIN_MS = 3_600_000
"""Real Redis expiry of a session whose keys all have a TTL: its latest expiry plus this margin."""
STAGING_TTL_MS = 86_400_000
"""How long an import's staged working memory waits for its switch: left by a crashed import, it goes by itself."""
COPY_MIN_KEYS = 250
"""A pause copies a state of at least this many keys (:mod:`.copies`): below, taking the copy saves a resume 0.2 ms or
less (docs/benchmarks.md, measured at 10 and 100 keys), not worth doubling the session's memory in Redis."""
COPY_MS = 86_400_000
"""The longest a pause's copy (:mod:`.copies`) waits for its resume (less if the session's keys expire sooner)."""
REOPEN_CLAIM_MS = 600_000
"""How long a re-open's claim (``lua/claim.lua``) lasts: far longer than the durable read and the write it covers (a
write arriving later lands nothing, and its call re-opens again); it goes by itself after its re-open."""
TOMBSTONE_MS = 86_400_000
"""How long the sealed marker of a cleared (terminated) session stays, to refuse late writes from Redis alone."""


def incarnation(info: SessionInfo | Incarnation) -> str:
    """Which durable session a Redis session was made from: a session id used again after its record was lost,
    discarded or deleted is another session, created at another time."""
    return noted(info.created_at)


def noted(created_at: datetime | None) -> str:
    """A durable session's creation time as a Redis session notes it (``:i``) and the scripts compare it, as text
    ('': none): in UTC, so that one instant is one text whichever store or driver read it."""
    return "" if created_at is None else created_at.astimezone(UTC).isoformat()


def made_from_of(reply: bytes | str | None) -> datetime | None:
    """The durable session a session's working memory notes it was made from (``:i``) as a script answered it, read
    back (:func:`noted`'s inverse); None where it notes none (a session of an earlier release)."""
    if not reply:
        return None
    return datetime.fromisoformat(reply.decode() if isinstance(reply, bytes) else reply)


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def bodies() -> dict[str, str]:
    """Each script's full text, as sent to Redis."""
    lib = _read("lib")
    return {name: (lib + _read(name) if name in USE_LIB else _read(name)) for name in NAMES}


class _Counted:
    """The client as a script object uses it (``evalsha``, and ``script_load`` when Redis forgot the script),
    counting the requests it sends: the store's client-side ``round_trips``."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sent = 0

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.sent += 1
        return await self._client.evalsha(sha, numkeys, *keys_and_args)

    async def script_load(self, script: bytes | str | memoryview) -> Any:
        self.sent += 1
        return await self._client.script_load(script)


class Scripts:
    """The store's scripts, registered with its client (``Redis`` or ``RedisCluster``)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._counted = _Counted(client)
        self._scripts: dict[str, AsyncScript] = {name: client.register_script(body) for name, body in bodies().items()}

    @property
    def sent(self) -> int:
        """Requests sent to Redis by :meth:`run` (a forgotten script counts its ``SCRIPT LOAD`` and second try)."""
        return self._counted.sent

    async def preload(self) -> None:
        """Load every script into Redis's cache (in Cluster, on every primary)."""
        for script in self._scripts.values():
            await self._client.script_load(script.script)

    def sha(self, name: str) -> str:
        """The script's SHA1, as ``EVALSHA`` names it."""
        sha: str = self._scripts[name].sha
        return sha

    async def load(self, name: str) -> None:
        """Send one script to Redis again (it forgot it)."""
        await self._counted.script_load(self._scripts[name].script)

    def count(self) -> None:
        """Count one request sent outside :meth:`run` (a pipeline: :mod:`.replication`)."""
        self._counted.sent += 1

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> list[Any]:
        """Run one script: one round trip (three if Redis had forgotten it)."""
        # The script object takes any client with evalsha and script_load: ours counts the requests.
        reply: list[Any] = await self._scripts[name](keys, args, client=self._counted)  # type: ignore[arg-type]
        return reply


def item_args(
    mode: str,
    now: float,
    clear: bool,
    max_keys: int,
    items: Mapping[str, Item],
    state: str = "o",
    incarnation: str = "",
    token: str = "",
) -> list[Any]:
    """The arguments of the ``write`` script (see ``lua/write.lua``): its header, then the items without a TTL
    as key, value pairs and those with one as key, value, expiry triples (an item expired at ``now`` is left out)."""
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


def too_large(limits: Limits, what: str) -> TooLarge:
    """The refusal of a write that would take a session over its key limit."""
    return TooLarge(
        f"{what} would exceed the limit of {counted(limits.max_keys, 'key')} per session; nothing was written"
    )


__all__ = [
    "COPY_MIN_KEYS",
    "COPY_MS",
    "NAMES",
    "RECLAIM_MARGIN_MS",
    "REOPEN_CLAIM_MS",
    "STAGING_TTL_MS",
    "TOMBSTONE_MS",
    "USE_LIB",
    "Scripts",
    "bodies",
    "incarnation",
    "item_args",
    "made_from_of",
    "noted",
    "too_large",
]
