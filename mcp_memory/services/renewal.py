"""Keeping a lease while a holder's steps run: renewed beside them, so that a step slower than the lease (a stalled
store, a large erase) does not let another call take the lease over mid-way."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

logger = logging.getLogger(__name__)


@asynccontextmanager
async def renewed(renew: Callable[[], Awaitable[None]], every: float, what: str) -> AsyncIterator[None]:
    """Run the block while ``renew`` is called every ``every`` seconds beside it (stopped when the block ends).

    A renewal that fails is logged and tried again at the next tick: a holder whose lease was taken over meanwhile
    finds out at its own guarded step (which checks that it still holds it), not here. An exception of the block
    propagates as it is (not wrapped in an exception group).

    The block's end (or its cancellation) cancels a renewal in flight rather than waiting for it: one stalled on a
    store's write lock must not hold the holder's answer past its call's deadline. ``renew`` must be safe to cut
    off, as the stores' writes are (a cancelled transaction rolls back, under the store's writer lock or the row's,
    so it cannot land after the holder's next write, its release of the lease included)."""

    async def keep() -> None:
        while True:
            await anyio.sleep(every)
            try:
                await renew()
            except Exception:
                logger.warning("could not renew the lease of %s", what, exc_info=True)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(keep)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise


__all__ = ["renewed"]
