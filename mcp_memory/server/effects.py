"""What a tool call changed beyond what its result says: the episodes it removed.

The subscriptions (:mod:`.subscriptions`) notify each removed episode's subscribers, but a ``forget_episodes`` by
filter or a ``delete_session`` may remove thousands, too many ids to put in the result the model reads. So the tool
notes them here, on the call's :class:`CallEffects`, which :meth:`~.app.MemoryServer.call_tool` opens around each
call and hands to its observers with the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from uuid import UUID


@dataclass
class CallEffects:
    """What one tool call changed that its result leaves out: ``removed_episodes``, the episodes it removed."""

    removed_episodes: list[UUID] = field(default_factory=list)


_current: ContextVar[CallEffects | None] = ContextVar("mcp_memory_call_effects", default=None)


@contextmanager
def collecting() -> Iterator[CallEffects]:
    """The effects of the tool call made within (set by the server before the call, so the tool sees the same
    object whatever context it runs in)."""
    effects = CallEffects()
    token = _current.set(effects)
    try:
        yield effects
    finally:
        _current.reset(token)


def note_removed_episodes(episode_ids: Iterable[UUID]) -> None:
    """Record that the current tool call removed these episodes (nothing outside a call, e.g. the Python API)."""
    effects = _current.get()
    if effects is not None:
        effects.removed_episodes.extend(episode_ids)


__all__ = ["CallEffects", "collecting", "note_removed_episodes"]
