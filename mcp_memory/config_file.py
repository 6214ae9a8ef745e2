"""The TOML settings file: which one is read, and which of its keys are not settings.

Apart from :mod:`mcp_memory.config` (the settings themselves), which reads the file through :func:`settings_file`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import get_args, get_origin

import platformdirs
from pydantic import BaseModel

from mcp_memory import faults
from mcp_memory.errors import ConfigurationError

APP_NAME = "mcp-memory"
CONFIG_ENV = "MCP_MEMORY_CONFIG"


def config_file_path() -> Path | None:
    """Where the TOML settings file is looked for: ``$MCP_MEMORY_CONFIG``, or the user config dir's file when it
    is unset; None when it is set but empty (no file is read)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit is not None:
        return Path(explicit).expanduser() if explicit.strip() else None
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def settings_file() -> Path | None:
    """The TOML settings file to read, if any. A file that ``$MCP_MEMORY_CONFIG`` names must exist: a typo in it
    would otherwise start the server on the default store, unconfigured (no tokens, another database)."""
    path = config_file_path()
    if path is None:
        return None
    if os.environ.get(CONFIG_ENV) is not None and not path.is_file():
        raise ConfigurationError(
            f"{CONFIG_ENV} names {str(path)!r}, which is not a file (set it to an existing TOML file, or to an "
            "empty value to read no settings file)"
        )
    return path if path.is_file() else None


def unknown_keys(model: type[BaseModel], table: dict[str, object], prefix: str = "") -> list[str]:
    """The keys of ``table`` (and of the tables and arrays of tables in it) that are not fields of ``model``. The
    settings source reads the file's top-level keys in any case (``CALL_TIMEOUT_SECONDS`` is applied) and the keys
    inside its tables only as written, so those are the keys reported: exactly the ones ignored."""
    unknown: list[str] = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        field = model.model_fields.get(key if prefix else key.lower())
        if field is None:
            unknown.append(name)
            continue
        annotation = field.annotation
        if isinstance(value, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            unknown += unknown_keys(annotation, value, f"{name}.")
        elif isinstance(value, list) and get_origin(annotation) is list:
            (item_type,) = get_args(annotation)
            if isinstance(item_type, type) and issubclass(item_type, BaseModel):
                for index, item in enumerate(value):
                    if isinstance(item, dict):
                        unknown += unknown_keys(item_type, item, f"{name}[{index}].")
    return unknown


NOT_SETTINGS = frozenset({CONFIG_ENV, faults.EXIT_ENV})
"""Variables of ours that are not settings: the settings file's path, and the fault point of crash tests."""


def unknown_env_names(model: type[BaseModel], environ: Mapping[str, str], prefix: str, delimiter: str) -> list[str]:
    """The ``MCP_MEMORY_*`` variables of ``environ`` that name no setting (a misspelt ``MCP_MEMORY_REDIS_URL`` would
    otherwise leave the server on its embedded store unnoticed). Names are read as the settings source reads them
    (its ``prefix`` and nested ``delimiter``): in any case. ``MCP_MEMORY_TEST_*`` belong to the test suite."""
    unknown = []
    for name in environ:
        upper = name.upper()
        if not upper.startswith(prefix) or upper in NOT_SETTINGS or upper.startswith(prefix + "TEST_"):
            continue
        current: type[BaseModel] | None = model
        for part in upper.removeprefix(prefix).lower().split(delimiter):
            field = current.model_fields.get(part) if current is not None else None
            if field is None:
                unknown.append(name)
                break
            annotation = field.annotation
            current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return sorted(unknown)


__all__ = [
    "APP_NAME",
    "CONFIG_ENV",
    "NOT_SETTINGS",
    "config_file_path",
    "settings_file",
    "unknown_env_names",
    "unknown_keys",
]
