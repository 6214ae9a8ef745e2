"""``mcp-memory export`` and ``mcp-memory import``: a project, an agent or a session as a JSON Lines file, and back.

``--agent`` and ``--session`` are independent, as for ``mcp-memory forget``: ``--session S`` alone exports the
sessions of id S under every agent of the project, with the episodes recorded with that session id.

The file's format is docs/export-format.md. Export writes to stdout unless ``--output`` is given (then to a temporary
file beside it, renamed into place once complete, so a failed export leaves no half file under that name; a FIFO or
a device is written as it is). An export that cannot be written whole exits 1 with a message. Import
prints its report as JSON on stdout; a refusal prints ``mcp-memory: <code>: <sentence>`` on stderr and exits 1. A
failure no code names is one ``mcp-memory: internal: ...`` line and exit 1 as well, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

import anyio

from mcp_memory.cli_common import check_sqlite_file_as_is, load_settings, setup_logging, unexpected_failure
from mcp_memory.errors import ConfigurationError, MemoryServiceError
from mcp_memory.models import parse_uuid, validate_identifier
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.transfer import Transfer, write_export
from mcp_memory.stores.transfer import Selection


def _transfer(rt: MemoryRuntime) -> Transfer:
    if rt.transfer is None:
        raise ConfigurationError("this durable store does not support export and import")
    return rt.transfer


def _selection(args: argparse.Namespace) -> Selection:
    project = parse_uuid(args.project, "--project")
    agent = None if args.agent is None else parse_uuid(args.agent, "--agent")
    session = None if args.session is None else validate_identifier(args.session, "--session")
    return Selection(project, agent, session)


async def _export(args: argparse.Namespace, settings: Any, sel: Selection, out: BinaryIO) -> None:
    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        await write_export(_transfer(rt).export(sel, vectors=args.vectors), out)


@contextmanager
def _output(output: str | None) -> Iterator[BinaryIO]:
    """Where the export goes: stdout; a FIFO, device or socket (through a symlink too) as it is, as a rename would
    replace it with a regular file (a directory fails to open, with its error); else a temporary file beside the
    target, renamed over it once complete (removed if the export fails). A symlink's target is replaced, the link
    kept; the new file has the old one's mode, else 0600, as an export holds all of the scope's memory."""
    if output is None:
        yield sys.stdout.buffer
        return
    target = Path(output)
    if target.exists() and not target.is_file():
        with target.open("wb") as out:
            yield out
        return
    target = target.resolve()
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o600
    partial = target.with_name(f".{target.name}.partial")
    try:
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "wb") as out:
            os.fchmod(out.fileno(), mode)
            yield out
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


async def _import(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    as_project: UUID | None = None if args.as_project is None else parse_uuid(args.as_project, "--as-project")
    async with MemoryRuntime(settings, embedding_retry=False) as rt:
        report = await _transfer(rt).import_file(Path(args.file), as_project=as_project)
    return report.as_dict()


def cmd_export(args: argparse.Namespace) -> int:
    """Write the selection as an export file (stdout by default). Exit 1 with a message on stderr when refused or
    when the file cannot be written whole (a closed or full output, a reader that went away: the export is cut
    off, and a script must not take it for a backup)."""
    try:
        return _run_export(args)
    except ConfigurationError:
        raise  # the command line's own exit code (2) and message
    except Exception as exc:
        where = "stdout" if args.output is None else args.output
        print(unexpected_failure(exc, "exporting", f"the export to {where} is not complete"), file=sys.stderr)
        return 1


def _run_export(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup_logging(settings.log_level)
    where = "stdout" if args.output is None else args.output
    if args.output is None and sys.stdout is None:
        print("mcp-memory: stdout is closed; give --output FILE", file=sys.stderr)
        return 1
    try:
        # Export only reads: it does not create the file (the export of a mistyped path would look like a project
        # that is empty) nor upgrade it (an export taken as a backup before an upgrade must leave the file to the
        # release that wrote it).
        check_sqlite_file_as_is(settings)
    except MemoryServiceError as exc:
        print(f"mcp-memory: {exc}; nothing was exported", file=sys.stderr)
        return 1
    try:
        sel = _selection(args)
        with _output(args.output) as out:
            anyio.run(_export, args, settings, sel, out)
    except MemoryServiceError as exc:
        print(f"mcp-memory: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        if args.output is None:
            _silence_stdout()
        print(f"mcp-memory: the reader of {where} went away; the export is cut off", file=sys.stderr)
        return 1
    except OSError as exc:
        if args.output is None:
            _silence_stdout()
        print(f"mcp-memory: cannot write the export to {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what it still buffers does not fail
    again (with a traceback) after the error has been reported."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def cmd_import(args: argparse.Namespace) -> int:
    """Validate an export file whole, then import it; print the report (exit 1 with a message on stderr when
    refused or when it fails)."""
    try:
        return _run_import(args)
    except ConfigurationError:
        raise
    except Exception as exc:
        print(unexpected_failure(exc, "importing", "the import did not finish"), file=sys.stderr)
        return 1


def _run_import(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup_logging(settings.log_level)
    if not Path(args.file).is_file():
        print(f"mcp-memory: invalid_argument: {args.file} is not a file", file=sys.stderr)
        return 1
    try:
        report = anyio.run(_import, args, settings)
    except MemoryServiceError as exc:
        print(f"mcp-memory: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"ok": True, **report}, indent=2))
    return 0


def add_parsers(sub: Any) -> None:
    """The ``export`` and ``import`` subcommands."""
    export = sub.add_parser("export", help="write a project, an agent or a session as a JSON Lines export file")
    export.add_argument("--project", required=True, help="the project_id to export")
    export.add_argument("--agent", help="only this agent_instance_id's sessions and episodes")
    export.add_argument(
        "--session", help="only sessions of this id (of --agent, else of every agent) and their episodes"
    )
    export.add_argument("--output", "-o", help="write to this file (default: stdout)")
    export.add_argument("--vectors", action="store_true", help="include episode vectors and their model's name")
    # cmd_export and cmd_import answer an unexpected failure themselves (naming the output): main's words for one
    # are for the other commands.
    export.set_defaults(func=cmd_export, doing="exporting", outcome="the export is not complete")
    imp = sub.add_parser("import", help="import an export file (validated whole before anything is written)")
    imp.add_argument("file", help="the export file")
    imp.add_argument(
        "--as-project",
        help="import everything into this project_id instead of keeping ids (episode ids another project holds "
        "get new ones)",
    )
    imp.set_defaults(func=cmd_import, doing="importing", outcome="the import did not finish")


__all__ = ["add_parsers", "cmd_export", "cmd_import"]
