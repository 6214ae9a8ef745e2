"""Session discovery over MCP: the ``list_sessions`` tool and the resource listing an agent's sessions.

Both read :class:`~mcp_memory.services.sessions.SessionDirectory`; both are limited to the request's grant (the
tool by the server's project check before the call and again here, the resource by ``read_resource``'s gate and
``authorize``), so a token for project B learns nothing of project A's sessions, not even whether any exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from mcp_memory.errors import MemoryServiceError
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.auth import authorize
from mcp_memory.server.listing import JSON
from mcp_memory.server.resources import _OWN_VALIDATION, _dump, _resource_error
from mcp_memory.server.tools.shared import READ_ONLY, ProjectId, ToolScope, hints, reply
from mcp_memory.services.validation import MAX_SESSION_PAGE

SESSIONS_URI = "memory://projects/{project_id}/agents/{agent_instance_id}/sessions"
RESOURCE_PAGE = 50
"""How many sessions the resource shows (the newest; ``next_before`` continues with ``list_sessions``)."""


class LastCheckpoint(BaseModel):
    checkpoint_id: str
    created_at: str
    label: str | None


class SessionItem(BaseModel):
    session_id: str
    agent_instance_id: str
    status: str
    created_at: str
    updated_at: str = Field(description="Last activity: the session's last spawn, pause, resume or terminate.")
    last_checkpoint: LastCheckpoint | None
    summary: str = Field(description="Its keys (count and first few), or a terminated session's outcome and task.")


class SessionList(BaseModel):
    sessions: list[SessionItem] = Field(description="Newest activity first.")
    next_before: str | None = Field(
        default=None, description="Pass as `before` to get the next (older) page; null on the last page."
    )


LIST_SESSIONS = "Sessions, newest activity first, with summaries: find one to resume."


def register_sessions(server: MemoryServer) -> None:
    """Register ``list_sessions`` and the sessions resource template on ``server``."""
    rt = server.runtime

    tools = ToolScope(server)

    @server.tool(description=LIST_SESSIONS, **hints("Sessions", **READ_ONLY))
    async def list_sessions(
        project_id: ProjectId = None,
        agent_instance_id: Annotated[str | None, Field(description="Filter.")] = None,
        status: Annotated[Literal["running", "paused", "terminated"] | None, Field(description="Filter.")] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_SESSION_PAGE, strict=True, description="Page size.")] = 20,
        before: Annotated[str | None, Field(description="A next_before.")] = None,
    ) -> CallToolResult:
        page = await rt.sessions.list_sessions(tools.project(project_id), agent_instance_id, status, limit, before)
        return reply(SessionList.model_validate(page))

    @server.resource(
        SESSIONS_URI,
        name="sessions",
        mime_type=JSON,
        security=_OWN_VALIDATION,
        description="An agent's sessions, newest activity first, with their last checkpoint and a short summary.",
    )
    async def sessions_resource(project_id: str, agent_instance_id: str) -> str:
        try:
            authorize(project_id)
            page = await rt.sessions.list_sessions(project_id, agent_instance_id, None, RESOURCE_PAGE, None)
        except MemoryServiceError as exc:
            raise _resource_error(exc) from None
        return _dump(page)


__all__ = ["SESSIONS_URI", "SessionList", "register_sessions"]
