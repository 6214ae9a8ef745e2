"""Lifecycle hooks: the registry, importing a hook named in settings, and loading them all at start-up.

Hooks run after the core operation, each with a timeout; a failing hook is logged, never raised.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from mcp_memory.config_sections import HookSettings
from mcp_memory.models import LifecycleEvent

logger = logging.getLogger(__name__)

LifecycleHook = Callable[[LifecycleEvent], Coroutine[Any, Any, None]]
EVENT_TYPES = ("spawn", "pause", "resume", "terminate")


class LifecycleHooks:
    """Hooks per lifecycle event, run after the core operation (the seed's class, with timeouts)."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self._hooks: dict[str, list[LifecycleHook]] = {name: [] for name in EVENT_TYPES}
        self.timeout_seconds = timeout_seconds

    def register(self, event_type: str, hook: LifecycleHook) -> LifecycleHook:
        """Register a hook for ``event_type`` (one of :data:`EVENT_TYPES`)."""
        self._hooks[event_type].append(hook)
        return hook

    def on_spawn(self, hook: LifecycleHook) -> LifecycleHook:
        """Register a spawn hook (usable as a decorator)."""
        return self.register("spawn", hook)

    def on_pause(self, hook: LifecycleHook) -> LifecycleHook:
        """Register a pause hook."""
        return self.register("pause", hook)

    def on_resume(self, hook: LifecycleHook) -> LifecycleHook:
        """Register a resume hook."""
        return self.register("resume", hook)

    def on_terminate(self, hook: LifecycleHook) -> LifecycleHook:
        """Register a terminate hook."""
        return self.register("terminate", hook)

    def wanted(self, event_type: str) -> bool:
        """Whether any hook runs on ``event_type`` (then an event is worth building)."""
        return bool(self._hooks[event_type])

    async def run(self, event: LifecycleEvent) -> None:
        """Run the event's hooks in order, each on its own copy of the event (a hook that changes what it gets
        changes nothing for the next one, nor the caller's metadata); each failure or timeout is logged and
        swallowed, a ``CancelledError`` that the hook raised by itself and a ``SystemExit`` or ``KeyboardInterrupt``
        included. A cancellation of the call itself still goes through."""
        for hook in self._hooks[event.event_type]:
            name = getattr(hook, "__qualname__", repr(hook))
            try:
                with anyio.fail_after(self.timeout_seconds) as scope:
                    await hook(copy.deepcopy(event))
                if scope.cancel_called:
                    # It ran past its timeout and swallowed the cancellation (fail_after then raises nothing).
                    logger.warning(
                        "%s hook %s ran past hook_timeout_seconds (%gs) and ignored its cancellation; the operation "
                        "stands",
                        event.event_type,
                        name,
                        self.timeout_seconds,
                    )
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the call is being cancelled: not the hook's doing
                logger.warning("%s hook %s raised CancelledError; the operation stands", event.event_type, name)
            except BaseException:
                # SystemExit or KeyboardInterrupt raised by a hook's own code is its failure, not a request to stop
                # the server: a user's hook never ends the process nor fails the call.
                logger.warning("%s hook %s failed; the operation stands", event.event_type, name, exc_info=True)


def import_hook(spec: str) -> LifecycleHook:
    """Import ``package.module:function``; a clear ``ValueError`` if it cannot be loaded."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"hook {spec!r} must look like 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"hook {spec!r} cannot be loaded: {exc}") from exc
    if not callable(target):
        raise ValueError(f"hook {spec!r} is not callable")
    call = target if inspect.isroutine(target) else type(target).__call__
    if not inspect.iscoroutinefunction(call):
        # A plain function would run on the event loop, beyond the reach of hook_timeout_seconds.
        raise ValueError(f"hook {spec!r} must be an async function (async def)")
    hook: LifecycleHook = target
    return hook


def load_hooks(config: HookSettings, timeout_seconds: float = 10.0) -> LifecycleHooks:
    """Hooks named in settings, imported now so that a typo fails at start-up, not at the first call."""
    hooks = LifecycleHooks(timeout_seconds)
    for event_type in EVENT_TYPES:
        for spec in getattr(config, event_type):
            hooks.register(event_type, import_hook(spec))
    return hooks


__all__ = ["EVENT_TYPES", "LifecycleHook", "LifecycleHooks", "import_hook", "load_hooks"]
