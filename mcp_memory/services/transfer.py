"""Export and import of a project, an agent or a session (``mcp-memory export`` / ``import``, the export resource).

Export streams: :meth:`Transfer.export` yields the file's lines one by one, reading the durable store in keyset
pages (:mod:`mcp_memory.stores.transfer`) and each session's working memory from the working store, so memory use is
one page (or one session's working memory), whatever the size of the project. It is not one snapshot: a scope that
changes while it is exported gives a file of what each page read (the header's counts are those at the start; the
trailer's, which the import checks, are those written), but only of the sessions its session pass listed, so that
the import takes it.

Import reads the file line by line, every pass from the same open file (:mod:`mcp_memory.services.export_reader`):
once to validate all of it (header, every record, the trailer's counts and checksum), so that a truncated, tampered
or newer-version file is refused before anything is written (each later pass checks the checksum again); when working
memory lives in Redis, again to stage every session's working memory there (apart from the live keys: invisible,
see :class:`~mcp_memory.stores.ports.StagedImport`); then again to write the durable store in one transaction (all
or nothing); and last the staged working memory is switched in, every session in one Redis script (in Cluster, one
per session: a script cannot span hash slots), which also closes each terminated session that kept keys, as terminate
would (nothing of the import is left to do after it). A failure before the durable commit drops what was staged: nothing
of the import is left. The durable commit is the point of no return: if the switch then fails (Redis lost, or in
Cluster cut off midway), the error says how many sessions were switched, and the others come back (as Redis
re-opens sessions it lost) with their newest checkpoint. A call that touches a session between the durable commit and
the switch (or after an import that stopped there) re-opens it from the staged working memory, as the switch would
have made it, and the switch leaves such a session as it is, so what that call wrote stays
(:mod:`mcp_memory.stores.redis.staging`); a session deleted in between (``delete_session``, ``forget``) stays deleted:
the switch drops its staged working memory, and the report does not count it among those written.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID, uuid4

import anyio

from mcp_memory import faults
from mcp_memory.errors import MemoryServiceError
from mcp_memory.models import Item, Scope, SessionStatus, iso, to_datetime
from mcp_memory.services.export_format import FORMAT_NAME, FORMAT_VERSION, KINDS, Header
from mcp_memory.services.export_lines import (
    checkpoint_line,
    dump,
    episode_line,
    event_line,
    session_line,
    working_line,
)
from mcp_memory.services.export_reader import check_export, export_entries, open_export
from mcp_memory.services.import_checks import EXPIRY_CLOCK_MARGIN, ImportLimits
from mcp_memory.services.working import MAX_TTL_SECONDS
from mcp_memory.stores.ports import Incarnation, Limits, StagedImport, WorkingStore
from mcp_memory.stores.transfer import (
    ImportPlan,
    Selection,
    SessionEntry,
    TransferStore,
    WorkingEntry,
    scope_occupied,
    session_held,
)
from mcp_memory.version import __version__

logger = logging.getLogger(__name__)

PAGE = 200
"""Rows per keyset page of the export (checkpoints: a tenth of it, as each carries its state)."""


@dataclass
class ImportReport:
    """What an import did: records written per kind, episodes that got new ids, vectors left for the backfill,
    and (working memory in Redis) the sessions whose working memory was written, out of how many."""

    project_id: UUID
    counts: dict[str, int]
    renamed_episodes: dict[UUID, UUID] = field(default_factory=dict)
    working_sessions_written: int = 0
    working_sessions: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "project_id": str(self.project_id),
            "counts": self.counts,
            "renamed_episodes": {str(k): str(v) for k, v in self.renamed_episodes.items()},
            "working_sessions_written": self.working_sessions_written,
            "working_sessions": self.working_sessions,
        }


@dataclass(frozen=True, slots=True)
class Staged:
    """A session whose working memory an import has staged, with what the switch needs of its durable record."""

    scope: Scope
    status: SessionStatus
    sealed: bool
    made_from: Incarnation
    """The durable record as imported (its creation time as the store keeps it; no terminate's seal token): which
    session of its id the working memory switched in is (a later terminate's close tells it apart by it)."""


class Transfer:
    """Export and import over one runtime's stores."""

    def __init__(
        self,
        durable: TransferStore,
        working: WorkingStore,
        *,
        same_store: bool,
        limits: Limits,
        clock: Callable[[], float],
        embedding_model: str | None,
        item_limits: tuple[int, int] | None = None,
    ) -> None:
        """``item_limits``: the server's ``max_key_length`` and ``max_value_bytes``, which an import's working keys,
        checkpoint states and metadata must keep to, as its checkpoint states keep to ``limits.max_keys`` (None:
        not checked)."""
        self._durable = durable
        self._working = working
        self._same_store = same_store
        self._limits = limits
        self._items = item_limits
        self._clock = clock
        self._model = embedding_model

    # -- export ----------------------------------------------------------------------------------------------
    async def _count(self, sel: Selection, now: float) -> dict[str, int]:
        """The header's counts: the sessions and their working keys (names only) page by page, the rest counted in
        the store (no checkpoint state or episode text is read)."""
        counts = dict.fromkeys(KINDS, 0)
        async for scope, _status in self._sessions(sel):
            counts["sessions"] += 1
            counts["working"] += len(await self._working.list_keys(scope, "", now))
        counts.update(await self._durable.export_counts(sel))
        return counts

    async def _sessions(self, sel: Selection) -> AsyncIterator[tuple[Scope, SessionStatus]]:
        after = 0
        while page := await self._durable.export_sessions(sel, after, PAGE):
            for _, info in page:
                yield Scope(info.project_id, info.agent_instance_id, info.session_id), info.status
            after = page[-1][0]

    async def export(self, sel: Selection, *, vectors: bool = False) -> AsyncIterator[bytes]:
        """The export file of ``sel``, line by line (each ``\\n``-terminated). ``vectors``: episodes carry their
        vectors and the name of the model that made each."""
        now = self._clock()
        counts = await self._count(sel, now)
        header = {
            "kind": "header",
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created_at": iso(to_datetime(now)),
            "exported_by": f"mcp-memory {__version__}",
            "scope": {
                "project_id": str(sel.project_id),
                "agent_instance_id": None if sel.agent_instance_id is None else str(sel.agent_instance_id),
                "session_id": sel.session_id,
            },
            "counts": counts,
            "vectors": vectors,
            "embedding_model": self._model if vectors else None,
        }
        digest = hashlib.sha256()
        written = dict.fromkeys(KINDS, 0)

        def emit(line: dict[str, Any], kind: str | None) -> bytes:
            data = dump(line)
            digest.update(data)
            if kind is not None:
                written[kind] += 1
            return data

        yield emit(header, None)
        # The later passes write only what belongs to a session this pass wrote (a dict as an ordered set): a
        # session spawned, or whose spawn completed, while the export runs would otherwise have its keys,
        # checkpoints or events in the file without its session line, a file the import refuses.
        listed: dict[tuple[UUID, str], None] = {}
        after = 0
        while sessions := await self._durable.export_sessions(sel, after, PAGE):
            for _, info in sessions:
                listed[(info.agent_instance_id, info.session_id)] = None
                yield emit(session_line(info), "sessions")
            after = sessions[-1][0]
        for agent, session_id in listed:
            scope = Scope(sel.project_id, agent, session_id)
            items = await self._working.snapshot(scope, now)
            for key in sorted(items):
                yield emit(working_line(scope, key, items[key], now), "working")
        after = 0
        while checkpoints := await self._durable.export_checkpoints(sel, after, max(1, PAGE // 10)):
            for _, scope, cp in checkpoints:
                if (scope.agent_instance_id, scope.session_id) in listed:
                    yield emit(checkpoint_line(scope, cp), "checkpoints")
            after = checkpoints[-1][0]
        after = 0
        while events := await self._durable.export_events(sel, after, PAGE):
            for _, scope, ev in events:
                if (scope.agent_instance_id, scope.session_id) in listed:
                    yield emit(event_line(scope, ev), "events")
            after = events[-1][0]
        after = 0
        while episodes := await self._durable.export_episodes(sel, after, PAGE, vectors):
            for _, entry in episodes:
                yield emit(episode_line(entry, vectors), "episodes")
            after = episodes[-1][0]
        if written != counts:
            logger.warning("the scope changed during the export: header counts %s, written %s", counts, written)
        yield dump({"kind": "trailer", "counts": written, "sha256": digest.hexdigest()})

    # -- import ----------------------------------------------------------------------------------------------
    async def validate(self, path: Path) -> Header:
        """Check the file at ``path`` whole, as an import of it would, this server's limits included
        (:func:`~mcp_memory.services.export_reader.check_export`); its header."""
        f = await open_export(path)
        try:
            return (await check_export(f, self._bounds()))[0]
        finally:
            f.close()

    async def import_file(self, path: Path, *, as_project: UUID | None = None) -> ImportReport:
        """Validate ``path`` whole, then import it (see the module docstring). Without ``as_project`` ids are
        kept, into an empty scope (the header's: ``conflict`` if the store holds any session or episode there, or
        any of the file's episode ids). With it, everything lands in project ``as_project``: session and checkpoint
        ids are kept (a session that exists there already is ``conflict``), an episode that project holds already
        is ``conflict``, and one whose id only another project holds gets a new UUID, the same on every import into
        that project (the report maps them; see :class:`~mcp_memory.stores.transfer.ImportPlan`)."""
        # One open file for every pass: the file renamed over, or edited, after its validation is not what the
        # later passes read (and each of them checks the checksum again: an edit in place fails the import whole).
        f = await open_export(path)
        try:
            return await self._import(f, as_project)
        finally:
            f.close()

    async def _import(self, f: BinaryIO, as_project: UUID | None) -> ImportReport:
        header, sha256 = await check_export(f, self._bounds())
        await faults.reached("import.validated")
        source = header.scope
        target = as_project if as_project is not None else source.project_id
        keep_ids = as_project is None
        scope = Selection(source.project_id, source.agent_instance_id, source.session_id)
        plan = ImportPlan(
            project_id=target,
            keep_ids=keep_ids,
            working=self._same_store,
            vector_model=self._model,
            require_empty=scope if keep_ids else None,
            max_keys=self._limits.max_keys,
            now=self._clock(),
        )
        staged: list[Staged] = []
        token = uuid4().hex
        working = self._working if not self._same_store else None
        if working is not None and not isinstance(working, StagedImport):
            raise TypeError("a working store apart from the durable store must stage imports (StagedImport)")
        if working is not None and keep_ids and await self._durable.selection_occupied(scope):
            # Refused before anything is staged: a note staged for a session the store holds would name that very
            # session's record, and a re-open meanwhile would take the file's working memory (see _stage_working).
            raise scope_occupied()
        try:
            working_counts = (
                0 if working is None else await self._stage_working(f, sha256, target, token, staged, keep_ids)
            )
            await self._durable.import_records(export_entries(f, sha256), plan)
        except BaseException:
            if working is not None:
                with anyio.CancelScope(shield=True):
                    await self._drop_staged(working, [s.scope for s in staged], token)
            raise
        report = ImportReport(target, dict(plan.counts), dict(plan.renamed_episodes))
        if working is not None:
            report.counts["working"] = working_counts
            report.working_sessions = len(staged)
            await self._switch_working(working, staged, token, report)
        return report

    def _bounds(self) -> ImportLimits | None:
        if self._items is None:
            return None
        max_key_length, max_value_bytes = self._items
        latest = self._clock() + MAX_TTL_SECONDS + EXPIRY_CLOCK_MARGIN
        return ImportLimits(max_key_length, max_value_bytes, self._limits.max_keys, latest)

    async def _stage_working(
        self, f: BinaryIO, sha256: str, project: UUID, token: str, staged: list[Staged], checked: bool
    ) -> int:
        """Stage working memory in the separate working store (Redis), per session exactly its keys: running and
        paused sessions (even with none), a terminated one only if it kept keys. Keys whose expiry has passed by
        now are skipped. Appends each staged session to ``staged`` (for the switch, or the cleanup); returns the
        working records read.

        A session that ``project`` holds already is ``Conflict`` before it is staged (unless ``checked``: the
        caller found the whole scope empty): the durable step would refuse the import anyway, and the staging's
        note, naming the record the store holds (a backup imported again), would have a re-open of that session
        take the file's older working memory and keep it. An import of the same file that runs at the same time
        passes this check too: the durable step refuses one of them (see :mod:`mcp_memory.stores.redis.staging`)."""
        assert isinstance(self._working, StagedImport)
        working = self._working
        now = self._clock()
        statuses: dict[tuple[UUID, str], tuple[SessionStatus, bool, Incarnation]] = {}  # whether sealed, which
        items: dict[tuple[UUID, str], dict[str, Item]] = {}
        records = 0
        unchecked: list[tuple[UUID, str]] = []  # sessions read and not yet looked up, checked in one go

        async def stage(key: tuple[UUID, str]) -> None:
            if unchecked:
                held = await self._durable.held_sessions(project, unchecked)
                unchecked.clear()
                if held:
                    agent, session_id = min(held)
                    raise session_held(project, agent, session_id)
            scope, kept = Scope(project, key[0], key[1]), items.pop(key, {})
            status, sealed, made_from = statuses[key]
            if status == SessionStatus.TERMINATED and not kept:
                return  # its keys all expired: nothing to keep
            await working.stage_import(scope, kept, now, self._limits, token, made_from)
            staged.append(Staged(scope, status, sealed, made_from))
            await faults.reached("import.working_staged")

        pending: tuple[UUID, str] | None = None
        async for entry in export_entries(f, sha256):
            if isinstance(entry, SessionEntry):
                info = entry.info
                # Its creation time as the durable store writes and reads it back (epoch seconds, to the microsecond).
                made_from = Incarnation(to_datetime(info.created_at.timestamp()), None)
                statuses[(info.agent_instance_id, info.session_id)] = (info.status, info.sealed, made_from)
                if not checked:
                    unchecked.append((info.agent_instance_id, info.session_id))
            elif isinstance(entry, WorkingEntry):
                key = (entry.scope.agent_instance_id, entry.scope.session_id)
                if pending is not None and pending != key:
                    await stage(pending)
                pending = key
                bucket = items.setdefault(key, {})
                if entry.item.expires_at is None or entry.item.expires_at > now:
                    bucket[entry.key] = entry.item
                records += 1
            elif pending is not None:
                await stage(pending)
                pending = None
        if pending is not None:
            await stage(pending)
        done = {(s.scope.agent_instance_id, s.scope.session_id) for s in staged}
        for key, (status, _, _) in statuses.items():
            if status != SessionStatus.TERMINATED and key not in done:
                await stage(key)
        return records

    @staticmethod
    async def _drop_staged(working: StagedImport, scopes: list[Scope], token: str) -> None:
        try:
            await working.drop_import(scopes, token)
        except Exception:
            # Staged keys are never read; left over, they expire (STAGING_TTL_MS) or go with `mcp-memory forget`.
            logger.warning("could not drop the staged working memory of a failed import", exc_info=True)

    async def _switch_working(
        self, working: StagedImport, staged: list[Staged], token: str, report: ImportReport
    ) -> None:
        """After the durable commit: switch every staged session's working memory in (a session whose terminate was
        cut off stays sealed, as the durable record says; a terminated one that kept keys closed as terminate closes
        it, in the switch itself: a step of its own after the switch could fail and leave the session's marker in
        Redis for good, or mark a session deleted since the switch)."""
        await faults.reached("import.durable_committed")
        scopes = [s.scope for s in staged]
        sealed = {s.scope for s in staged if s.sealed and s.status != SessionStatus.TERMINATED}
        terminated = {s.scope for s in staged if s.status == SessionStatus.TERMINATED}
        try:
            made_from = {s.scope: s.made_from for s in staged}
            switched = await working.switch_import(scopes, token, self._clock(), sealed, terminated, made_from)
            report.working_sessions_written = len(switched)
            await faults.reached("import.switched")
        except MemoryServiceError as exc:
            await self._drop_staged(working, scopes, token)
            raise type(exc)(
                f"{exc.message}; the durable records were imported, and working memory of "
                f"{report.working_sessions_written} of {report.working_sessions} sessions (the others come back "
                "with their newest checkpoint)"
            ) from exc


async def write_export(lines: AsyncIterator[bytes], out: BinaryIO) -> int:
    """Write an export to ``out``; returns the bytes written."""
    size = 0
    async for data in lines:
        out.write(data)
        size += len(data)
    out.flush()
    return size


__all__ = ["PAGE", "ImportReport", "Transfer", "write_export"]
