"""What every ``mcp-memory`` sub-command shares: settings loaded with a readable error, logging on stderr, the
check of a SQLite file that a command only reads, and the one line an unexpected failure prints.

Apart from :mod:`mcp_memory.cli` so that the sub-command modules it loads (``cli_doctor``, ``cli_forget``,
``cli_transfer``) need not import it back.
"""

from __future__ import annotations

import logging
import os
import sys
import tomllib

from pydantic import ValidationError
from pydantic_settings import SettingsError

from mcp_memory.config import Settings, config_file_path
from mcp_memory.errors import (
    ConfigurationError,
    MemoryServiceError,
    NotFound,
    Unavailable,
    describe_validation_error,
    echo,
)
from mcp_memory.stores.sqlite.schema import SCHEMA_VERSION
from mcp_memory.stores.sqlite.upgrade import FileState, file_state, sqlite_file

logger = logging.getLogger(__name__)


def setup_logging(level: str, *, migration_steps: bool = False) -> None:
    """Log at ``level`` to stderr (on stdio, stdout is the protocol).

    Alembic logs its plugins and its migration context at INFO each time a server checks the schema: nine lines of
    noise per start, so below DEBUG it logs warnings only, except the steps of ``migrate`` (``migration_steps``).
    httpx logs every request with its URL at INFO (``HTTP Request: POST http://user:password@...``): at every level
    it logs warnings only, as an embedding request's failures are logged by the provider already, password masked."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if level.upper() != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)
        if migration_steps:
            logging.getLogger("alembic.runtime.migration").setLevel(level.upper())


def load_settings() -> Settings:
    """The settings (file and ``MCP_MEMORY_*``), or a ``ConfigurationError`` naming where they came from."""
    try:
        return Settings()
    except ConfigurationError:
        raise
    except (ValidationError, SettingsError, tomllib.TOMLDecodeError, ValueError) as exc:
        path = config_file_path()
        source = f"{path} or MCP_MEMORY_* variables" if path and path.is_file() else "MCP_MEMORY_* variables"
        raise ConfigurationError(f"invalid settings ({source}): {describe(exc)}") from exc


def describe(exc: Exception) -> str:
    """A settings error in one line, without the values given: pydantic's own text quotes each bad value
    (``input_value='mcpm_...'``), so a raw token pasted as a ``sha256`` would reach stderr, logs and doctor."""
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc, nothing="invalid settings")
    return str(exc)


def sqlite_file_problem(path: str, state: FileState) -> MemoryServiceError | None:
    """Why a command that only reads the SQLite file (``doctor``, ``export``, ``forget --dry-run``) cannot read it as
    it is, or None: a start would create it (a mistyped path would look like a store that lost everything), refuse
    it (in the words of the start), or change it (an upgrade locks out the release that wrote it: only ``serve``
    and the commands that write do that, docs/configuration.md)."""
    if state.kind == "missing":
        return NotFound(
            f"no SQLite file at {path}: `mcp-memory serve` creates it at its first start (if memory was expected "
            "there, check MCP_MEMORY_DATABASE_URL)"
        )
    if state.kind == "empty":
        return Unavailable(f"the SQLite file {path} is empty: `mcp-memory serve` creates its tables at its first start")
    if state.refusal is not None:
        return Unavailable(state.refusal)
    if state.kind == "older":
        at = f"schema {state.schema_version}" if state.schema_version is not None else f"revision {state.revision}"
        return Unavailable(
            f"the SQLite file {path} is at {at}, older than this release's schema {SCHEMA_VERSION}: `mcp-memory "
            "serve` upgrades it at its next start (the release that wrote it cannot open it after)"
        )
    if state.kind == "incomplete":
        return Unavailable(
            f"the SQLite file {path} lacks tables or indexes of this release: `mcp-memory serve` adds them at its "
            "next start"
        )
    return None


def check_sqlite_file_as_is(settings: Settings) -> None:
    """Raise :func:`sqlite_file_problem`'s error (or ``Unavailable`` for a file that is not SQLite) unless the
    store is not a SQLite file or its file can be read as it is: what a read-only command runs before opening it."""
    path = sqlite_file(settings.resolved_database_url())
    if path is None:
        return
    problem = sqlite_file_problem(path, file_state(path))
    if problem is not None:
        raise problem


def _log_somewhere() -> None:
    """A failure before the command set up its logging (while reading the settings; ``doctor`` never does) logs its
    traceback where the one line says: on stderr, at the level ``MCP_MEMORY_LOG_LEVEL`` names (else warnings)."""
    if logging.getLogger().handlers:
        return
    level = os.environ.get("MCP_MEMORY_LOG_LEVEL", "").upper()
    setup_logging(level if isinstance(logging.getLevelName(level), int) else "WARNING")


def unexpected_failure(exc: Exception, doing: str, outcome: str) -> str:
    """The one line a command prints on stderr for a failure no code names (a bug, or data it cannot handle):
    ``mcp-memory: internal: ...`` with the exception's type and the first line of its message (a driver's error
    goes on with its SQL and parameters), what became of the command's work (``outcome``), and where the
    traceback is: the log, at DEBUG. An operator's script reads an exit code and a sentence, never a traceback."""
    _log_somewhere()
    logger.debug("unexpected failure while %s", doing, exc_info=exc)
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # a task group's wrapper says nothing of the failure itself
    first_line = next(iter(str(exc).strip().splitlines()), "")
    detail = echo(f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__)
    return (
        f"mcp-memory: internal: unexpected error while {doing} ({detail}); {outcome}; "
        "MCP_MEMORY_LOG_LEVEL=DEBUG logs the traceback"
    )


__all__ = [
    "check_sqlite_file_as_is",
    "describe",
    "load_settings",
    "setup_logging",
    "sqlite_file_problem",
    "unexpected_failure",
]
