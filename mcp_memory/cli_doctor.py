"""``mcp-memory doctor``: the resolved configuration (passwords masked), the settings file's and the environment's
misspelt keys, the identity calls that name none get, and a check of each store and of the embedding provider, as
one JSON report; exit 1 if something is wrong. Doctor only looks: a SQLite file is read as it is, never created or
upgraded, and the installation identity is not generated.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import anyio

from mcp_memory.cli_common import load_settings, sqlite_file_problem
from mcp_memory.config import (
    Settings,
    config_file_path,
    mask_url,
    masked_settings,
    unknown_env_settings,
    unknown_file_settings,
)
from mcp_memory.errors import ConfigurationError
from mcp_memory.services.runtime import MemoryRuntime, not_serving
from mcp_memory.stores.factory import check_settings
from mcp_memory.summary import counted
from mcp_memory.version import __version__


def _postgres_stores(settings: Settings) -> dict[str, str]:
    """The doctor report's store names when the durable store is Postgres."""
    if not (settings.database_url or "").startswith("postgresql"):
        return {}
    working = "redis" if settings.redis_url else "postgresql (the durable store's tables)"
    return {"durable_store": "postgresql + pgvector", "working_store": working}


async def _doctor(settings: Settings) -> tuple[bool, dict[str, Any]]:
    config_file = config_file_path()
    report: dict[str, Any] = {
        "version": __version__,
        "config_file": str(config_file) if config_file else None,
        "config_file_exists": config_file.is_file() if config_file else False,
        "settings": masked_settings(settings),
        "database_url": mask_url(settings.resolved_database_url()),
        "working_store": "sqlite (embedded)",
        "durable_store": "sqlite (embedded)",
        **_postgres_stores(settings),
        "redis": "not configured" if not settings.redis_url else "configured (see stores.working)",
        "identity": _identity_report(settings),
    }
    if settings.redis_url:
        from mcp_memory.stores.redis.connection import redact_url

        report["working_store"] = "redis"
        report["settings"]["redis_url"] = redact_url(settings.redis_url)  # no password in the report
    ok = True
    try:
        unknown = unknown_file_settings()
        if unknown:
            ok = False
            report["unknown_settings"] = unknown
        unknown_env = unknown_env_settings()
        if unknown_env:
            ok = False
            report["unknown_environment"] = unknown_env
        check_settings(settings)
        problem = _sqlite_file_problem(settings, report)
        if problem is not None:  # a start would create or upgrade the file: doctor only looks
            report["ok"] = False
            report["error"] = problem
            return False, report
        async with MemoryRuntime(settings, embedding_retry=False) as rt:
            report["stores"] = await rt.check()
            working = report["stores"].get("working", {})
            if not_serving(working):
                ok = False  # the server would start, but every working-memory call would be `unavailable`
            report["embedding_provider"] = rt.embedder.name if rt.embedder else "none (full-text search only)"
            if rt.embedder is not None:
                ok = await _check_embedder(rt, report) and ok
    except Exception as exc:
        ok = False
        report["error"] = str(exc)
    report["ok"] = ok
    return ok, report


def _sqlite_file_problem(settings: Settings, report: dict[str, Any]) -> str | None:
    """The SQLite file as it is, read without changing it (into ``report``), and what is wrong with it, if anything
    (:func:`~mcp_memory.cli_common.sqlite_file_problem`): doctor changes nothing."""
    from mcp_memory.stores.sqlite.upgrade import file_state, sqlite_file

    path = sqlite_file(settings.resolved_database_url())
    if path is None:
        return None
    state = file_state(path)
    report["sqlite_file"] = {
        "path": path,
        "exists": state.exists,
        "state": state.kind,
        "schema_version": state.schema_version,
    }
    problem = sqlite_file_problem(path, state)
    if problem is None:
        return None
    return problem.message if state.refusal is not None else f"{problem.message}; doctor changes nothing"


async def _check_embedder(rt: MemoryRuntime, report: dict[str, Any]) -> bool:
    """Embed one text (so a wrong URL, key or dimension shows now) and count the episodes vector search misses:
    those without a vector (embedded again by the server's background retry) and those whose vector another model
    or dimension made (after a change of model: only ``reembed --all`` replaces them)."""
    assert rt.embedder is not None
    backlog = await rt.store.vector_backlog(rt.embedder.name)
    report["episodes_without_vector"] = backlog.missing
    report["episodes_of_another_model"] = backlog.other_model
    if backlog.other_model:
        report["embedding_warning"] = (
            f"vector search ignores {counted(backlog.other_model, 'episode')} whose vector another model or "
            f"dimension than {rt.embedder.name} made (full-text search still finds them): run `mcp-memory reembed "
            f"--all` to re-embed with {rt.embedder.name}"
        )
    try:
        with anyio.fail_after(rt.settings.embedding_deadline_seconds):
            vectors = await rt.embedder.embed(["mcp-memory doctor"])
    except Exception as exc:
        report["embedding"] = {"ok": False, "error": str(exc) or type(exc).__name__}
        return False
    report["embedding"] = {"ok": True, "dimension": len(vectors[0])}
    return True


def _identity_report(settings: Settings) -> dict[str, Any]:
    """The project and agent of calls that name none: configured, or (on stdio) the installation's identity."""
    from mcp_memory.identity import default_scope, identity_path

    installed = settings.project_id is None or settings.agent_instance_id is None
    report: dict[str, Any] = {
        "project_source": "configured" if settings.project_id else "installation (stdio only)",
        "agent_source": "configured" if settings.agent_instance_id else "installation (stdio only)",
        "identity_file": str(identity_path()) if installed else None,
    }
    if installed and not identity_path().exists():
        # doctor only looks: the first `serve` on stdio generates the identity.
        return {
            **report,
            "project_id": str(settings.project_id) if settings.project_id else None,
            "agent_instance_id": str(settings.agent_instance_id) if settings.agent_instance_id else None,
            "note": "the installation identity is generated by the first `mcp-memory serve` on stdio",
        }
    try:
        scope = default_scope(settings, installation=True)
    except ConfigurationError as exc:
        return {**report, "error": str(exc)}
    return {**report, "project_id": str(scope.project_id), "agent_instance_id": str(scope.agent_instance_id)}


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the resolved configuration and check each store; exit 1 if something is wrong."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    ok, report = anyio.run(_doctor, settings)
    print(json.dumps(report, indent=2, default=str))
    return 0 if ok else 1


def add_parser(sub: Any) -> None:
    """The ``doctor`` subcommand."""
    doctor = sub.add_parser("doctor", help="print the resolved configuration and check each store")
    doctor.set_defaults(func=cmd_doctor, doing="checking the stores", outcome="doctor changed nothing")
