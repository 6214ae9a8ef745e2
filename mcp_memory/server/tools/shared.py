"""What every tool module shares: the scope arguments, the other argument types, annotations and the reply.

The tool list is read by the model in every conversation, so each byte of it is paid for many times (issue 12):
the scope (project, agent, session) is described once, in few words, here; defaults do the work (project and
agent are optional wherever a default exists, :mod:`mcp_memory.server.scope`); results carry no output schema
(the structured content is described by the tool's description) and their text is compact JSON.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_memory.models import IDENTIFIER_PATTERN, OutcomeName, Scope
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.scope import resolve_agent, resolve_project
from mcp_memory.services.validation import MAX_IMPORTANCE, MIN_IMPORTANCE

ID_PATTERN = f"^{IDENTIFIER_PATTERN}$"

# -- the scope: described once, in the server's instructions (each copy here costs bytes in every tool) -----
ProjectId = str | None
AgentId = str | None
SessionId = str
NewSessionId = Annotated[str, Field(description="Your name for it.", pattern=ID_PATTERN)]
"""spawn's session_id: where the model picks the name, so the rule is published there (the service checks it
everywhere, and its error states it)."""

# -- other arguments -------------------------------------------------------------------------------------
Metadata = Annotated[dict[str, Any] | None, Field(description="Free-form.")]
Outcome = OutcomeName
Importance = Annotated[
    float | None, Field(ge=MIN_IMPORTANCE, le=MAX_IMPORTANCE, strict=True, description="Recall weight.")
]
Lessons = Annotated[list[str] | None, Field(description="For future tasks.")]
JSON_VALUE = {"type": ["string", "number", "boolean", "object", "array", "null"]}
"""The schema of "any JSON value" (an empty schema reads as "unknown" to some clients)."""


CheckpointId = str | None
"""An optional checkpoint id (checked by the service: the rule is in the error it answers; ids come from results)."""


def hints(title: str, *, read_only: bool = False, destructive: bool = False, idempotent: bool = False) -> Any:
    """``title`` and all four annotation hints of a tool (keyword arguments of ``server.tool``). The store is
    closed (nothing outside it is touched), so ``openWorldHint`` is false for every tool."""
    return {
        "title": title,
        "annotations": ToolAnnotations(
            read_only_hint=read_only, destructive_hint=destructive, idempotent_hint=idempotent, open_world_hint=False
        ),
    }


READ_ONLY = {"read_only": True, "destructive": False, "idempotent": True}


def reply(result: BaseModel | dict[str, Any]) -> CallToolResult:
    """A tool's result: structured content, and the same as compact JSON text (for clients that show only text)."""
    data = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


class ToolScope:
    """Resolves a call's scope arguments, defaults included (:mod:`mcp_memory.server.scope`)."""

    def __init__(self, server: MemoryServer) -> None:
        self.runtime = server.runtime
        self._defaults = server.defaults

    def project(self, project_id: str | None) -> str:
        """The call's project (given or defaulted), within the request's grant."""
        return str(resolve_project(self._defaults, project_id))

    def agent(self, agent_instance_id: str | None) -> str:
        """The call's agent instance (given or defaulted)."""
        return str(resolve_agent(self._defaults, agent_instance_id))

    def session(self, project_id: str | None, agent_instance_id: str | None, session_id: str) -> Scope:
        """The call's session."""
        return Scope.parse(self.project(project_id), self.agent(agent_instance_id), session_id)


__all__ = [
    "ID_PATTERN",
    "JSON_VALUE",
    "READ_ONLY",
    "AgentId",
    "CheckpointId",
    "Importance",
    "Lessons",
    "Metadata",
    "NewSessionId",
    "Outcome",
    "ProjectId",
    "SessionId",
    "ToolScope",
    "hints",
    "reply",
]
