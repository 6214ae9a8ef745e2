"""The transfer port: what export and import (``mcp-memory export`` / ``import``) need from a durable store.

Export reads a selection (a project, one agent of it, one session, or the sessions of one id under every agent)
kind by kind in keyset pages (``after`` is the store's own row key of the last row of the previous page, 0 for the
first), so that no export holds more than one page in memory whatever the size of the project. Import writes a whole
file's records in one transaction of the durable store (:meth:`TransferStore.import_records`), through the same
insert paths as the lifecycle (an episode's full-text postings and its project's statistics are made as
``add_episode`` makes them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable
from uuid import UUID, uuid5

from mcp_memory.errors import Conflict
from mcp_memory.models import CheckpointData, Episode, Item, Scope, SessionInfo
from mcp_memory.stores.ports import EventRecord


@dataclass(frozen=True, slots=True)
class Selection:
    """What an export covers: a project, one agent of it, or one session of that agent; a ``session_id`` without an
    agent selects the sessions of that id under every agent of the project (as ``mcp-memory forget --session``
    erases them), with the episodes recorded with that ``session_id``."""

    project_id: UUID
    agent_instance_id: UUID | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionEntry:
    """A session's record as exported (``SessionInfo`` carries status, seal, times, metadata and its episode)."""

    info: SessionInfo


@dataclass(frozen=True, slots=True)
class WorkingEntry:
    """One live working-memory key of a session."""

    scope: Scope
    key: str
    item: Item


@dataclass(frozen=True, slots=True)
class CheckpointEntry:
    """A checkpoint with its state."""

    scope: Scope
    checkpoint: CheckpointData


@dataclass(frozen=True, slots=True)
class EventEntry:
    """One lifecycle event of a session."""

    scope: Scope
    event: EventRecord


@dataclass(frozen=True, slots=True)
class EpisodeEntry:
    """An episode, with its vector and the model that made it when the export includes vectors."""

    episode: Episode
    embedding: list[float] | None = None
    embedding_model: str | None = None


Entry = SessionEntry | WorkingEntry | CheckpointEntry | EventEntry | EpisodeEntry


RENAME_NAMESPACE = UUID("5b0f7c4e-2d1a-5e8b-9c3f-6a7d0e4b1f29")
"""The namespace of the ids a mapped import renames episodes to (:func:`renamed_episode_id`): fixed, so that the
same file imported into the same project again derives the same ids."""
RENAME_STEPS = 4
"""How many ids a mapped import tries for one episode (its own, then renamed again and again,
:func:`rename_chain`) before it gives up with ``Conflict``: past the first rename, each is held only if another
import brought that very id in."""


def renamed_episode_id(project_id: UUID, episode_id: UUID) -> UUID:
    """The id a mapped import into ``project_id`` gives an episode whose id ``episode_id`` is held by another
    project: ``uuid5(RENAME_NAMESPACE, "<project_id>:<episode_id>")``, the same every time."""
    return uuid5(RENAME_NAMESPACE, f"{project_id}:{episode_id}")


def rename_chain(project_id: UUID, episode_id: UUID) -> list[UUID]:
    """The ids a mapped import into ``project_id`` may give the file's episode ``episode_id``, in the order it tries
    them: its own, then each the rename of the one before (:data:`RENAME_STEPS` in all). The episode takes the
    first that no project holds; if ``project_id`` holds any of them, an import brought the episode in already."""
    chain = [episode_id]
    while len(chain) < RENAME_STEPS:
        chain.append(renamed_episode_id(project_id, chain[-1]))
    return chain


def _episode_uuid(value: object) -> UUID | None:
    try:
        return UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def named_episodes(detail: Mapping[str, object]) -> set[UUID]:
    """The episodes an event's detail names: its ``episode_id`` (a terminate's, an edit's, a merge's) and each of
    its ``episode_ids`` (a forget's). A mapped import that renames one of them renames it there too
    (:func:`renamed_detail`)."""
    ids = detail.get("episode_ids")
    listed = ids if isinstance(ids, list) else []
    return {u for u in (_episode_uuid(v) for v in [detail.get("episode_id"), *listed]) if u is not None}


def renamed_detail(detail: Mapping[str, object], renames: Mapping[UUID, UUID]) -> dict[str, object]:
    """A copy of an event's ``detail`` in which each episode it names (:func:`named_episodes`) that ``renames``
    maps is named by its new id; the rest as it was."""

    def renamed(value: object) -> object:
        named = _episode_uuid(value)
        return str(renames[named]) if named is not None and named in renames else value

    out = dict(detail)
    if "episode_id" in out:
        out["episode_id"] = renamed(out["episode_id"])
    ids = out.get("episode_ids")
    if isinstance(ids, list):
        out["episode_ids"] = [renamed(v) for v in ids]
    return out


def scope_occupied() -> Conflict:
    """The refusal of an import with kept ids into a scope that holds sessions or episodes already."""
    return Conflict(
        "the store holds sessions or episodes in the export's scope already; import into an empty scope, "
        "or with --as-project into another project (nothing was imported)"
    )


def session_held(project_id: UUID, agent_instance_id: UUID, session_id: str) -> Conflict:
    """The refusal of an import of a session that the target project holds already."""
    return Conflict(
        f"session '{session_id}' of agent {agent_instance_id} exists already in project {project_id}; "
        "an import never merges into a session (nothing was imported)"
    )


@dataclass(slots=True)
class ImportPlan:
    """How records land: every record is moved to ``project_id`` (the file's own project, or ``--as-project``).

    ``keep_ids``: the file's episode ids are kept, and one that the store holds already (in any project: episode
    ids are unique store-wide) is ``Conflict``; otherwise (mapped) an episode that the target project holds already,
    under its own id or one it would be renamed to (:func:`rename_chain`), is ``Conflict``, and one whose id only
    another project holds is renamed (the first free id of its chain, the same on every import), the sessions that
    refer to it (``episode_id``, the terminate result) and the events that name it (:func:`named_episodes`)
    following. Either way a session that exists already in the target project is ``Conflict``: an import never
    merges into, or renames, a session or an episode. A session whose episode the file does not hold (forgotten)
    comes in referring to none, never to an episode the store holds under that id.
    ``working``: the durable store is the working store too (SQLite, or Postgres without Redis), so working memory
    is written in the same transaction; otherwise working records are skipped here (the caller writes them to the
    working store)."""

    project_id: UUID
    keep_ids: bool
    working: bool
    vector_model: str | None
    """Vectors made by this model are stored; others are dropped, so the episode waits for the embedding backfill
    (``mcp-memory reembed`` or the server's background retry). None: store every vector as it is."""
    require_empty: Selection | None = None
    """Kept ids: the scope that must hold no session and no episode (checked in the import's transaction), else
    ``Conflict``."""
    max_keys: int | None = None
    """With ``working``: the key limit per session. A session whose working records still live at ``now`` exceed it
    is ``TooLarge`` and nothing is imported, as the separate working store's staging refuses it."""
    now: float = 0.0
    """The time at which a working record's expiry counts as passed (for ``max_keys``)."""
    renamed_episodes: dict[UUID, UUID] = field(default_factory=dict)
    """Filled by the import: file episode id -> new id, for those that would have clashed."""
    counts: dict[str, int] = field(default_factory=dict)
    """Filled by the import: records written per kind, and ``vectors_dropped`` (left for the backfill)."""


@runtime_checkable
class TransferStore(Protocol):
    """Export pages and a one-transaction import, on a durable store (both SQL stores)."""

    async def export_sessions(self, sel: Selection, after: int, limit: int) -> list[tuple[int, SessionInfo]]:
        """The selection's sessions (those whose spawn has completed), by row key, ``limit`` after ``after``."""
        ...

    async def export_counts(self, sel: Selection) -> dict[str, int]:
        """How many ``checkpoints``, ``events`` and ``episodes`` the selection holds (of sessions whose spawn has
        completed), counted in the store: no checkpoint state or episode text is read."""
        ...

    async def export_checkpoints(
        self, sel: Selection, after: int, limit: int
    ) -> list[tuple[int, Scope, CheckpointData]]:
        """The selection's checkpoints with their states, oldest row first."""
        ...

    async def export_events(self, sel: Selection, after: int, limit: int) -> list[tuple[int, Scope, EventRecord]]:
        """The selection's lifecycle events, in the order they were recorded."""
        ...

    async def export_episodes(
        self, sel: Selection, after: int, limit: int, vectors: bool
    ) -> list[tuple[int, EpisodeEntry]]:
        """The selection's episodes (an agent's or a session's: those recorded by it; a session id's without an
        agent: those recorded with that ``session_id`` by any agent), with vectors if asked."""
        ...

    async def selection_occupied(self, sel: Selection) -> bool:
        """Whether the store holds any session or episode in ``sel``."""
        ...

    async def held_sessions(self, project_id: UUID, sessions: Sequence[tuple[UUID, str]]) -> set[tuple[UUID, str]]:
        """Which of ``sessions`` (agent, session id) project ``project_id`` holds (their spawn completed or not)."""
        ...

    async def import_records(self, records: AsyncIterator[Entry], plan: ImportPlan) -> None:
        """Write ``records`` (already validated) in one transaction, moved to ``plan.project_id``: all or nothing.
        Sessions come before the records that belong to them. ``Conflict`` (nothing written) as ``ImportPlan``
        says; fills ``plan.counts`` and ``plan.renamed_episodes``."""
        ...


__all__ = [
    "RENAME_NAMESPACE",
    "RENAME_STEPS",
    "CheckpointEntry",
    "Entry",
    "EpisodeEntry",
    "EventEntry",
    "ImportPlan",
    "Selection",
    "SessionEntry",
    "TransferStore",
    "WorkingEntry",
    "named_episodes",
    "rename_chain",
    "renamed_detail",
    "renamed_episode_id",
    "scope_occupied",
    "session_held",
]
