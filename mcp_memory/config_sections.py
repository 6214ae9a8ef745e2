"""The tables nested in :class:`~mcp_memory.config.Settings`: ``[hooks]`` (lifecycle hooks to load) and ``[http]``
(the SSE and Streamable HTTP transports) with its ``[[http.tokens]]``, and how their list settings read from an
environment variable.
"""

from __future__ import annotations

import json
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode


def _split_list(value: object) -> object:
    """A list setting given as text (an env var): a JSON list, or comma-separated items; other values as given."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class HookSettings(BaseModel):
    """Lifecycle hooks to load at start-up, each as ``package.module:function`` (an async callable)."""

    # NoDecode: from an env var the list comes as "a.b:f,c.d:g" (or JSON), parsed by _split, not as JSON only.
    spawn: Annotated[list[str], NoDecode] = Field(default_factory=list)
    pause: Annotated[list[str], NoDecode] = Field(default_factory=list)
    resume: Annotated[list[str], NoDecode] = Field(default_factory=list)
    terminate: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("spawn", "pause", "resume", "terminate", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _split_list(value)


class TokenSettings(BaseModel):
    """One bearer token of the HTTP transports: only its SHA-256 is stored (``mcp-memory hash-token``)."""

    name: str = Field(min_length=1, description="Who holds the token (shown in logs, never the token).")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 of the token, 64 hex digits.")
    projects: list[str] = Field(
        min_length=1, description='Project UUIDs this token may touch, or ["*"] for every project.'
    )
    default_project: UUID | None = Field(
        default=None, description="Project of this token's calls that pass no project_id (one of its projects)."
    )
    default_agent: UUID | None = Field(
        default=None, description="Agent instance of this token's calls that pass no agent_instance_id."
    )

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("projects")
    @classmethod
    def _projects(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            if item == "*":
                out.append(item)
                continue
            try:
                parsed = UUID(item)
            except ValueError:
                raise ValueError(f"projects: {item!r} is neither a project UUID nor '*'") from None
            out.append(str(parsed))
        return out

    @model_validator(mode="after")
    def _default_within_projects(self) -> TokenSettings:
        if (
            self.default_project is not None
            and "*" not in self.projects
            and str(self.default_project) not in self.projects
        ):
            raise ValueError(f"default_project {self.default_project} is not one of the token's projects")
        return self


class HttpSettings(BaseModel):
    """The SSE and Streamable HTTP transports (``mcp-memory serve --transport sse|http``)."""

    # "inf" and "nan" parse as floats and pass gt=0; no duration here means anything by them.
    model_config = ConfigDict(allow_inf_nan=False)

    host: str = Field(default="127.0.0.1", description="Interface to bind; anything but loopback needs tokens.")
    port: int = Field(default=8765, ge=0, le=65535)
    stateless: bool = Field(
        default=False,
        description="Streamable HTTP without server-side sessions (several processes behind one balancer).",
    )
    # NoDecode + _json_list: from an env var the list is JSON (MCP_MEMORY_HTTP__TOKENS='[{"name": ...}]').
    tokens: list[TokenSettings] = Field(
        default_factory=list, description="Bearer tokens; none means no authentication (loopback only)."
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host headers accepted besides the bind address ('name:port', 'name:*'); ['*']: no check.",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origin headers accepted besides the bind address ('https://app.example:*'); ['*']: no check.",
    )
    max_request_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Larger request bodies get 413; on stdio, a longer line gets -32600 (skipped unread).",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description=(
            "Open connections; past it the longest-idle one (no request in flight) is closed to make room, and "
            "with none idle a new request gets 503 + Retry-After."
        ),
    )
    max_connections_per_client: int = Field(
        default=100,
        ge=1,
        description=(
            "Open connections from one client address; past it that address's longest-idle one is closed, and "
            "with none idle its new request gets 429 + Retry-After. Behind a reverse proxy raise it."
        ),
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A request's headers must arrive within this long of the connection opening (or of the "
        "previous response); else 408 and the connection is closed.",
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A request's body must arrive within this long of its headers; else closed."
    )
    keep_alive_timeout_seconds: float = Field(
        default=5.0, gt=0, description="An idle keep-alive connection is closed after this many seconds."
    )
    max_sessions: int = Field(
        default=10_000,
        ge=1,
        description="Stateful Streamable HTTP sessions open at once; past it initialize gets 503 + Retry-After.",
    )
    max_sessions_per_token: int = Field(
        default=100,
        ge=1,
        description="Stateful Streamable HTTP sessions one bearer token may hold (and, counted apart, SSE streams "
        "and listen streams); past it its initialize (or GET /sse) gets 429 + Retry-After, its listen an error; "
        "other tokens are unaffected.",
    )
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, description="/readyz: how long the stores may take.")
    metrics_require_token: bool = Field(
        default=True, description='/metrics needs a bearer token of every project ("*") when tokens are configured.'
    )
    session_idle_timeout_seconds: float = Field(
        default=1800.0, gt=0, description="Stateful Streamable HTTP: an idle session is closed after this long."
    )

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _split_list(value)


__all__ = ["HookSettings", "HttpSettings", "TokenSettings"]
