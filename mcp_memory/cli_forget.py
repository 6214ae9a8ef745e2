"""``mcp-memory forget``: an operator erases a whole project, one agent's part of it, or one session, from both
stores (SQL and Redis), episodes included, and reads a JSON report of what went (or, with ``--dry-run``, would go).

After the erase, what the durable store still holds of the erased rows below them goes too
(:mod:`~mcp_memory.stores.reclaim_port`): SQLite's WAL is truncated; Postgres drops the project's vector index and
VACUUMs the tables (``--vacuum-full`` rewrites them, ``--no-vacuum`` skips it). The report's ``on_disk`` says what
was done; if a part could not be, its ``not_done`` says why, stderr says so in one line and the exit status is 1:
the rows are gone, and the same forget run again does the rest."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from uuid import UUID

import anyio

from mcp_memory.cli_common import check_sqlite_file_as_is, load_settings, setup_logging
from mcp_memory.config import Settings
from mcp_memory.errors import ConfigurationError, MemoryServiceError
from mcp_memory.models import validate_identifier
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.reclaim_port import Vacuum


def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ConfigurationError(f"{what} must be a UUID, got {value!r}") from None


async def _forget(
    settings: Settings, project: UUID, agent: UUID | None, session: str | None, dry: bool, vacuum: Vacuum
) -> Any:
    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        return await rt.control.forget(project, agent, session, dry, vacuum)


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase the scope; print the JSON report on stdout (exit 0), or the error on stderr (exit 1)."""
    settings = load_settings()
    setup_logging(settings.log_level)
    project = _uuid(args.project, "--project")
    agent = None if args.agent is None else _uuid(args.agent, "--agent")
    try:
        session = None if args.session is None else validate_identifier(args.session, "--session")
    except MemoryServiceError as exc:
        raise ConfigurationError(exc.message) from None
    if args.dry_run:
        # A dry run writes nothing: a missing file is not created (a mistyped path would count as an empty
        # project), an old one is not upgraded.
        try:
            check_sqlite_file_as_is(settings)
        except MemoryServiceError as exc:
            print(f"mcp-memory forget: {exc}; nothing was counted", file=sys.stderr)
            return 1
    vacuum = Vacuum.FULL if args.vacuum_full else Vacuum.NONE if args.no_vacuum else Vacuum.PLAIN
    try:
        report = anyio.run(_forget, settings, project, agent, session, args.dry_run, vacuum)
    except MemoryServiceError as exc:
        print(f"mcp-memory forget: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    if report.get("not_done"):
        left = "; ".join(report["not_done"])
        print(
            f"mcp-memory forget: the scope is erased, but not all of it is off the disk: {left}; the same forget run "
            "again does the rest",
            file=sys.stderr,
        )
        return 1
    return 0


def add_parser(sub: Any) -> None:
    """The ``forget`` subcommand."""
    forget = sub.add_parser(
        "forget",
        help="erase a project (or one agent, or one session) from every store, episodes included; prints a report",
    )
    forget.add_argument("--project", required=True, help="the project's UUID")
    forget.add_argument("--agent", help="only this agent instance's sessions and episodes (UUID)")
    forget.add_argument("--session", help="only sessions of this id (and their episodes)")
    forget.add_argument("--dry-run", action="store_true", help="count what would be removed; change nothing")
    vacuum = forget.add_mutually_exclusive_group()
    vacuum.add_argument(
        "--vacuum-full",
        action="store_true",
        help="Postgres: VACUUM FULL the tables, so the erased bytes are in none of their files (each table is "
        "locked against the server's calls while it is rewritten)",
    )
    vacuum.add_argument(
        "--no-vacuum",
        action="store_true",
        help="Postgres: no VACUUM after the erase (the erased rows stay in their pages until autovacuum)",
    )
    forget.set_defaults(
        func=cmd_forget,
        doing="forgetting",
        outcome="unless it was a --dry-run, part of the scope may be erased already: run the same forget again",
    )


__all__ = ["add_parser", "cmd_forget"]
