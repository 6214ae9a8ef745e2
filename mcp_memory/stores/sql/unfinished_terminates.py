"""Terminated sessions whose terminate has not finished its job after its record (``sessions.terminate_unfinished``,
:class:`~mcp_memory.stores.unfinished_terminate_port.UnfinishedTerminates`): listed for the sweep, claimed by whoever
finishes them (a retried terminate or the sweep) and marked finished.

A claim moves the lease (``seal_until``) and keeps the seal's token: the token names the terminate that recorded the
session, which the last step's clear goes by (``terminated_pk``, Redis's ``clear.lua``). A partial index holds the
unfinished rows only (a few at any time: each leaves it once its terminate is done).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.models import Scope
from mcp_memory.stores.sql.clauses import text
from mcp_memory.stores.sql.dialect import Dialect, as_uuid
from mcp_memory.stores.sql.queries import SCOPE, SESSION_PK
from mcp_memory.stores.unfinished_terminate_port import UnfinishedTerminate

UNFINISHED = "status = 'terminated' AND terminate_unfinished"
"""A session recorded terminated whose terminate has not finished its job after the record."""
LAPSED = "(seal_until IS NULL OR seal_until <= {0})"
"""Its lease ran out at the parameter named, or was ended (NULL: its recording call's last step failed)."""
_LISTING = (
    "SELECT id, project_id, agent_instance_id, session_id FROM sessions "
    f"WHERE {UNFINISHED} AND {LAPSED.format(':before')}{{0}} ORDER BY id LIMIT :limit"
)
UNFINISHED_TERMINATES = _LISTING.format("")
"""The unfinished sessions whose lease ran out at ``:before``, by row id, read through the partial index
``sessions_unfinished_terminates`` (on ``id``, of the rows ``terminate_unfinished``) in its order."""
UNFINISHED_TERMINATES_AFTER = _LISTING.format(" AND id > :after_id")
"""The same, after the row ``:after_id`` in that order: a bound on the index's key, which holds whether or not that
row is still there (a lookup of the session it held would find nothing once it is deleted)."""
CLAIM = (
    f"UPDATE sessions SET seal_until = :until WHERE {SCOPE} AND {UNFINISHED} AND seal_token = :t "
    f"AND {LAPSED.format(':now')}"
)
RECORDED_DETAIL = (
    f"SELECT detail FROM events WHERE session_pk = {SESSION_PK} AND event_type = 'terminate' AND outcome = 'ok' "
    "ORDER BY id DESC LIMIT 1"
)
"""The detail of the session's terminate event (one per terminated session; never pruned), which holds the
``metadata`` the call was made with."""
FINISH = f"UPDATE sessions SET terminate_unfinished = false WHERE {SCOPE} AND {UNFINISHED} AND seal_token = :t"


class UnfinishedTerminateRows:
    """The port's methods; a mixin of :class:`~mcp_memory.stores.sql.store.SqlStore`."""

    _dialect: ClassVar[Dialect]

    if TYPE_CHECKING:

        def _read(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    async def unfinished_terminates(
        self, before: float, limit: int, after: UnfinishedTerminate | None = None
    ) -> list[UnfinishedTerminate]:
        params: dict[str, Any] = {"before": self._dialect.write_time(before), "limit": limit}
        if after is not None:
            params["after_id"] = after.row
        async with self._read() as conn:
            rows = await conn.execute(
                text(UNFINISHED_TERMINATES if after is None else UNFINISHED_TERMINATES_AFTER), params
            )
            return [
                UnfinishedTerminate(Scope(as_uuid(r.project_id), as_uuid(r.agent_instance_id), r.session_id), int(r.id))
                for r in rows
            ]

    async def claim_terminate(
        self, scope: Scope, token: str, now: float, lease_seconds: float
    ) -> dict[str, Any] | None:
        d = self._dialect
        params = d.lease_params(scope, token, now, lease_seconds)
        async with self._write() as conn:
            if not (await conn.execute(text(CLAIM), params)).rowcount:
                return None
            detail = (await conn.execute(text(RECORDED_DETAIL), d.scope_params(scope))).scalar()
        recorded = {} if detail is None else d.read_json(detail)
        metadata = recorded.get("metadata") if isinstance(recorded, dict) else None
        return metadata if isinstance(metadata, dict) else {}

    async def finish_terminate(self, scope: Scope, token: str) -> None:
        async with self._write() as conn:
            await conn.execute(text(FINISH), {**self._dialect.scope_params(scope), "t": token})


__all__ = ["UnfinishedTerminateRows"]
