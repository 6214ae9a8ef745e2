"""``mcp-memory serve | doctor | migrate | version``.

In stdio mode stdout carries the MCP protocol, so everything this module logs or reports while serving
goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tomllib
from collections.abc import Sequence
from typing import Any

import anyio
from pydantic import ValidationError
from pydantic_settings import SettingsError

from mcp_memory import __version__
from mcp_memory.config import Settings, config_file_path, mask_url, masked_settings, unknown_file_settings
from mcp_memory.runtime import ConfigurationError, MemoryRuntime, check_settings

logger = logging.getLogger("mcp_memory")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _load_settings() -> Settings:
    try:
        return Settings()
    except (ValidationError, SettingsError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigurationError(f"invalid settings ({config_file_path()} or MCP_MEMORY_* variables): {exc}") from exc


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the MCP server on stdio until the client closes it."""
    from mcp_memory.server import create_server

    settings = _load_settings()
    _setup_logging(settings.log_level)
    server = create_server(settings)
    logger.info("mcp-memory %s serving on stdio, store %s", __version__, settings.resolved_database_url())
    server.run("stdio")
    return 0


def _postgres_stores(settings: Settings) -> dict[str, str]:
    """The doctor report's store names when the durable store is Postgres."""
    if not (settings.database_url or "").startswith("postgresql"):
        return {}
    working = "redis" if settings.redis_url else "postgresql (the durable store's tables)"
    return {"durable_store": "postgresql + pgvector", "working_store": working}


async def _doctor(settings: Settings) -> tuple[bool, dict[str, Any]]:
    report: dict[str, Any] = {
        "version": __version__,
        "config_file": str(config_file_path()),
        "config_file_exists": config_file_path().is_file(),
        "settings": masked_settings(settings),
        "database_url": mask_url(settings.resolved_database_url()),
        "working_store": "sqlite (embedded)",
        "durable_store": "sqlite (embedded)",
        **_postgres_stores(settings),
        "redis": "not configured" if not settings.redis_url else "configured but not supported by this release",
    }
    ok = True
    try:
        unknown = unknown_file_settings()
        if unknown:
            ok = False
            report["unknown_settings"] = unknown
        check_settings(settings)
        async with MemoryRuntime(settings) as rt:
            report["stores"] = await rt.check()
            report["embedding_provider"] = rt.embedder.name if rt.embedder else "none (full-text search only)"
    except Exception as exc:
        ok = False
        report["error"] = str(exc)
    report["ok"] = ok
    return ok, report


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the resolved configuration and check each store; exit 1 if something is wrong."""
    try:
        settings = _load_settings()
    except ConfigurationError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    ok, report = anyio.run(_doctor, settings)
    print(json.dumps(report, indent=2, default=str))
    return 0 if ok else 1


async def _migrate(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from alembic.util.exc import CommandError

    from mcp_memory.stores.pg_schema import MigrationFailed, describe, migrate, schema_state

    url = settings.resolved_database_url()
    try:
        if args.status:
            before = after = await schema_state(url)
        else:
            downgrade = args.downgrade is not None
            before, after = await migrate(
                url,
                revision=args.downgrade if downgrade else args.revision,
                embedding_dimension=settings.embedding_dimension,
                downgrade=downgrade,
            )
    except (ValueError, CommandError) as exc:
        raise ConfigurationError(str(exc)) from exc
    except MigrationFailed:
        raise
    return {"database_url": mask_url(url), "before": describe(before), "after": describe(after)}


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the Postgres schema (``--downgrade REV`` goes down); the SQLite file needs no step."""
    from mcp_memory.stores.factory import durable_backend
    from mcp_memory.stores.pg_schema import MigrationFailed

    settings = _load_settings()
    _setup_logging(settings.log_level)
    if durable_backend(settings) == "sqlite":
        print(json.dumps({"ok": True, "note": "the SQLite store creates its schema itself; nothing to migrate"}))
        return 0
    try:
        report = anyio.run(_migrate, settings, args)
    except MigrationFailed as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    print(json.dumps({"ok": True, **report}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mcp-memory`` console script."""
    parser = argparse.ArgumentParser(prog="mcp-memory", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"mcp-memory {__version__}")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the MCP server (stdio)")
    serve.add_argument("--transport", choices=["stdio"], default="stdio", help="transport (stdio)")
    serve.set_defaults(func=cmd_serve)
    doctor = sub.add_parser("doctor", help="print the resolved configuration and check each store")
    doctor.set_defaults(func=cmd_doctor)
    migrate = sub.add_parser(
        "migrate",
        help="create or upgrade the Postgres schema (MCP_MEMORY_DATABASE_URL) to this release's revision",
    )
    direction = migrate.add_mutually_exclusive_group()
    direction.add_argument("--revision", default="head", help="upgrade to this revision (default: head)")
    direction.add_argument("--downgrade", metavar="REV", help="downgrade to REV ('base' removes every table)")
    direction.add_argument("--status", action="store_true", help="show the current and head revisions only")
    migrate.set_defaults(func=cmd_migrate)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        args = parser.parse_args(["serve", *(argv or [])])
    try:
        result: int = args.func(args)
        return result
    except ConfigurationError as exc:
        print(f"mcp-memory: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``mcp-memory doctor | head``): not an error worth a traceback.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
