"""``mcp-memory serve | doctor | migrate | reembed | export | import | hash-token | version``.

In stdio mode stdout carries the MCP protocol, so everything this module logs or reports while serving
goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import signal
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio
from pydantic import ValidationError

from mcp_memory.cli_common import describe, load_settings, setup_logging, unexpected_failure
from mcp_memory.config import (
    Settings,
    mask_url,
    unknown_env_settings,
    unknown_file_settings,
)
from mcp_memory.config_sections import HttpSettings
from mcp_memory.embeddings import vector_dimension
from mcp_memory.errors import ConfigurationError, MemoryServiceError, Unavailable
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.version import __version__

logger = logging.getLogger("mcp_memory")


def _with_http_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with ``--host``, ``--port`` and ``--stateless`` applied over the configured ``http`` ones."""
    overrides = {
        k: v for k, v in {"host": args.host, "port": args.port, "stateless": args.stateless}.items() if v is not None
    }
    if not overrides:
        return settings
    try:
        http = HttpSettings.model_validate({**settings.http.model_dump(), **overrides})
    except ValidationError as exc:
        raise ConfigurationError(f"invalid --host/--port: {describe(exc)}") from exc
    return settings.model_copy(update={"http": http})


class _Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt for SIGINT (a BaseException, so no ``except Exception`` eats it)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the MCP server on stdio until the client closes it, or on HTTP (SSE and Streamable HTTP).

    SIGINT and SIGTERM shut down cleanly (stores closed) and exit 130 and 143 (128 + the signal's number); the
    end of stdin exits 0. The transports open the stores before serving and raise a failure as itself, so it is
    one line on stderr: a configuration error exits 2 (from :func:`main`), a store that cannot be reached or opened
    (``unavailable: ...``) exits 1.
    """
    try:
        return _serve(args)
    except MemoryServiceError as exc:
        print(f"mcp-memory: {exc}", file=sys.stderr)
        return 1


def _warn_unknown_settings() -> None:
    """Name the settings file's keys that are not settings (a typo would otherwise leave its setting at the default
    unnoticed); ``doctor`` fails on them, serve starts and says so."""
    unknown = unknown_file_settings()
    if unknown:
        logger.warning(
            "the settings file has keys that are not settings, ignored (misspelt?): %s; `mcp-memory doctor` lists them",
            ", ".join(unknown),
        )
    unknown_env = unknown_env_settings()
    if unknown_env:
        logger.warning(
            "environment variables that are not settings, ignored (misspelt?): %s; `mcp-memory doctor` lists them",
            ", ".join(unknown_env),
        )


def _serve(args: argparse.Namespace) -> int:
    from mcp_memory.server import create_server

    settings = _with_http_flags(load_settings(), args)
    # Until a transport takes the signal over (and after uvicorn re-raises it once it has shut down), SIGTERM
    # ends serve like SIGINT does rather than killing the process outright.
    signal.signal(signal.SIGTERM, _raise_terminated)
    # A parent may have started us with SIGINT ignored (a non-interactive shell's background job, a test runner's
    # worker): uvicorn would restore that and swallow the re-raised Ctrl-C; serve always stops on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.transport == "stdio":
        from mcp_memory.identity import default_scope
        from mcp_memory.server.stdio import serve_stdio

        setup_logging(settings.log_level)
        _warn_unknown_settings()
        # A desktop client starts a new process per conversation: the installation's identity makes each one find
        # the sessions of the previous ones without any UUID in its configuration.
        server = create_server(settings, defaults=default_scope(settings, installation=True))
        gc.freeze()  # start-up objects (SDK, pydantic models) leave the collector's scans: no full-GC pauses
        store = mask_url(settings.resolved_database_url())
        logger.info("mcp-memory %s starting on stdio, store %s", __version__, store)
        code: int = anyio.run(serve_stdio, server)
        logger.info("mcp-memory stopped (exit code %d)", code)
        return code
    from mcp_memory.server.http import check_http_settings, serve

    check_http_settings(settings.http)  # before opening any store: an unsafe bind is refused outright
    setup_logging(settings.log_level)
    _warn_unknown_settings()
    server = create_server(settings)
    gc.freeze()
    logger.info("mcp-memory %s starting over HTTP, store %s", __version__, mask_url(settings.resolved_database_url()))
    anyio.run(serve, server, args.transport)
    return 0


def cmd_hash_token(args: argparse.Namespace) -> int:
    """Print the SHA-256 of a token read from stdin, or generate a token and print it with its hash."""
    from mcp_memory.server.auth import generate_token, hash_token

    if args.generate:
        token = generate_token()
        print(f"token: {token}")
        print(f"sha256: {hash_token(token)}")
        print("# Give the token to the agent (Authorization: Bearer <token>); configure its sha256.", file=sys.stderr)
        return 0
    token = sys.stdin.readline().strip()
    if not token:
        raise ConfigurationError("no token on stdin (pipe one in, or use --generate for a new one)")
    print(hash_token(token))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    """Print the version."""
    print(f"mcp-memory {__version__}")
    return 0


async def _reembed(settings: Settings, all_models: bool) -> int:
    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        if rt.backfill is None or rt.embedder is None:
            raise ConfigurationError("no embedding provider is configured (MCP_MEMORY_EMBEDDING_PROVIDER is 'none')")
        report = await rt.backfill.run_once(all_models=all_models)
        backlog = await rt.store.vector_backlog(rt.embedder.name)
    missing = backlog.missing + (backlog.other_model if all_models else 0)
    print(
        f"model {rt.embedder.name}: embedded {report.embedded}, failed {report.failed}, still without a vector "
        f"{missing}"
    )
    for error in report.errors:
        print(f"  {error}")
    if report.stopped:
        print(f"stopped early: {report.stopped}")
    return 1 if report.failed or report.stopped or missing else 0


def cmd_reembed(args: argparse.Namespace) -> int:
    """Embed every episode stored without a vector (``--all``: also those of another model); exit 1 if some
    are still without one."""
    settings = load_settings()
    setup_logging(settings.log_level)
    result: int = anyio.run(_reembed, settings, args.all)
    return result


async def _migrate(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from alembic.util.exc import CommandError

    from mcp_memory.stores.postgres.schema import MigrationFailed, describe, migrate, schema_state

    url = settings.resolved_database_url()
    try:
        if args.status:
            before = after = await schema_state(url)
        else:
            downgrade = args.downgrade is not None
            before, after = await migrate(
                url,
                revision=args.downgrade if downgrade else args.revision,
                embedding_dimension=vector_dimension(settings),
                downgrade=downgrade,
            )
    except (ValueError, CommandError) as exc:
        raise ConfigurationError(str(exc)) from exc
    except MigrationFailed:
        raise
    return {"database_url": mask_url(url), "before": describe(before), "after": describe(after)}


def _fill_search_weights(settings: Settings, batch: int | None) -> int:
    """The 0014 data step: progress on stderr, the JSON report on stdout."""
    from mcp_memory.stores.postgres.backfill import BATCH_ROWS, fill_search_weights
    from mcp_memory.stores.postgres.schema import MigrationFailed

    def progress(filled: int, to_fill: int) -> None:
        print(f"filled {filled:,} of {to_fill:,}", file=sys.stderr)

    url = settings.resolved_database_url()
    rows = BATCH_ROWS if batch is None else batch
    try:
        report = anyio.run(partial(fill_search_weights, url, batch_rows=rows, progress=progress))
    except MigrationFailed as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    print(json.dumps({"ok": True, "database_url": mask_url(url), **dataclasses.asdict(report)}, indent=2))
    return 0


def _migrate_sqlite(settings: Settings, args: argparse.Namespace) -> int:
    """The SQLite store brings its file to the head itself at start; ``--status`` reports the file as it is, and a
    downgrade is refused (a file is never taken down: the release that wrote it reads it, older ones refuse it)."""
    from mcp_memory.stores.sqlite.schema import SCHEMA_VERSION
    from mcp_memory.stores.sqlite.upgrade import file_state, sqlite_file

    if args.downgrade:
        message = "a SQLite file is never downgraded: keep a copy of it before upgrading mcp-memory to go back"
        print(json.dumps({"ok": False, "error": message}))
        return 1
    note = "the SQLite store creates and upgrades its schema itself at start; nothing to migrate"
    report: dict[str, Any] = {"ok": True, "note": note, "head_schema_version": SCHEMA_VERSION}
    path = sqlite_file(settings.resolved_database_url())
    if path is not None:
        try:
            state = file_state(path)
        except Unavailable as exc:  # not SQLite, or damaged
            print(json.dumps({"ok": False, "error": exc.message}))
            return 1
        report.update(
            path=path,
            exists=state.exists,
            state=state.kind,
            schema_version=state.schema_version,
            current=state.current,
        )
        if state.refusal is not None:  # a start refuses it: nothing this release can migrate
            report.update(ok=False, error=state.refusal)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the Postgres schema (``--downgrade REV`` goes down); the SQLite file needs no step."""
    from mcp_memory.stores.factory import durable_backend
    from mcp_memory.stores.postgres.schema import MigrationFailed

    settings = load_settings()
    setup_logging(settings.log_level, migration_steps=True)
    if durable_backend(settings) == "sqlite":
        return _migrate_sqlite(settings, args)
    if args.fill_search_weights:
        return _fill_search_weights(settings, args.batch)
    try:
        report = anyio.run(_migrate, settings, args)
    except MigrationFailed as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    print(json.dumps({"ok": True, **report}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mcp-memory`` console script."""
    parser = argparse.ArgumentParser(
        prog="mcp-memory", description="Working, checkpointed and episodic memory for LLM agents: an MCP server."
    )
    parser.add_argument("--version", action="version", version=f"mcp-memory {__version__}")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the MCP server (stdio, or SSE and Streamable HTTP)")
    serve.add_argument(
        "--transport",
        choices=["stdio", "sse", "http"],
        default="stdio",
        help="stdio (default), or HTTP: 'sse' and 'http' both serve SSE at /sse and Streamable HTTP at /mcp",
    )
    serve.add_argument("--host", default=None, help="HTTP: interface to bind (default: http.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="HTTP: port (default: http.port, 8765; 0: any free)")
    serve.add_argument(
        "--stateless",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="HTTP: Streamable HTTP without server-side sessions (default: http.stateless)",
    )
    serve.set_defaults(func=cmd_serve, doing="serving", outcome="the server stopped")
    hash_token = sub.add_parser(
        "hash-token", help="print the sha256 of a token read from stdin (for http.tokens), or --generate one"
    )
    hash_token.add_argument("--generate", action="store_true", help="generate a random token; print it and its hash")
    hash_token.set_defaults(func=cmd_hash_token, doing="hashing the token", outcome="no hash was printed")
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version, doing="printing the version", outcome="nothing was printed")
    from mcp_memory.cli_doctor import add_parser as add_doctor

    add_doctor(sub)
    reembed = sub.add_parser(
        "reembed", help="embed the episodes stored without a vector (the provider failed when they were recorded)"
    )
    reembed.add_argument(
        "--all", action="store_true", help="also re-embed vectors made by another model (after changing provider)"
    )
    reembed.set_defaults(
        func=cmd_reembed,
        doing="re-embedding",
        outcome="the episodes embedded before it keep their vectors; the others are still without one",
    )
    migrate = sub.add_parser(
        "migrate",
        help="create or upgrade the Postgres schema (MCP_MEMORY_DATABASE_URL) to this release's revision",
    )
    direction = migrate.add_mutually_exclusive_group()
    direction.add_argument("--revision", default="head", help="upgrade to this revision (default: head)")
    direction.add_argument("--downgrade", metavar="REV", help="downgrade to REV ('base' removes every table)")
    direction.add_argument("--status", action="store_true", help="show the current and head revisions only")
    direction.add_argument(
        "--fill-search-weights",
        action="store_true",
        help="fill episodes.search_weights of the episodes written before revision 0014, in batches (resumable)",
    )
    migrate.add_argument(
        "--batch", type=int, default=None, help="with --fill-search-weights: rows per batch (default 2000)"
    )
    migrate.set_defaults(
        func=cmd_migrate,
        doing="migrating",
        outcome="a migration commits whole or not at all; `mcp-memory migrate --status` shows the schema",
    )
    from mcp_memory.cli_forget import add_parser as add_forget

    add_forget(sub)
    from mcp_memory.cli_transfer import add_parsers as add_transfer

    add_transfer(sub)
    args = parser.parse_args(argv)
    if getattr(args, "batch", None) is not None and not args.fill_search_weights:
        parser.error("--batch goes with --fill-search-weights")
    if not getattr(args, "func", None):
        args = parser.parse_args(["serve", *(argv or [])])
    try:
        result: int = args.func(args)
        return result
    except ConfigurationError as exc:
        print(f"mcp-memory: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except _Terminated:
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        # The reader went away (``mcp-memory doctor | head``): not an error worth a traceback.
        sys.stderr.close()
        return 0
    except MemoryServiceError as exc:
        # A refusal with its code that the command does not answer itself (reembed on a store that is down).
        print(f"mcp-memory: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # A failure no code names (a bug, or stored data the command cannot handle): one line and exit 1, as the
        # commands' own refusals; the traceback goes to the log at DEBUG.
        print(unexpected_failure(exc, args.doing, args.outcome), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
