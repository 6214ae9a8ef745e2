"""Which project and agent instance a request means when it names none.

In order: the request's bearer token (``default_project`` / ``default_agent`` of its configuration), then the
server's defaults (:class:`~mcp_memory.identity.DefaultScope`: the configured ``project_id`` /
``agent_instance_id``, on stdio filled from the installation's identity). With none of them the argument is
required: ``invalid_argument`` naming it. A project, given or defaulted, must be within the request's grant; a
defaulted one outside it is ``forbidden`` without its id (the caller did not send it: the server's default may be
another tenant's project).
"""

from __future__ import annotations

from uuid import UUID

from mcp_memory.errors import Forbidden, InvalidArgument
from mcp_memory.identity import DefaultScope
from mcp_memory.models import parse_uuid
from mcp_memory.server.auth import authorize, current_grant


def default_project(defaults: DefaultScope) -> UUID | None:
    """The project of a request that names none (None: no default)."""
    return current_grant().default_project or defaults.project_id


def default_agent(defaults: DefaultScope) -> UUID | None:
    """The agent instance of a request that names none (None: no default)."""
    return current_grant().default_agent or defaults.agent_instance_id


def authorize_default(defaults: DefaultScope) -> UUID | None:
    """The default project (None: no default) if the request's grant covers it; else ``forbidden`` without naming it."""
    project = default_project(defaults)
    if project is not None and not current_grant().allows(project):
        raise Forbidden("this request's token does not cover the server's default project: pass project_id")
    return project


def resolve_project(defaults: DefaultScope, project_id: str | UUID | None) -> UUID:
    """The request's project, given or defaulted, checked against its grant."""
    if project_id is not None:
        return authorize(project_id)
    project = authorize_default(defaults)
    if project is None:
        raise InvalidArgument("project_id is required (no default project is configured: MCP_MEMORY_PROJECT_ID)")
    return project


def resolve_agent(defaults: DefaultScope, agent_instance_id: str | UUID | None) -> UUID:
    """The request's agent instance, given or defaulted."""
    agent = agent_instance_id if agent_instance_id is not None else default_agent(defaults)
    if agent is None:
        raise InvalidArgument(
            "agent_instance_id is required (no default agent is configured: MCP_MEMORY_AGENT_INSTANCE_ID)"
        )
    return parse_uuid(agent, "agent_instance_id")


__all__ = ["authorize_default", "default_agent", "default_project", "resolve_agent", "resolve_project"]
