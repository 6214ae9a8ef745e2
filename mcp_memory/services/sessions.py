"""Session discovery: which sessions a project (or one agent) has, newest activity first, and the stored
identifiers that complete a partly typed argument.

"Activity" is a session's last lifecycle event (spawn, pause, resume, terminate), the ``updated_at`` every durable
store keeps; working-memory writes do not count (with Redis they never reach the durable store). Paging is by
position (the last row's ``(updated_at, id)``), not offset: a session that becomes active between two pages moves
to the front and is not repeated, and no session whose activity did not change is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final
from uuid import UUID

from mcp_memory.errors import InvalidArgument
from mcp_memory.json_values import utf8_size
from mcp_memory.models import iso, parse_uuid, to_datetime
from mcp_memory.services.validation import MAX_SESSION_PAGE
from mcp_memory.stores.ports import LIVE_KEYS_CAP as KEY_COUNT_CAP
from mcp_memory.stores.ports import DurableStore, IdentifierKind, SessionRow
from mcp_memory.summary import counted

STATUSES: Final = ("running", "paused", "terminated")
SUMMARY_CHARS: Final = 240


def summarize(row: SessionRow) -> str:
    """A short, bounded sentence on what the session holds: a terminated session's outcome and task; otherwise its
    live keys (count and the first few, when the store holds working memory) or what its last checkpoint saved."""
    if row.episode is not None:
        outcome, task = row.episode
        text = f"{outcome}: {task}" if task else outcome
    elif row.status == "terminated":
        text = "terminated without an episode"
    elif row.live_keys is not None:
        count = f"{KEY_COUNT_CAP - 1}+" if row.live_keys >= KEY_COUNT_CAP else str(row.live_keys)
        text = f"{count} key{'' if row.live_keys == 1 else 's'}"
        if row.first_keys:
            more = ", ..." if row.live_keys > len(row.first_keys) else ""
            text += f": {', '.join(row.first_keys)}{more}"
    elif row.checkpoint is not None:
        keys = row.checkpoint[3]
        text = f"{counted(keys, 'key')} at its last checkpoint"
    else:
        text = "no checkpoint yet"
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 3] + "..."


def session_item(row: SessionRow) -> dict[str, Any]:
    """One listed session as the tool and the resource show it."""
    checkpoint = None
    if row.checkpoint is not None:
        cid, at, label, _ = row.checkpoint
        checkpoint = {"checkpoint_id": cid, "created_at": iso(to_datetime(at)), "label": label}
    return {
        "session_id": row.session_id,
        "agent_instance_id": str(row.agent_instance_id),
        "status": row.status,
        "created_at": iso(to_datetime(row.created_at)),
        "updated_at": iso(to_datetime(row.updated_at)),
        "last_checkpoint": checkpoint,
        "summary": summarize(row),
    }


class SessionDirectory:
    """Lists sessions and completes identifiers from the durable store. ``working``: the durable store holds
    working memory too (no Redis), so a listing can count each session's live keys in the same statement."""

    def __init__(self, store: DurableStore, clock: Callable[[], float], *, working: bool) -> None:
        self._store = store
        self._clock = clock
        self._working = working

    async def list_sessions(
        self,
        project_id: str | UUID,
        agent_instance_id: str | UUID | None = None,
        status: str | None = None,
        limit: int = 20,
        before: str | None = None,
    ) -> dict[str, Any]:
        """``{"sessions": [...], "next_before": cursor | None}``, newest activity first."""
        project = parse_uuid(project_id, "project_id")
        agent = None if agent_instance_id is None else parse_uuid(agent_instance_id, "agent_instance_id")
        if status is not None and status not in STATUSES:
            raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}")
        if not 1 <= limit <= MAX_SESSION_PAGE:
            raise InvalidArgument(f"limit must be between 1 and {MAX_SESSION_PAGE}")
        # One row more than the page: a cursor only when another page exists (null on the last, also when it is full).
        rows = await self._store.list_sessions(project, agent, status, limit + 1, before, self._clock(), self._working)
        page = rows[:limit]
        return {
            "sessions": [session_item(r) for r in page],
            "next_before": page[-1].position if len(rows) > limit else None,
        }

    async def complete(
        self,
        kind: IdentifierKind,
        prefix: str,
        limit: int,
        projects: Sequence[UUID] | None,
        agent_instance_id: UUID | None = None,
        session_id: str | None = None,
    ) -> tuple[list[str], int]:
        """Stored identifiers starting with ``prefix``, most recent first, and how many match in all. A prefix no store
        can take (not a string, a NUL character, a lone surrogate) is ``invalid_argument``: the caller's mistake,
        not a failure of the store."""
        if not isinstance(prefix, str):
            raise InvalidArgument("the prefix must be a string")
        utf8_size(prefix, "the prefix")
        return await self._store.complete_identifiers(kind, prefix, limit, projects, agent_instance_id, session_id)


__all__ = ["STATUSES", "SessionDirectory", "session_item", "summarize"]
