"""``completion/complete``: stored identifiers for any resource-template or prompt argument that names one.

Generic over argument names, so every template and prompt (the briefing prompt included, whoever registers it)
completes the same way: ``project_id``, ``agent_instance_id``, ``session_id``, ``checkpoint_id`` and ``episode_id``
complete from the store, prefix-matched (exact characters, no case folding), most recent first, at most
:data:`MAX_VALUES` values with ``total`` and ``hasMore``. The arguments already given (``context.arguments``)
narrow the search: the project (else the configured default), the agent, the session.

Everything stays within the request's grant: a project outside it, a malformed id, an unknown template or
prompt, or an argument that names nothing stored answers an empty list, never an error (an error would tell a
restricted token which projects exist). So does a store that fails, or does not answer within the call deadline
(``call_timeout_seconds``, as for a tool call); that one is logged at WARNING. So does a completion past its MCP
session's cap on calls in flight (``max_calls_in_flight_per_mcp_session``), without reading anything (the cap logs
and counts the refusal).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final
from uuid import UUID

from mcp.server.context import ServerRequestContext
from mcp_types import (
    CompleteRequestParams,
    CompleteResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

from mcp_memory import deadlines, faults
from mcp_memory.errors import Unavailable
from mcp_memory.models import parse_uuid
from mcp_memory.server.app import MemoryServer, as_service_error
from mcp_memory.server.auth import authorize, current_grant
from mcp_memory.server.in_flight import session_of
from mcp_memory.server.scope import default_agent, default_project
from mcp_memory.stores.ports import IdentifierKind

logger = logging.getLogger(__name__)

MAX_VALUES: Final = 100
"""The protocol's bound on one completion answer."""
ARGUMENT_KINDS: Final[dict[str, IdentifierKind]] = {
    "project_id": "project",
    "agent_instance_id": "agent",
    "session_id": "session",
    "checkpoint_id": "checkpoint",
    "episode_id": "episode",
}
_PLACEHOLDER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")
_EMPTY = Completion(values=[], total=0, has_more=False)


async def _known_arguments(server: MemoryServer, ref: PromptReference | ResourceTemplateReference) -> set[str]:
    """The argument names of the referenced template or prompt (empty if we serve no such thing)."""
    if isinstance(ref, ResourceTemplateReference):
        for template in await server.list_resource_templates():
            if template.uri_template == ref.uri:
                return set(_PLACEHOLDER.findall(template.uri_template))
        return set()
    for prompt in await server.list_prompts():
        if prompt.name == ref.name:
            return {a.name for a in prompt.arguments or ()}
    return set()


def _optional_uuid(value: str | None, what: str) -> UUID | None:
    return None if not value else parse_uuid(value, what)


async def complete(
    server: MemoryServer,
    ref: PromptReference | ResourceTemplateReference,
    argument: CompletionArgument,
    context: CompletionContext | None,
) -> Completion:
    """The completion of ``argument`` of ``ref`` (empty when it names nothing stored or nothing in scope)."""
    kind = ARGUMENT_KINDS.get(argument.name)
    if kind is None or argument.name not in await _known_arguments(server, ref):
        return _EMPTY
    given = dict(context.arguments or {}) if context is not None else {}
    try:
        if kind == "project":
            allowed = current_grant().projects
            projects: list[UUID] | None = None if allowed is None else sorted(allowed)
        else:
            fallback = default_project(server.defaults)  # the token's, the configured one, or the installation's
            project = given.get("project_id") or (str(fallback) if fallback else None)
            if project is None:
                return _EMPTY
            projects = [authorize(project)]
        agent_text = given.get("agent_instance_id")
        if not agent_text and kind in ("session", "checkpoint"):
            own = default_agent(server.defaults)
            agent_text = str(own) if own else None
        agent = None if kind == "agent" else _optional_uuid(agent_text, "agent_instance_id")
        await faults.reached("completion.read")
        values, total = await server.runtime.sessions.complete(
            kind, argument.value, MAX_VALUES, projects, agent, given.get("session_id") or None
        )
    except Exception as exc:
        # Out of scope, malformed or a store that failed: nothing to offer (the caller learns nothing from the
        # reason). The server's own failures are logged as such; the caller's mistakes are not worth a warning.
        err = as_service_error(exc)
        level = logging.WARNING if err.code in ("unavailable", "internal") else logging.DEBUG
        logger.log(level, "completion of %s answered empty: %s", argument.name, err)
        return _EMPTY
    return Completion(values=values, total=total, has_more=total > len(values))


def register_completions(server: MemoryServer) -> None:
    """Serve ``completion/complete`` on ``server`` (and so declare the ``completions`` capability)."""

    settings = server.runtime.settings

    async def handle(ctx: ServerRequestContext[Any, Any], params: CompleteRequestParams) -> CompleteResult:
        try:
            with (
                # Tracked, not only placed: a stop cuts a completion off with the other calls in flight.
                server.in_flight.track(session_of(ctx), "completion/complete"),
                deadlines.call_deadline(settings.call_timeout_seconds, settings.call_cleanup_seconds),
            ):
                completion = await complete(server, params.ref, params.argument, params.context)
        except Unavailable:
            # The session's places are all taken, or a stop cut the call off (complete answers its own failures empty).
            completion = _EMPTY
        return CompleteResult(completion=completion)

    server._lowlevel_server.add_request_handler("completion/complete", CompleteRequestParams, handle)


__all__ = ["ARGUMENT_KINDS", "MAX_VALUES", "complete", "register_completions"]
