"""A store's ``mark_terminated`` (terminate's last step, once the session is recorded terminated) held back: the
window in which another server's call meets a session recorded terminated whose terminate has not finished."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio


@dataclass
class HeldBack:
    """``recorded`` is set when terminate reaches ``mark_terminated``, ``go_on`` lets it run, ``closed`` is set once
    it ran. Only the store given to :meth:`hold` is held (another server's store object is not)."""

    recorded: anyio.Event = field(default_factory=anyio.Event)
    go_on: anyio.Event = field(default_factory=anyio.Event)
    closed: anyio.Event = field(default_factory=anyio.Event)

    def hold(self, store: Any) -> None:
        real_mark = store.mark_terminated

        async def slow_mark(*args: Any, **kwargs: Any) -> int:
            # Server A has recorded the terminate and is slow to send its clear (a busy store, a GC pause).
            self.recorded.set()
            with anyio.fail_after(10):
                await self.go_on.wait()
            try:
                return int(await real_mark(*args, **kwargs))
            finally:
                self.closed.set()

        store.mark_terminated = slow_mark

    async def reached(self) -> None:
        with anyio.fail_after(10):
            await self.recorded.wait()
