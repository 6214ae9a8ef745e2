"""Bearer tokens for the HTTP transports, and the projects each request may touch.

A token is configured as its SHA-256 (``mcp-memory hash-token``) with the projects it covers. The ASGI
middleware :class:`BearerAuthMiddleware` answers 401 to a request without a valid token and otherwise puts the
token's :class:`Grant` into the ASGI scope. The SDK hands every MCP message the Starlette request it arrived
with (``ctx.request``), also when the handler runs in another task than the HTTP request (SSE, stateful
Streamable HTTP); :func:`grant_middleware` reads the grant from there and sets it in a context variable around
the handler. Tools, resources and the resource listing ask :func:`authorize` / :func:`visible_projects`.

Without a request (stdio) the grant is the server's fallback: every project, as for any local process that
may open the database file anyway. An HTTP server with tokens sets the fallback to no project at all, so a
message that somehow arrives without a grant is refused rather than trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_memory.config_sections import TokenSettings
from mcp_memory.errors import Forbidden
from mcp_memory.models import parse_uuid

GRANT_SCOPE_KEY: Final = "mcp_memory.grant"
"""Where :class:`BearerAuthMiddleware` leaves the request's :class:`Grant` in the ASGI scope."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What one request may touch: ``projects`` is None for every project. A token may also name the project
    and agent instance of its calls that name none (``default_project``, ``default_agent``)."""

    name: str
    projects: frozenset[UUID] | None
    default_project: UUID | None = None
    default_agent: UUID | None = None
    token: str = field(default="", compare=False)
    """``sha256:<hash>`` of the token this grant is of (empty for a grant of no token): unique, where names are not."""

    def allows(self, project: UUID) -> bool:
        return self.projects is None or project in self.projects

    @property
    def holder(self) -> str:
        """Who a per-token cap counts: the token (two tokens may share a name), else the grant's name."""
        return self.token or self.name

    @property
    def label(self) -> str:
        """The grant as an operator reads it in the log: the token's name, with the start of its hash when there is a
        token (two tokens may share a name)."""
        return f"{self.name} ({self.token[:15]})" if self.token else self.name


EVERYTHING: Final = Grant("local", None)
"""The grant of stdio and of an HTTP server without tokens (loopback only)."""
NOTHING: Final = Grant("nobody", frozenset())
"""The fallback of an HTTP server with tokens: a message without a grant may touch nothing."""

_current: ContextVar[Grant] = ContextVar("mcp_memory_grant", default=EVERYTHING)


def current_grant() -> Grant:
    """The grant of the request being handled (every project outside MCP: the Python API is not gated)."""
    return _current.get()


@contextmanager
def granted(grant: Grant) -> Iterator[Grant]:
    """Handle what runs inside with ``grant`` (the MCP middleware's job; also handy in tests)."""
    token = _current.set(grant)
    try:
        yield grant
    finally:
        _current.reset(token)


def authorize(project_id: str | UUID) -> UUID:
    """The project as a UUID if the current request may touch it; else ``Forbidden``.

    A malformed id is ``invalid_argument`` (that reveals nothing about anybody's data)."""
    project = parse_uuid(project_id, "project_id")
    if not current_grant().allows(project):
        raise Forbidden(f"this request's token does not cover project {project}")
    return project


def visible_projects(default: UUID | None) -> list[UUID] | None:
    """The projects resources/list may show: a token's own projects, all of them; for a grant of every project
    (stdio, a server without tokens, a token for "*"), its default project, else the configured ``default``, else
    every project (None). The configured default never narrows a token's list: it may name a project the token
    does not have."""
    grant = current_grant()
    if grant.projects is None:
        preferred = grant.default_project or default
        return None if preferred is None else [preferred]
    return sorted(grant.projects)


# -- tokens ----------------------------------------------------------------------------------------------
def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a token is configured.

    A plain hash is enough because tokens are random (:func:`generate_token`: 256 bits), not passwords."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def generate_token() -> str:
    """A new random token (256 bits, URL-safe)."""
    return "mcpm_" + secrets.token_urlsafe(32)


class TokenTable:
    """The configured tokens; looks a presented token up in constant time."""

    def __init__(self, tokens: Sequence[TokenSettings]) -> None:
        self._entries: list[tuple[bytes, Grant]] = []
        seen: set[str] = set()
        for t in tokens:
            if t.sha256 in seen:
                raise ValueError(f"http.tokens: token {t.name!r} has the same hash as another token")
            seen.add(t.sha256)
            projects = None if "*" in t.projects else frozenset(UUID(p) for p in t.projects)
            grant = Grant(t.name, projects, t.default_project, t.default_agent, token=f"sha256:{t.sha256}")
            self._entries.append((bytes.fromhex(t.sha256), grant))

    def __bool__(self) -> bool:
        return bool(self._entries)

    def verify(self, token: str) -> tuple[str, Grant] | None:
        """The token's hash and grant, or None for an unknown token.

        Every configured hash is compared (``hmac.compare_digest``), so the time taken says nothing about
        which token or how much of one matched."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: tuple[str, Grant] | None = None
        for expected, grant in self._entries:
            if hmac.compare_digest(expected, digest) and found is None:
                found = (expected.hex(), grant)
        return found


def not_an_oauth_server(path: str) -> bool:
    """Whether ``path`` is where an OAuth client looks for an authorization server (RFC 8414 / 9728 metadata,
    dynamic client registration and the default endpoints). There is none: such a request gets 404 without a
    token, so Claude Code and mcp-remote report that a token is needed rather than a failed client registration
    (a 401 there read as "Dynamic Client Registration rejected")."""
    return path.startswith("/.well-known/") or path in _OAUTH_DEFAULT_ENDPOINTS


_OAUTH_DEFAULT_ENDPOINTS: Final = frozenset({"/register", "/authorize", "/token"})
_NO_OAUTH_BODY: Final = json.dumps(
    {
        "error": "not_found",
        "error_description": "this server has no OAuth authorization server: send the bearer token its operator "
        "configured (Authorization: Bearer <token>)",
    }
).encode()


def _unauthorized(error: str | None, description: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    challenge = 'Bearer realm="mcp-memory"'
    if error:
        challenge += f', error="{error}", error_description="{description}"'
    body = json.dumps({"error": error or "unauthorized", "error_description": description}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", challenge.encode()),
    ]
    return headers, body


class BearerAuthMiddleware:
    """ASGI middleware: 401 (``WWW-Authenticate: Bearer``) unless the request carries a configured token.

    Paths in ``public`` (health probes) pass without one; OAuth discovery and registration paths get 404
    (:func:`not_an_oauth_server`). On success the scope gets the request's
    :class:`Grant` and an SDK ``AuthenticatedUser`` whose client_id is the token's hash, so the SDK binds each
    SSE and Streamable HTTP session to the token that opened it."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenTable,
        public: frozenset[str] = frozenset(),
        on_reject: Any = None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.public = public
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # no WebSocket endpoints; never unchecked
            return
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        if not_an_oauth_server(scope["path"]):
            # Answered here rather than by the router, so no route added there later is reachable without a token.
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_NO_OAUTH_BODY)).encode())]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": _NO_OAUTH_BODY})
            return
        header = Headers(scope=scope).get("authorization")
        if header is None:
            await self._reject(send, None, "a bearer token is required")
            return
        scheme, _, token = header.partition(" ")
        token = token.strip()
        found = self.tokens.verify(token) if scheme.lower() == "bearer" and token else None
        if found is None:
            await self._reject(send, "invalid_token", "the bearer token is not valid")
            return
        digest, grant = found
        scope[GRANT_SCOPE_KEY] = grant
        scope["auth"] = AuthCredentials([])
        scope["user"] = AuthenticatedUser(
            AccessToken(token=digest, client_id=f"sha256:{digest}", scopes=[], claims={"name": grant.name})
        )
        await self.app(scope, receive, send)

    async def _reject(self, send: Send, error: str | None, description: str) -> None:
        if self.on_reject is not None:
            self.on_reject("unauthorized")
        headers, body = _unauthorized(error, description)
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class GrantMiddleware:
    """MCP server middleware: handle each message with the grant of the HTTP request it came in
    (``ctx.request.scope``), or the server's fallback when there is none."""

    def __init__(self) -> None:
        self.fallback: Grant = EVERYTHING

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        scope = getattr(ctx.request, "scope", None)
        grant = scope.get(GRANT_SCOPE_KEY) if isinstance(scope, dict) else None
        if not isinstance(grant, Grant):
            grant = self.fallback
        with granted(grant):
            return await call_next(ctx)


__all__ = [
    "EVERYTHING",
    "GRANT_SCOPE_KEY",
    "NOTHING",
    "BearerAuthMiddleware",
    "Grant",
    "GrantMiddleware",
    "TokenTable",
    "authorize",
    "current_grant",
    "generate_token",
    "granted",
    "hash_token",
    "not_an_oauth_server",
    "visible_projects",
]
