"""What terminate's seal's lease decides besides the seal itself (:mod:`.lifecycle` seals and records): how long a
terminate waits for its episode's vector, and how a terminate that finds its session recorded terminated already
answers.

The lease of the terminate that recorded a session tells a later terminate of it whether that one may still be
finishing (marking working memory terminated and clearing it, then running the hooks, on another server just after
its record): the later call then answers as a repeat, and the hooks stay the recording call's. Once the lease is over
(or ended by the recording call when its last step failed) that call never finishes: a later one that finds its job
undone does it, hooks included, and answers as the recording call would have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from mcp_memory.config import Settings
from mcp_memory.models import Episode, Scope, SessionInfo
from mcp_memory.services.episodic import EpisodicMemory, episode_text
from mcp_memory.stores.ports import Incarnation, WorkingStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Terminated:
    """terminate's work under the session lock: the result, and whether an earlier call had finished the job (then
    it is returned as it is: no hooks, nothing recorded)."""

    data: dict[str, Any]
    finished_before: bool = False


async def terminated_before(working: WorkingStore, scope: Scope, now: float, info: SessionInfo) -> Terminated:
    """terminate of a session recorded terminated (``info``, read at ``now``): the stored result, nothing recorded.
    Its working memory is marked terminated (and cleared, if the recording call asked) again: that of the record
    read, whose seal token names the terminate that recorded it. If that clears anything, the recording call has not
    finished: this call finishes its job (hooks included) if that call's lease is over, else answers as a repeat."""
    stored = dict(info.terminate_result or {})
    recorded_as = Incarnation(info.created_at, info.seal_token)
    cleared = bool(stored.get("items_cleared"))
    if await working.mark_terminated(scope, now, cleared, recorded_as) and not _may_be_finishing(info, now):
        return Terminated(stored)
    return Terminated(stored, finished_before=True)


def _may_be_finishing(info: SessionInfo, now: float) -> bool:
    """Whether the terminate that recorded ``info`` may still be at its last step at ``now``: its lease holds (a
    record made without a seal's token or lease, as an import's or an earlier release's, has none)."""
    return info.seal_token is not None and info.seal_until is not None and info.seal_until.timestamp() > now


async def embed_within_lease(
    episodic: EpisodicMemory,
    settings: Settings,
    clock: Callable[[], float],
    scope: Scope,
    episode: Episode,
    lease_ends: float,
) -> list[float] | None:
    """The episode's vector, or None if the provider fails or would keep terminate past its seal's lease (less the
    time left to record, half the lease at most): past it terminate records nothing (``conflict``), whereas an
    episode without a vector is embedded later (services.backfill)."""
    reserve = min(settings.terminate_lease_seconds / 2, settings.call_timeout_seconds)
    budget = lease_ends - clock() - reserve
    vectors = None
    with anyio.move_on_after(max(0.0, budget)) as wait:
        vectors = await episodic.embed([episode_text(episode)])
    if wait.cancelled_caught:
        logger.warning(
            "terminate of %s: its embedding was cut short after %.1f s to stay within terminate_lease_seconds; "
            "the episode is stored without a vector (embedded later)",
            scope,
            max(0.0, budget),
        )
    return vectors[0] if vectors else None


__all__ = ["Terminated", "embed_within_lease", "terminated_before"]
