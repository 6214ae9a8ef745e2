"""Re-opening a session Redis has lost from the durable store (:class:`~.store.RedisWorkingStore`'s ``_recover``),
never for a session deleted meanwhile.

A call that finds its session missing in Redis reads the durable record and writes the session back into Redis from
it (its newest checkpoint, or an import's staged state, ``lua/adopt.lua``); a spawn whose staged state went before
its commit does the same with its initial state. The read and the write are two steps, and a deletion
(``delete_session``: erase Redis, delete the record, erase Redis again; the operator's ``forget``, by ``SCAN``; a
discarded spawn) can run whole between them. So the re-open first notes a claim of its own in the session's claims
hash (``:r``, ``lua/claim.lua``: a nonce, expiring after :data:`~.scripts.REOPEN_CLAIM_MS`), then reads the record,
and its write (``lua/write.lua``'s ``recover``, ``lua/adopt.lua``) lands only while the claim is there. Every deletion
erases the claims with the session's keys after its durable step: a write whose read came before that step writes
nothing ("unclaimed"), however late it lands and even if its call stops right after it (a re-check after the write,
as before, left the session in Redis whenever that re-check failed), and the call claims and reads again, finding the
session gone. The claim stays after its write: a ``forget`` scanning for the session's keys must find one of them
from before its durable step until its erase (``SCAN`` may miss keys made or deleted while it runs). A claim costs a
re-open one round trip more; no call on a session Redis holds makes one, nor one on a session the durable store does
not know (which leaves no key).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from uuid import uuid4

from mcp_memory import faults
from mcp_memory.errors import MemoryServiceError, Unavailable
from mcp_memory.models import Item, Scope, SessionInfo, SessionStatus
from mcp_memory.stores.ports import DurableStore
from mcp_memory.stores.redis.scripts import REOPEN_CLAIM_MS, incarnation, item_args

logger = logging.getLogger(__name__)

REOPEN_TRIES = 3
"""How often a re-open claims again after a deletion (or its expiry) took its claim before its write landed, before it
answers ``unavailable``: the second read after a deletion finds the session gone."""
ADOPT_TRIES = 3
"""How often a re-open looks again for an import's staged state that went between its two scripts (the switch or a
drop came first) before it answers ``unavailable``."""


class RedisReopen:
    """The re-open of :class:`~mcp_memory.stores.redis.store.RedisWorkingStore` (see the module docstring)."""

    if TYPE_CHECKING:
        durable: DurableStore | None

        def keys(self, scope: Scope) -> tuple[str, str, str, str]: ...

        def all_keys(self, scope: Scope) -> tuple[str, ...]: ...

        async def _eval(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> list[Any]: ...

        async def adopt_import(
            self, scope: Scope, tokens: Sequence[str], now: float, args: Sequence[str]
        ) -> list[Any]: ...

    def claims_key(self, scope: Scope) -> str:
        """The hash of the claims of the calls re-opening the session (``lua/claim.lua``; same slot)."""
        return f"{self.keys(scope)[0].removesuffix(':m')}:r"

    async def _recover(
        self,
        scope: Scope,
        now: float,
        state: str = "o",
        initial: Mapping[str, Item] | None = None,
        expect: str | None = None,
    ) -> Literal["ok", "none", "terminated"]:
        """Redis does not know the session: re-open it from the durable store (see the module docstring), with its
        newest checkpoint or, given ``initial``, with those items (a spawn whose staged state went); given
        ``expect``, only if the durable record is that incarnation (else "none")."""
        if self.durable is None:
            return "none"
        info = await self.durable.get_session(scope)
        if info is None:
            return "none"  # (no claim for a session the durable store does not know: no key left for it)
        for _ in range(REOPEN_TRIES):
            # Claim first, then read the record the re-open is made from: a deletion this read misses erases the
            # claim after its durable step, and the write below lands only while the claim is there (lua/claim.lua).
            nonce = uuid4().hex
            await self._eval("claim", (self.claims_key(scope),), ["c", nonce, REOPEN_CLAIM_MS])
            info = await self.durable.get_session(scope)
            if info is None or (expect is not None and incarnation(info) != expect):
                await self._drop_claim(scope, nonce)
                return "none"
            if info.status == SessionStatus.TERMINATED:
                await self._drop_claim(scope, nonce)
                return "terminated"
            reopened = await self._reopen(scope, info, now, state, nonce, initial)
            if reopened != "unclaimed":
                return reopened
        raise Unavailable(f"session '{scope.session_id}' is being deleted or re-opened by another call; retry")

    async def _reopen(
        self,
        scope: Scope,
        info: SessionInfo,
        now: float,
        state: str,
        nonce: str,
        initial: Mapping[str, Item] | None,
    ) -> Literal["ok", "unclaimed"]:
        """Write the re-open of ``info`` under the claim ``nonce``: "unclaimed" if a deletion has erased the claim
        (nothing written)."""
        assert self.durable is not None
        if info.sealed:  # a terminate is under way (or was cut off): it stays sealed, as on the durable store
            state = "s"
        checkpoint = None
        if initial is None:
            checkpoint = await self.durable.get_checkpoint(scope, None)
        items = initial if initial is not None else checkpoint.items if checkpoint is not None else {}
        made_by = info.spawn_token or ""  # a staged state of this spawn is the session's initial state: kept
        made_from = incarnation(info)
        args = item_args("recover", now, True, len(items) + 1, items, state, made_from, made_by)
        # The order its record last carried, then the claim, ride last: the re-opened session's transitions order
        # above it, whatever this Redis's clock (copies.py, TRANSITION ORDER).
        order = "" if info.status_order is None else str(info.status_order)
        args += [order, nonce]
        await faults.reached("recover.read")
        reply = await self._eval("write", self.all_keys(scope), args)
        for _ in range(ADOPT_TRIES):
            if reply[0] != "staged":
                break
            # An import has committed this very record and not switched its working memory in yet: take that, as
            # the switch would, rather than the checkpoint the switch would overwrite with what this call writes.
            reply = await self.adopt_import(scope, reply[1:], now, [state, made_from, order, nonce])
            if reply[0] == "none":  # the staging went meanwhile (switched, or dropped): ask again
                reply = await self._eval("write", self.all_keys(scope), args)
        if reply[0] == "staged":
            raise Unavailable(f"an import of session '{scope.session_id}' is switching its working memory in; retry")
        if reply[0] == "unclaimed":
            return "unclaimed"
        if reply[0] in ("ok", "adopted"):  # (not "exists": a concurrent call re-opened it first)
            await faults.reached("recover.written")
        if reply[0] == "ok":
            logger.warning(
                "Redis had lost session %s; re-opened it with %s (%d items)",
                scope,
                "its initial state" if checkpoint is None else f"checkpoint {checkpoint.info.checkpoint_id}",
                reply[1],
            )
        return "ok"

    async def _drop_claim(self, scope: Scope, nonce: str) -> None:
        """Take back a claim whose re-open is not made (the session is gone): it would otherwise name the session in
        Redis until it expires. Best effort: it expires anyway."""
        try:
            await self._eval("claim", (self.claims_key(scope),), ["d", nonce, 0])
        except MemoryServiceError as exc:
            logger.debug("could not drop the re-open claim of %s: %s", scope, exc)


__all__ = ["ADOPT_TRIES", "REOPEN_TRIES", "RedisReopen"]
