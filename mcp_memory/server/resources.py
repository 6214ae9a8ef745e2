"""The MCP resources of docs/contract.md: five URI templates, all ``application/json``, and the recent listing."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mcp.server.mcpserver.resources import ResourceSecurity

from mcp_memory.errors import MemoryServiceError, NotFound
from mcp_memory.models import Episode, Scope, SessionInfo, iso, to_datetime, validate_identifier
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.auth import authorize
from mcp_memory.server.listing import (
    CHECKPOINT_URI,
    CHECKPOINTS_URI,
    EPISODE_URI,
    EPISODES_URI,
    JSON,
    SESSION_URI,
)
from mcp_memory.server.protocol import RefusedRead
from mcp_memory.services.runtime import MemoryRuntime

# Our identifiers are validated by our own rules and never touch a filesystem; "." and ".." are valid
# session ids under docs/contract.md, so the SDK's path-traversal policy must not reject them.
_OWN_VALIDATION = ResourceSecurity(reject_path_traversal=False, reject_absolute_paths=False)
_Read = TypeVar("_Read", bound=Callable[..., Awaitable[str]])


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def episode_json(ep: Episode) -> dict[str, Any]:
    """An episode as a resource body."""
    data = ep.model_dump(mode="json")
    data["uri"] = EPISODE_URI.format(project_id=ep.project_id, episode_id=ep.episode_id)
    return data


def _resource_error(exc: MemoryServiceError) -> Exception:
    """docs/contract.md error -> what :meth:`MemoryServer.read_resource` turns into the JSON-RPC error of the
    request's protocol version (:mod:`.protocol`)."""
    return RefusedRead(exc)


def template(
    server: MemoryServer, uri: str, name: str, description: str, mime_type: str = JSON
) -> Callable[[_Read], _Read]:
    """Register a resource template whose identifiers our own rules check (see :data:`_OWN_VALIDATION`)."""
    return server.resource(uri, name=name, mime_type=mime_type, security=_OWN_VALIDATION, description=description)


async def read_session(
    runtime: MemoryRuntime, project_id: str, agent_instance_id: str, session_id: str
) -> tuple[Scope, SessionInfo]:
    """A session resource's preamble: the project within the request's token scope (``forbidden`` before any
    lookup), the scope parsed, and the session's record (``not_found`` for a session that does not exist)."""
    authorize(project_id)
    scope = Scope.parse(project_id, agent_instance_id, session_id)
    return scope, await runtime.lifecycle.session(scope)


def register_resources(server: MemoryServer) -> None:
    """Register the resource templates of docs/contract.md on ``server``."""
    rt = server.runtime

    @template(server, SESSION_URI, "session", "A session: status, timestamps and its live working memory.")
    async def session_resource(project_id: str, agent_instance_id: str, session_id: str) -> str:
        try:
            scope, info = await read_session(rt, project_id, agent_instance_id, session_id)
            state = await rt.working.state(scope)
        except MemoryServiceError as exc:
            raise _resource_error(exc) from None
        data = info.model_dump(mode="json")
        data["working_memory"] = state
        data["keys_count"] = len(state)
        return _dump(data)

    @server.resource(
        CHECKPOINTS_URI,
        name="checkpoints",
        mime_type=JSON,
        security=_OWN_VALIDATION,
        description="The session's checkpoints, newest first.",
    )
    async def checkpoints_resource(project_id: str, agent_instance_id: str, session_id: str) -> str:
        try:
            authorize(project_id)
            rows = await rt.lifecycle.list_checkpoints(project_id, agent_instance_id, session_id, 500)
        except MemoryServiceError as exc:
            raise _resource_error(exc) from None
        for row in rows:
            row["uri"] = CHECKPOINT_URI.format(
                project_id=project_id,
                agent_instance_id=agent_instance_id,
                session_id=session_id,
                checkpoint_id=row["checkpoint_id"],
            )
        return _dump({"checkpoints": rows})

    @server.resource(
        CHECKPOINT_URI,
        name="checkpoint",
        mime_type=JSON,
        security=_OWN_VALIDATION,
        description="One checkpoint, its state included.",
    )
    async def checkpoint_resource(project_id: str, agent_instance_id: str, session_id: str, checkpoint_id: str) -> str:
        try:
            scope, _ = await read_session(rt, project_id, agent_instance_id, session_id)
            cid = validate_identifier(checkpoint_id, "checkpoint_id")
            cp = await rt.store.get_checkpoint(scope, cid)
            if cp is None:
                raise NotFound(f"checkpoint '{cid}' does not exist for this session")
        except MemoryServiceError as exc:
            raise _resource_error(exc) from None
        data = cp.info.model_dump(mode="json")
        # A key whose TTL has passed since the pause is never returned (resume would not restore it either).
        now = rt.clock()
        data["state"] = cp.state(now)
        data["expires_at"] = {
            k: iso(to_datetime(it.expires_at)) for k, it in cp.live_items(now).items() if it.expires_at
        }
        return _dump(data)

    @server.resource(
        EPISODES_URI,
        name="episodes",
        mime_type=JSON,
        security=_OWN_VALIDATION,
        description="The project's most recent episodes.",
    )
    async def episodes_resource(project_id: str) -> str:
        try:
            project = authorize(project_id)
            episodes = await rt.episodic.recent(project, 50)
        except MemoryServiceError as exc:
            raise _resource_error(exc) from None
        return _dump({"episodes": [episode_json(e) for e in episodes]})

    @server.resource(EPISODE_URI, name="episode", mime_type=JSON, security=_OWN_VALIDATION, description="One episode.")
    async def episode_resource(project_id: str, episode_id: str) -> str:
        try:
            episode = await rt.episodic.get(authorize(project_id), episode_id)
        except MemoryServiceError as exc:
            raise _resource_error(exc) from None
        return _dump(episode_json(episode))


__all__ = ["read_session", "register_resources", "template"]
