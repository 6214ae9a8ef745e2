"""What a tool call changed beyond what its arguments and result say: the episodes it removed, the sessions whose
listing changed with them, or that it changed nothing at all.

The subscriptions (:mod:`.subscriptions`) notify each removed episode's subscribers, but a ``forget_episodes`` by
filter or a ``delete_session`` may remove thousands, too many ids to put in the result the model reads; the sessions
those episodes came from change too (a terminated session's summary names its episode). And a repeated ``terminate``
answers exactly as the first did while changing nothing. So the tool notes these here, on the call's
:class:`CallEffects`, which :meth:`~.app.MemoryServer.call_tool` opens around each call and hands to its observers
with the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from uuid import UUID


@dataclass
class CallEffects:
    """What one tool call changed that its result leaves out: ``removed_episodes``, the episodes it removed;
    ``changed_sessions``, other sessions (agent, session id) of its project whose resource and listing it changed;
    ``unchanged``, that it changed nothing whatever its arguments name."""

    removed_episodes: list[UUID] = field(default_factory=list)
    changed_sessions: list[tuple[UUID, str]] = field(default_factory=list)
    unchanged: bool = False


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


def note_changed_sessions(sessions: Iterable[tuple[UUID, str]]) -> None:
    """Record that the current tool call changed these sessions (agent, session id) of its project."""
    effects = _current.get()
    if effects is not None:
        effects.changed_sessions.extend(sessions)


def note_unchanged() -> None:
    """Record that the current tool call changed nothing (it repeated one whose work was done)."""
    effects = _current.get()
    if effects is not None:
        effects.unchanged = True


__all__ = ["CallEffects", "collecting", "note_changed_sessions", "note_removed_episodes", "note_unchanged"]
