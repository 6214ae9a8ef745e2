"""The installation's default identity: a project and an agent instance UUID generated once per user.

A desktop client (Claude Desktop, Claude Code) runs ``mcp-memory serve`` on stdio with no configuration; every
conversation is a new process, and a model cannot invent the same UUID twice. So on stdio a call that names no
project or agent uses this installation's identity: two UUIDs stored in ``identity.json`` in the user's data
directory, next to the default SQLite file. Each conversation then finds the sessions of the previous ones.
Configured defaults (``MCP_MEMORY_PROJECT_ID``, ``MCP_MEMORY_AGENT_INSTANCE_ID``) take precedence, each on its own.

The file is created at most once, even by processes starting together: each writes a complete candidate to a
temporary file and links it into place (``os.link`` fails if the file exists); the losers read the winner's.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

import platformdirs

from mcp_memory.config import APP_NAME, Settings
from mcp_memory.errors import ConfigurationError

IDENTITY_FILE = "identity.json"


@dataclass(frozen=True, slots=True)
class DefaultScope:
    """The project and agent a call uses when it names none (None: no default, the argument is required)."""

    project_id: UUID | None = None
    agent_instance_id: UUID | None = None


def identity_path() -> Path:
    """Where the installation's identity lives: the user's data directory (next to the default SQLite file)."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / IDENTITY_FILE


def _read(path: Path) -> DefaultScope:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return DefaultScope(UUID(data["project_id"]), UUID(data["agent_instance_id"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"{path} is not a valid identity file ({exc}); remove it to generate a new default identity, or set "
            "MCP_MEMORY_PROJECT_ID and MCP_MEMORY_AGENT_INSTANCE_ID"
        ) from exc


def installation_identity(path: Path | None = None) -> DefaultScope:
    """The installation's identity, generated and stored on first use."""
    path = path or identity_path()
    if path.exists():
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = {"project_id": str(uuid4()), "agent_instance_id": str(uuid4())}
    fd, tmp = tempfile.mkstemp(prefix=".identity-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(fresh, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic create-if-absent: exactly one process's candidate wins
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return _read(path)


def default_scope(settings: Settings, installation: bool) -> DefaultScope:
    """The configured defaults, each filled from the installation's identity (``installation``: stdio) if unset."""
    project, agent = settings.project_id, settings.agent_instance_id
    if installation and (project is None or agent is None):
        own = installation_identity()
        project, agent = project or own.project_id, agent or own.agent_instance_id
    return DefaultScope(project, agent)


__all__ = ["IDENTITY_FILE", "DefaultScope", "default_scope", "identity_path", "installation_identity"]
