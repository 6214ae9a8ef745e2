"""spawn with working memory in a separate store (Redis): whole or absent at every step, crash included.

1. The durable store creates the session *incomplete*, held by this spawn's token until its lease runs out
   (``begin_spawn``). It does not exist yet for any other call: they answer ``not_found`` (reads see nothing).
2. Redis stages the initial state under the token (``stage``): still invisible.
3. The durable store completes the session (``complete_spawn``): the commit point. From here the session exists.
4. Redis commits the staged state (``commit_staged``). If this step never happens (a crash, Redis unreachable),
   the first call that touches the session finds the staged state of a completed spawn and commits it itself.

A failure before 3 undoes 1 and 2 (only this spawn's own: a spawn that took the session over keeps it), in the
sweep's order: it ends the row's lease at once, drops the staged state, then deletes the row. A failure
reported by 3 whose commit happened (its answer lost with a dropped connection) is found out by that undo, which
then undoes nothing: the spawn goes on to 4 and succeeds. A crash
before 3 leaves an incomplete session that nobody sees; a retried spawn is ``conflict`` ("in progress") until the
lease (``spawn_lease_seconds``) runs out, then takes it over and succeeds; if none comes, the spawn sweep
(:mod:`.spawn_sweep`) removes the session and its staged state once the lease is well over. A spawn that outlasts its
lease stops before writing further (another spawn may own the session by then, or the sweep may have removed it).

Step 3 is the last look at the lease, and the durable store's own: ``complete_spawn`` completes the session only while
this spawn's token holds the row and its lease still runs at the clock read once the store is the call's (a wait for
its write lock or a connection counts). A takeover or the sweep removes a lapsed spawn's staged state first and its
row after: a completion between the two would make a session whose initial state is gone (and refuse the takeover
its session). A spawn refused so fails (``conflict``, retry) and its undo removes its own row, which the takeover or
the sweep then finds gone.

A takeover drops the lapsed spawn's staged state *before* step 1 replaces its row (``begin_spawn`` names that spawn,
:class:`~mcp_memory.stores.ports.SpawnLapsed`, and takes the row over only once asked again with it as
``replacing``), as the sweep does: Redis first. Whenever this spawn holds the row, then, no staging of the spawn it
replaced is left, which no row would name any more (if this spawn too failed or died before its own staging replaced
those keys, neither its undo nor the sweep, which drop this token's staging only, would ever find them). A crash
between the two leaves the lapsed row, which a retry or the sweep finds again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID, uuid4

from mcp_memory import deadlines, faults
from mcp_memory.errors import Conflict, MemoryServiceError
from mcp_memory.models import Item, Scope, SessionInfo
from mcp_memory.stores.ports import DurableStore, EventRecord, Limits, SpawnLapsed, StagedSpawn
from mcp_memory.summary import counted

logger = logging.getLogger(__name__)

TAKEOVER_TRIES = 3
"""How many lapsed spawns one spawn drops the staged state of before it gives up (``conflict``): each next one is a
spawn that took the session over and lapsed in the meantime."""


async def spawn_staged(
    durable: DurableStore,
    working: StagedSpawn,
    scope: Scope,
    agent_type: UUID | None,
    meta: dict[str, Any],
    now: float,
    event: EventRecord,
    items: Mapping[str, Item],
    limits: Limits,
    lease_seconds: float,
    clock: Callable[[], float] = time.time,
) -> int:
    """Spawn in the four steps above; returns the count of initial items written. ``Conflict`` if the session
    exists or another spawn holds it (nothing written)."""
    token = uuid4().hex
    session = await _begin(durable, working, scope, agent_type, meta, now, event, token, lease_seconds)
    written = 0
    try:
        await faults.reached("spawn.begun")
        _within_lease(scope, clock, now, lease_seconds)
        written = await working.stage(scope, items, now, limits, token)
        await faults.reached("spawn.staged")
        # The durable store checks the lease itself, at the clock once the store is this call's (see the module).
        await durable.complete_spawn(scope, token, clock(), clock)
    except Exception:
        # complete_spawn may have committed and lost its answer (a connection dropped after COMMIT): then the
        # session exists with this spawn's staged state, and the spawn has happened.
        if await _undo(durable, working, scope, token):
            raise
        logger.warning("spawn of %s completed although its store reported a failure; going on", scope)
    except BaseException:  # cancelled: undone if it can be, and the cancellation goes on
        await _undo(durable, working, scope, token)
        raise
    await faults.reached("spawn.completed")
    try:
        await working.commit_staged(scope, items, now, limits, session)
    except MemoryServiceError as exc:
        # The session exists (step 3): the next call that touches it commits the staged state itself.
        logger.warning("spawn of %s completed; committing its working memory is left to its next call: %s", scope, exc)
    await faults.reached("spawn.committed")
    return written


async def _begin(
    durable: DurableStore,
    working: StagedSpawn,
    scope: Scope,
    agent_type: UUID | None,
    meta: dict[str, Any],
    now: float,
    event: EventRecord,
    token: str,
    lease_seconds: float,
) -> SessionInfo:
    """Step 1, taking over a lapsed spawn's session once that spawn's staged state is gone (see the module)."""
    replacing: str | None = None
    for _ in range(TAKEOVER_TRIES - 1):
        try:
            return await durable.begin_spawn(scope, agent_type, meta, now, event, token, lease_seconds, replacing)
        except SpawnLapsed as lapsed:
            await working.drop_staged(scope, lapsed.token)
            await faults.reached("spawn.lapsed_dropped")
            replacing = lapsed.token
    return await durable.begin_spawn(scope, agent_type, meta, now, event, token, lease_seconds, replacing)


async def _undo(durable: DurableStore, working: StagedSpawn, scope: Scope, token: str) -> bool:
    """Leave nothing of a failed spawn behind, so that a retry succeeds at once (rather than after the lease): this
    spawn's own row and staged state only; a spawn that took the session over keeps both. False if the session turns
    out completed by this spawn: nothing is undone, its staged state is the session's initial state. If the durable
    store cannot say, the staged state stays too (it is this spawn's, which a completed session is re-opened from,
    or a stale one, which the next spawn replaces). Compensation (``deadlines.compensation``): shielded, and given
    the call's cleanup window, so that it is attempted also once the call's deadline is spent.

    In the sweep's order: the row's lease ends first (it lapses at once: this spawn is known dead), then Redis drops
    the staging, then the row goes. An undo that stops after the first step leaves a lapsed row that names the
    staging to a retry's takeover or the sweep; deleting the row first would leave staged keys, without expiry, that
    no row names any more."""
    ended = False
    with deadlines.compensation():
        try:
            if not await durable.end_spawn(scope, token):
                return False
            ended = True
            await working.drop_staged(scope, token)
            await durable.abandon_spawn(scope, token)
        except Exception:
            if ended:
                logger.warning(
                    "could not undo the failed spawn of %s; its lease is ended, so a retry takes it over at once, or "
                    "the spawn sweep removes it",
                    scope,
                    exc_info=True,
                )
            else:
                logger.warning("could not undo the failed spawn of %s; its lease lapses", scope, exc_info=True)
    return True


def _within_lease(scope: Scope, clock: Callable[[], float], began: float, lease_seconds: float) -> None:
    if clock() >= began + lease_seconds:
        raise Conflict(
            f"spawning session '{scope.session_id}' took longer than its lease of {counted(lease_seconds, 'second')} "
            "(spawn_lease_seconds); nothing was kept, retry"
        )


__all__ = ["spawn_staged"]
