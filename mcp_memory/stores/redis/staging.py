"""Redis's part of a spawn that is whole or absent at every step (:class:`~mcp_memory.stores.ports.StagedSpawn`).

A spawn with working memory in Redis takes three steps across two stores: the durable store creates the session
*incomplete* (``begin_spawn``, held by the spawn's token and lease), Redis stages the initial state under the
marker ``p:<token>`` (``stage``), the durable store completes the session (``complete_spawn``: from then on it
exists), and Redis turns the staged state into the session's working memory (``commit_staged``: marker ``o``).
Scripts: ``lua/write.lua`` (modes ``spawn`` and ``recover``), ``lua/commit.lua`` and ``lua/drop.lua``.

An import's working memory (:class:`~mcp_memory.stores.ports.StagedImport`) is staged apart from the live keys,
under ``<session's keys>:import:<token>:{m,v,x,i}`` (the same hash tag, so the same Cluster slot), which no other
script reads: live sessions are untouched until ``lua/switch.lua`` renames the staged keys over them. Staged keys
expire after ``STAGING_TTL_MS`` (set by the script that stages them), so a crashed import's leftovers go by
themselves. Standalone and Sentinel switch every session in one script; Cluster one script per session (a script
cannot span slots).

Every other script treats a staged marker as a session Redis does not know ("missing"), so the call asks the
durable store, as it does for a session Redis lost: an incomplete spawn is unknown there too (``not_found``; reads
see nothing), and a completed one is re-opened *from the staged state of its own token* (the ``recover`` mode of
the write script), so a crash between the durable completion and the commit loses nothing. A staged state of
another token is stale (a spawn that never completed) and is replaced.

An import's sessions are alike once its durable records have committed: a call that touches one before the switch
finds it missing and re-opens it *from the import's staged state*, not from its newest checkpoint, which the switch
would then have overwritten with everything that call wrote and was told had succeeded. So each staging notes its
token, with the durable record it stages for (its incarnation), in the session's hash ``<session's keys>:im``; the
re-open (``lua/write.lua``, mode ``recover``) answers "staged" when a token there stages the very record the durable
store holds, and ``lua/adopt.lua`` renames that staged state over the live keys, as the switch would, marking it
taken (``k:<token>``), which the switch then leaves as it is. Refusing such calls (``unavailable`` until the switch)
would hold the sessions of an import that stopped after its durable commit until their staging expired, a day; this
way they come back with the working memory imported. Two imports staging one durable record at once (the same export
imported twice: one is refused, ``conflict``, and drops its staging) look alike here: a re-open takes the state of
one of them and marks the other's taken too, so that whichever committed, its switch leaves the session as it is.
That is the only way a note names a record the durable store holds before the import commits: an import looks its
sessions up there first and stages none that exists already (``conflict``, :mod:`mcp_memory.services.transfer`),
and a switch deletes the session's whole note hash, whose other imports can no longer commit. The hash expires with
the latest staging noted in it, so a note can outlive its own staged state (expired, or evicted): ``lua/adopt.lua``
drops such a note, which names nothing left to take, and the re-open asks again and restores the newest checkpoint, as
for a session Redis lost (a note left, every re-open would answer "staged" until the hash expired).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, Literal

from mcp_memory.errors import Unavailable
from mcp_memory.models import Item, Scope, SessionInfo
from mcp_memory.stores.ports import Incarnation, Limits
from mcp_memory.stores.redis.scripts import (
    RECLAIM_MARGIN_MS,
    STAGING_TTL_MS,
    TOMBSTONE_MS,
    incarnation,
    item_args,
    too_large,
)
from mcp_memory.summary import counted


class RedisStaging:
    """:class:`~mcp_memory.stores.ports.StagedSpawn` for :class:`~mcp_memory.stores.redis.store.RedisWorkingStore`."""

    if TYPE_CHECKING:
        mode: str

        def keys(self, scope: Scope) -> tuple[str, str, str, str]: ...

        def copy_keys(self, scope: Scope) -> tuple[str, str, str]: ...

        def all_keys(self, scope: Scope) -> tuple[str, ...]: ...

        async def _eval(
            self, name: str, keys: Sequence[str], args: Sequence[Any], closing: bool = False
        ) -> list[Any]: ...

        async def _recover(
            self,
            scope: Scope,
            now: float,
            state: str = "o",
            initial: Mapping[str, Item] | None = None,
            expect: str | None = None,
        ) -> Literal["ok", "none", "terminated"]: ...

    async def stage(self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits, token: str) -> int:
        args = item_args("spawn", now, True, limits.max_keys, items, token=token)
        if args[6] + args[7] > limits.max_keys:
            raise too_large(limits, counted(args[6] + args[7], "key"))
        reply = await self._eval("write", self.keys(scope), args)
        if reply[0] == "full":
            raise too_large(limits, "the initial state")
        return int(reply[1])

    async def commit_staged(
        self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits, session: SessionInfo
    ) -> None:
        token = session.spawn_token or ""
        args = [token, repr(float(now)), RECLAIM_MARGIN_MS, incarnation(session)]
        reply = await self._eval("commit", self.keys(scope), args)
        if reply[0] == "ok":
            return
        # The staged state is gone: Redis lost it (a restart without persistence), or a deletion of another server
        # erased it after the durable completion. Re-open the session as a call would, with its initial state: only
        # if the durable store still holds this very session (nothing, once deleted), and under a claim that such a
        # deletion erases ("exists": a call re-opened it meanwhile, from the durable store).
        await self._recover(scope, now, initial=items, expect=incarnation(session))

    async def drop_staged(self, scope: Scope, token: str) -> None:
        await self._eval("drop", self.keys(scope), [token])

    # -- an import's working memory --------------------------------------------------------------------------
    def _import_keys(self, scope: Scope, token: str) -> tuple[str, str, str, str]:
        base = f"{self.keys(scope)[0].removesuffix(':m')}:import:{token}"
        return f"{base}:m", f"{base}:v", f"{base}:x", f"{base}:i"

    def imports_key(self, scope: Scope) -> str:
        """The hash of the imports staged for the session: token -> the incarnation each stages (same slot)."""
        return f"{self.keys(scope)[0].removesuffix(':m')}:im"

    async def stage_import(
        self,
        scope: Scope,
        items: Mapping[str, Item],
        now: float,
        limits: Limits,
        token: str,
        made_from: Incarnation | None = None,
    ) -> int:
        made = "" if made_from is None else incarnation(made_from)
        args = item_args("import", now, True, limits.max_keys, items, incarnation=made, token=token)
        if args[6] + args[7] > limits.max_keys:
            raise too_large(limits, f"{counted(args[6] + args[7], 'key')} of session '{scope.session_id}'")
        # The staging TTL rides last, after the items (write.lua's mode "import"), so it is set in the same script.
        # KEYS[5] notes the staging for a re-open. The live session's keys, its pause copy included, are left
        # alone: the durable step may still refuse the import, which must then have changed nothing of a session
        # that exists. The switch, after the durable commit, drops the copy (lua/switch.lua); until then the copy
        # can stand for no imported checkpoint, which names no snapshot (copies.py).
        keys = (*self._import_keys(scope, token), self.imports_key(scope))
        reply = await self._eval("write", keys, [*args, STAGING_TTL_MS])
        return int(reply[1])

    async def drop_import(self, scopes: Sequence[Scope], token: str) -> None:
        for scope in scopes:
            await self._eval("drop", (*self._import_keys(scope, token), self.imports_key(scope)), [token])

    async def adopt_import(self, scope: Scope, tokens: Sequence[str], now: float, args: Sequence[str]) -> list[Any]:
        """Re-open the session from the staged state of one of the imports ``tokens`` that staged the durable record
        a re-open has read (``lua/adopt.lua``; ``args``: its state, incarnation, order and claim). Answers "adopted"
        (with the count of its keys), "exists" (the switch or another call came first), "none" (no such staging is
        left) or "unclaimed" (a deletion has erased the re-open's claim: nothing changed)."""
        keys = [*self.all_keys(scope), *(k for t in tokens for k in self._import_keys(scope, t))]
        return await self._eval("adopt", keys, [repr(float(now)), RECLAIM_MARGIN_MS, *args, *tokens])

    async def switch_import(
        self,
        scopes: Sequence[Scope],
        token: str,
        now: float,
        sealed: AbstractSet[Scope] = frozenset(),
        terminated: AbstractSet[Scope] = frozenset(),
        made_from: Mapping[Scope, Incarnation] | None = None,
    ) -> list[Scope]:
        made_from = made_from or {}
        groups = [list(scopes)] if self.mode != "cluster" else [[s] for s in scopes]
        switched: list[Scope] = []
        for group in groups:
            keys = [
                k
                for s in group
                for k in (*self._import_keys(s, token), *self.keys(s), *self.copy_keys(s), self.imports_key(s))
            ]
            if not keys:
                continue
            # Each session's marker, one letter per session: "o" open, "s" sealed by nobody (as _recover re-opens a
            # session whose terminate was cut off), "t" terminated, closed in the switch itself as terminate closes
            # one keeping its keys (its marker and i expire TOMBSTONE_MS after its last key): a step after it could
            # fail and leave them for good, or mark a session a deletion has erased since the switch.
            markers = "".join("t" if s in terminated else "s" if s in sealed else "o" for s in group)
            # Each session notes the durable record it was imported as (its i), as a spawn's commit does: a late
            # terminate of a session deleted before the import tells this one apart by it (lua/clear.lua).
            made = [incarnation(made_from[s]) if s in made_from else "" for s in group]
            args = [token, repr(float(now)), RECLAIM_MARGIN_MS, markers, TOMBSTONE_MS, *made]
            # A switch that closes a session answers once a replica has it, as terminate's marking does
            # (:mod:`.replication`): a failover must not bring the session back as staged, its kept keys unreadable.
            closes = any(s in terminated for s in group)
            reply = await self._eval("switch", keys, args, closing=closes)
            if reply[0] != "ok":
                raise Unavailable(
                    f"Redis lost the staged working memory of session '{group[int(reply[1])].session_id}' before "
                    f"the switch; {len(switched)} of {len(scopes)} sessions were switched"
                )
            gone = {int(i) for i in reply[2:]}  # deleted since the durable commit: left deleted
            switched += [s for i, s in enumerate(group) if i not in gone]
        return switched


__all__ = ["RedisStaging"]
