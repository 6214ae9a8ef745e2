"""The MCP server object: an ``MCPServer`` whose errors speak docs/contract.md's codes.

Tools and resources are registered by :mod:`.tools` and :mod:`.resources`; this module only builds the
server, maps every failure to ``<code>: <sentence>`` (never a traceback), and lists recent checkpoints and
episodes as concrete resources, paged.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    GetPromptResult,
    InputRequiredResult,
    ListResourcesResult,
    PaginatedRequestParams,
    TextContent,
)
from pydantic import AnyUrl, ValidationError

from mcp_memory import deadlines
from mcp_memory.errors import (
    ERROR_CODES,
    Forbidden,
    Internal,
    InvalidArgument,
    MemoryServiceError,
    describe_validation_error,
)
from mcp_memory.identity import DefaultScope
from mcp_memory.server.arguments import keep_arguments_verbatim, lean_schema
from mcp_memory.server.auth import GrantMiddleware, authorize, current_grant, visible_projects
from mcp_memory.server.background import BackgroundTasks
from mcp_memory.server.effects import CallEffects, collecting
from mcp_memory.server.in_flight import InFlightCalls, McpSession, session_of
from mcp_memory.server.listing import recent_resources
from mcp_memory.server.metrics import ServerMetrics
from mcp_memory.server.protocol import (
    RefusedRead,
    check_resource_uri,
    echo,
    no_such_resource,
    request_error,
    resource_error,
    unknown_prompt,
    unknown_tool,
)
from mcp_memory.server.scope import authorize_default
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.version import __version__

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
mcp-memory keeps your working memory for a session and lets it survive interruptions and new conversations.
Typical use: spawn a session (optionally with initial_state), keep state with memory_set/memory_get,
pause to checkpoint it before stopping, resume to restore it later (the newest checkpoint by default),
and terminate when the task is done: the session becomes an episode that search_episodes can recall.
At the start of a task, call memory_prompt (or list_sessions, search_episodes) to find earlier work and lessons.
Scope, the same for every tool: session_id is your own name for a session (1-128 characters of
A-Z a-z 0-9 . _ -); project_id and agent_instance_id are UUIDs that default to your project and your agent
identity, so omit them unless told otherwise. A paused session still accepts writes (it stays paused until
resume, which restores the checkpoint over them). Errors start with a code: invalid_argument, not_found,
conflict, too_large, forbidden, unavailable, internal."""


def as_service_error(exc: BaseException) -> MemoryServiceError:
    """Find the docs/contract.md error behind an exception raised through the SDK's wrappers."""
    cur: BaseException | None = exc
    while cur is not None:
        if isinstance(cur, MemoryServiceError):
            return cur
        if isinstance(cur, ValidationError):
            return InvalidArgument(describe_validation_error(cur))
        cur = cur.__cause__
    logger.error("unexpected failure", exc_info=exc)
    return Internal("unexpected error inside the server; details are in its log")


def _session(context: Context[Any, Any] | None) -> McpSession | None:
    """The MCP session a call came on; None for a call made from Python (no request: no session's cap applies)."""
    try:
        return session_of(context.request_context) if context is not None else None
    except ValueError:  # a Context built outside a request
        return None


_RESOURCE_PROJECT = re.compile(r"memory://projects/([^/?#]*)")


def _error_code(result: CallToolResult | InputRequiredResult) -> str | None:
    """The docs/contract.md code of a tool error result (None for a success)."""
    if not isinstance(result, CallToolResult) or not result.is_error:
        return None
    first = result.content[0] if result.content else None
    code = first.text.partition(":")[0] if isinstance(first, TextContent) else ""
    return code if code in ERROR_CODES else "internal"


class MemoryServer(MCPServer[Any]):
    """mcp-memory's MCP server. ``runtime`` is started by the server's lifespan.

    Every tool call, resource read and resource listing is limited to the projects of the request's grant
    (:mod:`.auth`: the bearer token's projects over HTTP, every project on stdio); tool calls are counted in
    ``metrics``. One MCP session has at most ``max_calls_in_flight_per_mcp_session`` of them (prompts and
    completions included) in flight; one more is refused at once, ``unavailable`` (:mod:`.in_flight`)."""

    def __init__(self, runtime: MemoryRuntime, defaults: DefaultScope | None = None) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.defaults = defaults or DefaultScope(settings.project_id, settings.agent_instance_id)
        """The project and agent of a call that names none (a token's own defaults come first: :mod:`.scope`)."""
        self.metrics = ServerMetrics()
        self.in_flight = InFlightCalls(settings.max_calls_in_flight_per_mcp_session, self.metrics.call_refused)
        """The calls being served, at most so many per MCP session (a refusal is logged and counted in
        ``metrics``): a stop over HTTP cuts off those still running after its grace (:mod:`.in_flight`)."""
        self.grants = GrantMiddleware()
        """Sets each message's grant; ``grants.fallback`` applies to messages without an HTTP request."""
        self.tool_observers: list[Callable[[str, dict[str, Any], CallToolResult, CallEffects], Awaitable[None]]] = []
        """Called after each successful tool call with what it changed beyond its result (:mod:`.effects`);
        subscriptions notify from here. Must not raise, and must not wait on anyone else (the call's answer waits
        for them): what takes time goes to ``background``."""
        self.background = BackgroundTasks()
        """Work the calls start and do not wait for (notification delivery), run while the server is serving."""

        @asynccontextmanager
        async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
            async with runtime, self.background.serving():
                yield None

        super().__init__(
            name="mcp-memory",
            title="mcp-memory",
            description="Working, checkpointed and episodic memory for LLM agents",
            instructions=INSTRUCTIONS,
            version=__version__,
            lifespan=lifespan,
            log_level=runtime.settings.log_level,
            middleware=[self.grants],
        )

    def add_tool(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Register a tool whose arguments arrive exactly as sent (:mod:`.arguments`): no string is decoded
        as JSON, whatever its annotation. Every tool goes through here, ``@server.tool()`` included."""
        super().add_tool(fn, *args, **kwargs)
        for tool in self._tool_manager.list_tools():
            keep_arguments_verbatim(tool)
            tool.parameters = lean_schema(tool.parameters)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Call a tool; every failure becomes an ``isError`` result starting with its docs/contract.md code.

        Counted in ``metrics`` (tool, error code, latency), whatever the transport. Every store step of the call
        shares one deadline (``call_timeout_seconds``, see :mod:`mcp_memory.deadlines`)."""
        label = name if self._tool_manager.get_tool(name) is not None else "unknown"
        started = time.perf_counter()
        code: str | None = "internal"
        settings = self.runtime.settings
        try:
            with collecting() as effects:
                with deadlines.call_deadline(settings.call_timeout_seconds, settings.call_cleanup_seconds):
                    result = await self._call_tool(name, arguments, context)
            code = _error_code(result)
            if code is None and isinstance(result, CallToolResult):
                for observe in self.tool_observers:
                    await observe(name, arguments, result, effects)
            return result
        except MCPError:
            code = "protocol"
            raise
        except anyio.get_cancelled_exc_class():
            code = "cancelled"
            raise
        finally:
            self.metrics.observe_tool(label, time.perf_counter() - started, code)

    def _check_project(self, tool_properties: dict[str, Any], arguments: dict[str, Any]) -> None:
        """Refuse a call for a project outside the request's grant before the tool runs (``forbidden``)."""
        if current_grant().projects is None:
            return
        if "project_id" not in tool_properties:
            raise Forbidden("this tool is open only to tokens that cover every project")
        project = arguments.get("project_id")
        if project is None:
            authorize_default(self.defaults)
        else:
            authorize(project)

    async def _call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            # Not a tool that failed but a request for one that is not there: a protocol error (docs/contract.md).
            raise unknown_tool(name)
        try:
            properties = tool.parameters.get("properties", {})
            # A misspelt argument (``ttl`` for ``ttl_seconds``) must not be silently dropped.
            unknown = sorted(set(arguments) - set(properties))
            if unknown:
                raise InvalidArgument(f"unknown argument(s) for {name}: {echo(', '.join(unknown))}")
            self._check_project(properties, arguments)
            with self.in_flight.track(_session(context), "tools/call"):
                return await super().call_tool(name, arguments, context)
        except MemoryServiceError as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
        except MCPError:
            raise
        except ToolError as exc:
            err = as_service_error(exc)
            if err.code in ("internal", "unavailable"):
                logger.warning("tool %s failed: %s", name, err)
            else:
                logger.info("tool %s: %s", name, err)
            return CallToolResult(content=[TextContent(type="text", text=str(err))], is_error=True)

    async def _handle_list_resources(
        self, ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        """resources/list: recent checkpoints and episodes, newest first, one page per call.

        The cursor is a position (the last item's time and URI), not an offset, so that new checkpoints
        arriving between pages neither repeat nor skip items; at most ``resources_list_limit`` items are
        offered over all pages. Only projects within the request's grant are listed. A store that fails is a
        JSON-RPC error with a ``<code>: <sentence>`` message (-32603 for ``unavailable`` and ``internal``), never
        the exception's own text. Like a resource read it runs under the call deadline and can be cut off by a
        stop (``unavailable``)."""
        after = decode_cursor(params.cursor if params else None)
        settings = self.runtime.settings
        try:
            with (
                self.in_flight.track(session_of(ctx), "resources/list"),
                deadlines.call_deadline(settings.call_timeout_seconds, settings.call_cleanup_seconds),
            ):
                entries = await recent_resources(
                    self.runtime, visible_projects(settings.project_id), after.at if after is not None else None
                )
        except Exception as exc:
            err = as_service_error(exc)  # an unexpected failure is logged there with its traceback, for the log only
            logger.warning("resources/list failed: %s", err)
            raise request_error(err) from None
        if after is not None:
            entries = [e for e in entries if (e[0], e[1].uri) < (after.at, after.uri)]
        room = settings.resources_list_limit - (after.served if after else 0)
        page = entries[: max(0, min(settings.resources_page_size, room))]
        served = (after.served if after else 0) + len(page)
        more = page and len(entries) > len(page) and served < settings.resources_list_limit
        next_cursor = encode_cursor(_Position(page[-1][0], page[-1][1].uri, served)) if more else None
        return ListResourcesResult(resources=[r for _, r in page], next_cursor=next_cursor)

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        """Read a resource; every failure is a JSON-RPC error whose message starts with its docs/contract.md code
        (:mod:`.protocol`: the resource-not-found code of the request's protocol version for ``not_found`` and
        ``forbidden``, -32602 for a malformed URI).

        One outside the request's grant is refused before any lookup (``forbidden:``). Each resource function
        checks its project again (:mod:`.resources`); this gate also covers a URI that matches no template, so an
        answer never tells a restricted token what exists."""
        text = str(uri)
        try:
            check_resource_uri(text)
            if current_grant().projects is not None:
                match = _RESOURCE_PROJECT.match(text)
                if match is None:
                    raise Forbidden("this resource is open only to tokens that cover every project")
                authorize(match.group(1))
            settings = self.runtime.settings
            with (
                self.in_flight.track(_session(context), "resources/read"),
                deadlines.call_deadline(settings.call_timeout_seconds, settings.call_cleanup_seconds),
            ):
                return await super().read_resource(uri, context)
        except MemoryServiceError as exc:
            err = exc
        except RefusedRead as exc:
            err = exc.error
        except ResourceNotFoundError:
            err = no_such_resource(text)
        except ResourceError as exc:  # a crash inside a resource function, or a docs/contract.md error it did not wrap
            err = as_service_error(exc)
        logger.info("resource %r: %s", echo(text), err)
        raise resource_error(err, text, context.protocol_version if context else None) from None

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        """Get a prompt; an unknown one, missing arguments or a prompt's docs/contract.md error is a JSON-RPC
        error (-32602 for the caller's mistakes) with a ``<code>: <sentence>`` message, never a logged traceback.
        Like a resource read it runs under the call deadline (a stalled store: -32603, ``unavailable: ...``)."""
        prompt = self._prompt_manager.get_prompt(name)
        if prompt is None:
            raise unknown_prompt(name)
        missing = sorted({a.name for a in prompt.arguments or [] if a.required} - set(arguments or {}))
        if missing:
            raise request_error(InvalidArgument(f"missing argument(s) for prompt {name}: {', '.join(missing)}"))
        settings = self.runtime.settings
        try:
            with (
                self.in_flight.track(_session(context), "prompts/get"),
                deadlines.call_deadline(settings.call_timeout_seconds, settings.call_cleanup_seconds),
            ):
                return await super().get_prompt(name, arguments, context)
        except MCPError:
            raise
        except Exception as exc:
            raise request_error(as_service_error(exc)) from None


@dataclass(frozen=True, slots=True)
class _Position:
    """Where a resources/list page ended."""

    at: float
    uri: str
    served: int


def encode_cursor(position: _Position) -> str:
    """An opaque cursor for resources/list."""
    raw = json.dumps({"t": position.at, "u": position.uri, "n": position.served})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str | None) -> _Position | None:
    """The position a cursor names (None for none); a malformed cursor is an invalid-params error."""
    if not cursor:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        position = _Position(float(data["t"]), str(data["u"]), int(data["n"]))
        if position.served < 0:
            raise ValueError(position)
        return position
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise MCPError(code=INVALID_PARAMS, message="invalid_argument: malformed cursor") from None


__all__ = ["MemoryServer", "as_service_error", "describe_validation_error"]
