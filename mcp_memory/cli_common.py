"""What every ``mcp-memory`` sub-command shares: settings loaded with a readable error, logging on stderr.

Apart from :mod:`mcp_memory.cli` so that the sub-command modules it loads (``cli_forget``, ``cli_transfer``) need
not import it back.
"""

from __future__ import annotations

import logging
import sys
import tomllib

from pydantic import ValidationError
from pydantic_settings import SettingsError

from mcp_memory.config import Settings, config_file_path
from mcp_memory.errors import ConfigurationError, describe_validation_error


def setup_logging(level: str, *, migration_steps: bool = False) -> None:
    """Log at ``level`` to stderr (on stdio, stdout is the protocol).

    Alembic logs its plugins and its migration context at INFO each time a server checks the schema: nine lines of
    noise per start, so below DEBUG it logs warnings only, except the steps of ``migrate`` (``migration_steps``)."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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


__all__ = ["describe", "load_settings", "setup_logging"]
