"""``/readyz``: whether every store serves, at a bounded cost however many ask.

The route needs no token (a balancer probes by address), so anyone who reaches the port can send it as often as
they like. Each answer therefore comes from one shared probe (:meth:`MemoryRuntime.probe
<mcp_memory.services.runtime.MemoryRuntime.probe>`: a trivial statement or ``PING`` per store): requests arriving
while a probe is in flight wait for it rather than start their own, and its result is reused for
:data:`REUSE_SECONDS`, so a flood costs at most one probe per store per second. A store that goes down is logged
once when the outage starts (and again only if another store joins it), and once when all serve again, not once
per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcp_memory.services.runtime import not_serving

logger = logging.getLogger(__name__)

REUSE_SECONDS = 1.0
"""How long a probe's result answers ``/readyz`` before the next request probes again."""

Report = dict[str, dict[str, Any]]
"""Each store's facts by role ("durable", "working"), as :meth:`MemoryRuntime.probe` reports them."""


class Readiness:
    """One probe in flight at a time, its result reused for ``reuse_seconds``; see the module docstring."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[Report]],
        *,
        reuse_seconds: float = REUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._reuse_seconds = reuse_seconds
        self._clock = clock
        self._result: tuple[float, bool] | None = None
        """(when the last probe ended, whether every store served)."""
        self._in_flight: asyncio.Future[bool] | None = None
        self._down: frozenset[str] = frozenset()
        """The stores the last probe found not serving (what has been logged)."""

    async def ready(self) -> bool:
        """Whether every store serves: the last probe's answer if recent enough, else the one in flight (started
        if none is)."""
        if self._result is not None and self._clock() - self._result[0] < self._reuse_seconds:
            return self._result[1]
        if self._in_flight is None:
            self._in_flight = asyncio.ensure_future(self._run())
        # Shielded: a request that goes away does not cancel the probe the others wait for.
        return await asyncio.shield(self._in_flight)

    async def _run(self) -> bool:
        try:
            try:
                report = await self._probe()
            except Exception as exc:  # the probe reports failures itself; this is a bug's safety net
                logger.exception("the readiness probe failed")
                report = {"probe": {"reachable": False, "error": str(exc) or type(exc).__name__}}
            down = {name: facts.get("error") for name, facts in report.items() if not_serving(facts)}
            self._log_change(down)
            self._result = (self._clock(), not down)
            return not down
        finally:
            self._in_flight = None

    def _log_change(self, down: dict[str, Any]) -> None:
        """Log an outage when it starts (or another store joins it) and when it ends, not per probe."""
        names = frozenset(down)
        if names - self._down:
            logger.warning("not ready: a store is not reachable: %s", down)
        elif self._down and not names:
            logger.info("ready again: every store answers")
        self._down = names


__all__ = ["REUSE_SECONDS", "Readiness"]
