"""A pause's copy of the session's state in Redis, which a resume of that checkpoint takes instead of restoring its
text (:class:`~mcp_memory.stores.ports.PauseCopies`).

Restoring a checkpoint from its stored text costs the restore script a JSON decode of the whole state, and the text's
trip to Redis; a server-side ``COPY`` of the same hashes costs a fraction of that. So a pause's snapshot script
(``lua/snapshot.lua`` with a nonce) also copies the session's values and expiries, in the same script (the copy is
exactly the state the checkpoint is made from), to three keys of the session's hash slot::

    <session's keys>:cv   hash    the values, as v
    <session's keys>:cx   zset    the expiries, as x
    <session's keys>:ct   hash    the tag: nonce, n and nx (the copy's counts)
    <session's keys>:g    string  the order of the session's latest transition (see TRANSITION ORDER below)

The nonce names the snapshot, and the pause records it with the checkpoint, in the durable write that makes the
checkpoint (``CheckpointInfo.snapshot``): the durable record, not a later Redis call, says which copy stands for
which checkpoint. A resume with clear reads the checkpoint's record without its state, and ``lua/take.lua`` copies
the copy over the live keys only if the tag names the nonce the record names, the copy still has the counts it was
made with (Redis may have evicted one of its keys) and the session is open. Anything else answers "no copy" and
changes nothing; the resume then reads the checkpoint's text and restores it as before. A pause whose durable write
failed recorded no checkpoint naming its nonce, so its copy is never taken; two pauses of one checkpoint id from two
processes have two nonces, and only the one whose write succeeded is named. The copy stays, so another resume of
the same checkpoint (an agent going back to a known-good state after each failed attempt) takes it too, until the
next pause replaces it (a ``COPY`` of 1,000 fields costs ~0.2 ms, a ``RENAME`` nothing, but would leave nothing for
the next resume).

A state of fewer than ``COPY_MIN_KEYS`` keys is not copied: taking a copy would save its resume 0.2 ms or less, and
the copy doubles the session's memory. The resume's durable read returns the state of a checkpoint below
that count (and only of those), which is restored at once.

TRANSITION ORDER. A pause is this snapshot then a durable record, a resume a restore (or a take of the copy) then
a durable record, and two servers can interleave them: server A snapshots, server B restores and records its resume,
then A's record lands. So the script that snapshots for a pause, and those that restore for a resume, also give the
transition its order among the session's transitions (``next_order`` in ``lua/lib.lua``, kept in the session's
order key ``:g``), and the durable record carries it: a record older than the session's last recorded transition
keeps its checkpoint and event but does not set the status back. A re-open of a session Redis lost (the store's
``_recover``) raises ``:g`` to the order its durable record last carried (``SessionInfo.status_order``): a Redis whose
clock is behind the one that gave that order would otherwise give orders below it, and every later record would leave
the status as it was. A new incarnation (spawn, import) starts with no order recorded: nothing to raise it to.

WHICH SESSION. Between those steps another server may also delete the session and spawn its id again. So the snapshot
script returns, with the state, the durable session the working memory was made from (``:i``, the record's creation
time), and the pause's record lands only on a record created then (``PackedState.made_from``): else nothing is
written, and the old state never becomes a checkpoint of the new session. A resume reads its checkpoint with its
session record's creation time, and the restore (``lua/write.lua``) and the take (``lua/take.lua``) change nothing
of working memory that notes another (``{'other'}``), nor its record a record created at another time. A session
noting none (made by a release before ``:i``) is paused and resumed as before.

Every path that changes a session's checkpoints or drops its working memory drops the copy: ``delete_checkpoint``
(:meth:`drop_copy`), terminate and clear (``lua/clear.lua``), ``delete_session`` and the operator's forget
(``lua/erase.lua``; ``lua/erase_closed.lua`` after a terminate's marking), a discarded spawn (``lua/forget.lua``), an
import's switch (``lua/switch.lua``) and a call that takes an import's staged state (``lua/adopt.lua``); retention
pruning happens in a pause, whose snapshot has replaced the copy. An import's staging leaves the copy: its durable
step may still refuse it (``conflict``), which must leave an existing session as it was, and until the durable commit
the import has changed no checkpoint (after it, the imported checkpoints name no snapshot, so no resume takes the copy
before the switch drops it). Writes to the live keys after a pause do not touch it: it is the checkpoint's content,
not the live memory's. A copy expires with the session's keys (their reclaim expiry), and after ``COPY_MS`` at most.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from itertools import repeat
from typing import TYPE_CHECKING, Any, Literal

from mcp_memory.models import Item, PackedState, Restoration, Scope, pack_state
from mcp_memory.stores.records import Limits, respawned
from mcp_memory.stores.redis.scripts import COPY_MIN_KEYS, COPY_MS, RECLAIM_MARGIN_MS, made_from_of, noted


def order_of(reply: int | bytes | str | None) -> int | None:
    """A transition's order as a script answered it (``next_order`` in ``lua/lib.lua``); None where Redis gave none
    (an ACL without ``TIME``)."""
    return None if reply is None else int(reply)


ALL_KEY_SUFFIXES = ("m", "v", "x", "i", "cv", "cx", "ct", "g", "im", "r")
"""A session's keys after its base name, in the order every script that takes them all expects: its four keys
(``store.keys``), its pause's copy, its order key, the imports staged for it (:mod:`.staging`), the claims of the
calls re-opening it (:mod:`.store`, ``lua/claim.lua``)."""


def all_keys_of(base: str) -> tuple[str, ...]:
    """Every key of the session whose keys are named ``base:...`` (:data:`ALL_KEY_SUFFIXES`)."""
    return tuple(f"{base}:{suffix}" for suffix in ALL_KEY_SUFFIXES)


def packed_snapshot(reply: list[Any]) -> PackedState:
    """The snapshot script's reply (two flat arrays, parsed by hiredis) as the checkpoint's packed state, by C-level
    steps only (:func:`~mcp_memory.models.pack_state`): nothing runs per key in Python."""
    flat, scored = reply[1], reply[2]
    keys, values = flat[0::2], flat[1::2]
    if not scored:  # no key has a TTL: the common case
        return pack_state(keys, values, repeat(None))
    expiry = dict(zip(scored[0::2], map(float, scored[1::2]), strict=True))
    return pack_state(keys, values, map(expiry.get, keys))


class RedisPauseCopies:
    """:class:`~mcp_memory.stores.ports.PauseCopies` for :class:`~mcp_memory.stores.redis.store.RedisWorkingStore`."""

    if TYPE_CHECKING:

        def keys(self, scope: Scope) -> tuple[str, str, str, str]: ...

        async def _eval(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> list[Any]: ...

        async def _recover(
            self,
            scope: Scope,
            now: float,
            state: str = "o",
            initial: Mapping[str, Item] | None = None,
            expect: str | None = None,
        ) -> Literal["ok", "none", "terminated"]: ...

    copy_min_keys: int = COPY_MIN_KEYS
    """A pause copies a state of at least this many keys (below, the copy saves a resume too little for its memory)."""

    def copy_keys(self, scope: Scope) -> tuple[str, str, str]:
        """The session's copy keys: values, expiries, tag (same hash tag as :meth:`keys`, so the same slot)."""
        base = self.keys(scope)[0].removesuffix(":m")
        return f"{base}:cv", f"{base}:cx", f"{base}:ct"

    def order_key(self, scope: Scope) -> str:
        """The session's order key (same slot): the order of its latest transition (TRANSITION ORDER above)."""
        return self.keys(scope)[0].removesuffix(":m") + ":g"

    def all_keys(self, scope: Scope) -> tuple[str, ...]:
        """:meth:`keys`, :meth:`copy_keys`, :meth:`order_key`, the hash of the imports staged for it (:mod:`.staging`)
        then its re-open claims: for the scripts that drop a session's copy with its keys, those that order its
        transitions, and a re-open, which takes an import's staged state (:data:`ALL_KEY_SUFFIXES`)."""
        return all_keys_of(self.keys(scope)[0].removesuffix(":m"))

    async def snapshot_for_pause(self, scope: Scope, now: float, nonce: str) -> tuple[PackedState, bool]:
        keys, args = self.all_keys(scope), [repr(float(now)), nonce, COPY_MS, self.copy_min_keys]
        reply = await self._eval("snapshot", keys, args)
        if reply[0] == "missing":  # Redis lost the session: re-open it from the durable store, as a read does
            if await self._recover(scope, now) != "ok":
                return pack_state([], [], ()), False
            reply = await self._eval("snapshot", keys, args)
            if reply[0] == "missing":
                return pack_state([], [], ()), False
        # The session it was read from rides with the state into the pause's record, which lands on that one only.
        snapped = replace(packed_snapshot(reply), order=order_of(reply[4]), made_from=made_from_of(reply[5]))
        return snapped, bool(reply[3])

    async def take_copy(
        self, scope: Scope, snapshot: str, now: float, limits: Limits, made_from: datetime | None = None
    ) -> Restoration | None:
        args = [repr(float(now)), RECLAIM_MARGIN_MS, limits.max_keys, snapshot, noted(made_from)]
        reply = await self._eval("take", self.all_keys(scope), args)
        if reply[0] == "other":
            raise respawned(scope.session_id, "resume")
        return Restoration(int(reply[1]), order_of(reply[2])) if reply[0] == "ok" else None

    async def drop_copy(self, scope: Scope) -> None:
        await self._eval("drop_copy", self.copy_keys(scope), [])


__all__ = ["RedisPauseCopies", "packed_snapshot"]
