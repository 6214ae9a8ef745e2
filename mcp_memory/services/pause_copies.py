"""A pause's durable write and the confirmation of its Redis copy (:class:`~mcp_memory.stores.ports.PauseCopies`),
overlapped where that is safe: the whole pause waits for the slower of the two rather than for both."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from mcp_memory.errors import MemoryServiceError
from mcp_memory.models import Scope
from mcp_memory.stores.ports import PauseCopies

logger = logging.getLogger(__name__)


async def _confirm(store: PauseCopies, scope: Scope, nonce: str, cp_id: str, digest: str) -> None:
    try:
        await store.confirm_copy(scope, nonce, cp_id, digest)
    except MemoryServiceError as exc:  # the pause is done: its copy stays unconfirmed, never used
        logger.warning("pause of %s: could not confirm its Redis copy (%s); a resume restores the text", scope, exc)


async def recorded_and_confirmed(
    recorded: Coroutine[Any, Any, None],
    store: PauseCopies,
    scope: Scope,
    nonce: str,
    cp_id: str,
    digest: str,
    *,
    beside: bool,
) -> None:
    """The pause's durable write, and the confirmation that binds its Redis copy to the checkpoint.

    ``beside``: the id was generated here, so no other pause anywhere can ever record it. The confirmation then
    runs beside the durable write (one wait instead of two): if that write fails, the copy names an id no
    checkpoint will have, which no resume asks for. A caller-given id could be recorded by a concurrent pause of
    another process from another snapshot, so its copy is confirmed only after this pause's write succeeded."""
    if not beside:
        await recorded
        await _confirm(store, scope, nonce, cp_id, digest)
        return
    confirming = asyncio.ensure_future(_confirm(store, scope, nonce, cp_id, digest))
    try:
        await recorded
    except BaseException:
        confirming.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await confirming
        raise
    await confirming


__all__ = ["recorded_and_confirmed"]
