"""The ``resume_briefing`` prompt and its tool twin ``memory_prompt``: a briefing for an agent starting work.

Both hand over the same text (:mod:`mcp_memory.services.briefing`): the prompt as one user message, for clients
that let a person or the model pick prompts; the tool as its text content (plus a small structured result), for
the many clients that never show prompts to the model (the reason redis/agent-memory-server offers its
``memory_prompt`` as a tool too).

MCP prompt arguments are strings; ``token_budget`` is parsed here. A bad argument, an unknown one, one past its
limit, a project outside the request's token, or a session that does not exist is a JSON-RPC error (-32602) whose
message starts with the docs/contract.md code, never a generic "Error rendering prompt"; a store that is down is
-32603 (:func:`mcp_memory.server.protocol.request_error` decides, for this prompt and any other).
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.prompts.base import Message, Prompt, UserMessage
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field, ValidationError

from mcp_memory.errors import InvalidArgument, MemoryServiceError
from mcp_memory.server.app import MemoryServer, as_service_error
from mcp_memory.server.protocol import echo, request_error
from mcp_memory.server.scope import default_agent, resolve_project
from mcp_memory.server.tools.shared import hints
from mcp_memory.services.briefing import (
    DEFAULT_TOKEN_BUDGET,
    MAX_TOKEN_BUDGET,
    MIN_TOKEN_BUDGET,
    Briefing,
    BriefingRequest,
    build_briefing,
)

PROMPT_NAME = "resume_briefing"
TOOL_NAME = "memory_prompt"
DESCRIPTION = (
    "Briefing to start or resume work: a session's state and checkpoints, and lessons of relevant past episodes, "
    "within a token budget."
)
TOOL_DESCRIPTION = DESCRIPTION

_TASK = "What you will do."
_SESSION = "Its session."
_AGENT = "Agent UUID; omit for yours (the default)."
_PROJECT = "Project UUID; omit for yours (the default)."
_BUDGET = f"Tokens, {MIN_TOKEN_BUDGET}-{MAX_TOKEN_BUDGET}."


class BriefingResult(BaseModel):
    text: str = Field(description="The briefing (Markdown), also the text content.")
    tokens: int = Field(description="Its size in tokens, estimated as UTF-8 bytes / 4.")
    session_status: str | None
    checkpoint_ids: list[str]
    episode_ids: list[str]
    left_out: list[str] = Field(description="What did not fit in token_budget.")


class _BriefingPrompt(Prompt):
    """The SDK's prompt, with its failures turned into clear -32602 errors.

    The SDK reports an argument its validation rejects (or one the function does not take) as "Error rendering
    prompt" with code 0; a model can act on ``invalid_argument: unknown argument(s): ...``."""

    async def render(self, arguments: dict[str, Any] | None, context: Context[Any, Any]) -> Any:
        unknown = sorted(set(arguments or {}) - {a.name for a in self.arguments or []})
        if unknown:
            raise request_error(InvalidArgument(f"unknown argument(s) for {self.name}: {echo(', '.join(unknown))}"))
        try:
            return await super().render(arguments, context)
        except MCPError:
            raise
        except ValueError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError | MemoryServiceError):
                raise request_error(as_service_error(cause)) from None
            raise request_error(as_service_error(exc)) from None


async def briefing_for(
    server: MemoryServer,
    task: object,
    session_id: object,
    agent_instance_id: object,
    project_id: object,
    token_budget: object,
) -> Briefing:
    """Resolve the scope as the tools do (defaults, token check), validate, and build the briefing.

    Without an agent (given or default) the briefing covers the project's episodes and no session."""
    rt = server.runtime
    project = resolve_project(server.defaults, project_id if project_id is None else str(project_id))
    if agent_instance_id is None:
        agent_instance_id = default_agent(server.defaults)
    # Checked at call time: list_sessions may be registered by another module (or not at all).
    has_list_sessions = server._tool_manager.get_tool("list_sessions") is not None
    request = BriefingRequest.parse(project, task, agent_instance_id, session_id, token_budget, has_list_sessions)
    return await build_briefing(rt, request)


def register_prompts(server: MemoryServer) -> None:
    """Register the ``resume_briefing`` prompt and the ``memory_prompt`` tool on ``server``."""

    async def resume_briefing(
        task: Annotated[str | None, Field(description=_TASK)] = None,
        session_id: Annotated[str | None, Field(description=_SESSION)] = None,
        agent_instance_id: Annotated[str | None, Field(description=_AGENT)] = None,
        project_id: Annotated[str | None, Field(description=_PROJECT)] = None,
        token_budget: Annotated[str | None, Field(description=_BUDGET)] = None,
    ) -> list[Message]:
        try:  # under the call deadline MemoryServer.get_prompt sets
            briefing = await briefing_for(server, task, session_id, agent_instance_id, project_id, token_budget)
        except MemoryServiceError as exc:
            raise request_error(exc) from None
        return [UserMessage(briefing.text)]

    server.add_prompt(
        _BriefingPrompt.from_function(
            resume_briefing, name=PROMPT_NAME, title="Briefing to start or resume work", description=DESCRIPTION
        )
    )

    @server.tool(
        name=TOOL_NAME,
        description=TOOL_DESCRIPTION,
        **hints("Briefing", read_only=True, idempotent=True),
    )
    async def memory_prompt(
        task: Annotated[str | None, Field(description=_TASK)] = None,
        session_id: Annotated[str | None, Field(description=_SESSION)] = None,
        agent_instance_id: str | None = None,
        project_id: str | None = None,
        token_budget: Annotated[
            int, Field(ge=MIN_TOKEN_BUDGET, le=MAX_TOKEN_BUDGET, strict=True, description=_BUDGET)
        ] = DEFAULT_TOKEN_BUDGET,
    ) -> CallToolResult:
        # The tool call's deadline is set by MemoryServer.call_tool.
        b = await briefing_for(server, task, session_id, agent_instance_id, project_id, token_budget)
        result = BriefingResult(
            text=b.text,
            tokens=b.tokens,
            session_status=b.session_status,
            checkpoint_ids=b.checkpoint_ids,
            episode_ids=b.episode_ids,
            left_out=b.left_out,
        )
        # The text content is the briefing itself, not a JSON copy of the result: it is what the model reads.
        return CallToolResult(
            content=[TextContent(type="text", text=b.text)], structured_content=result.model_dump(mode="json")
        )


__all__ = ["DESCRIPTION", "PROMPT_NAME", "TOOL_NAME", "BriefingResult", "briefing_for", "register_prompts"]
