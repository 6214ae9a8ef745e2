"""What an episode's owner controls: forget episodes, edit one, and record without repeating one.

- Forget (``forget_episodes``): by ids (forgotten at once; an id the project does not hold counts 0, whether it
  never existed or belongs to another project: no existence oracle), or by a filter (agent, session, task type,
  outcome, recorded before a time), which only counts what it would forget unless ``confirm`` is true. No ids and
  no filter means every episode of the project: refused (``invalid_argument``) without ``confirm``. The store
  removes the rows, vectors and full-text statistics in one transaction and records a ``forget_episodes`` event on
  each session the episodes came from that still exists (a terminated session whose episode goes refers to none
  from then on; a repeated terminate still answers its id); episodes without one are logged here (project level).
- Edit (``update_episode``): lessons, outcome details, importance, metadata. Lessons and outcome details are part
  of the searchable text (:func:`~mcp_memory.services.episodic.episode_text`): a change re-indexes and re-embeds it
  (with no provider answering, the old vector is dropped and the background retry embeds it). Recorded as an
  ``update_episode`` event on its session if that exists.
- Duplicates (``record_episode``): the same episode again (same project, agent, session, outcome and text) returns
  the first one's id and writes nothing. With embeddings on, an episode whose vector is within
  ``duplicate_similarity`` (cosine) of one of the project's episodes of the same task type and outcome is stored
  and reported as ``duplicate_of`` that one, or, with ``duplicate_action = "merge"``, not stored if the agent has
  such an episode of its own: that older episode gains its new lessons (in order, none twice) and keeps the higher
  importance; if that one is forgotten before the merge is written, the new episode is stored as a new one. A merge
  never crosses agents, so every episode's text is one agent's and forgetting an agent forgets all it wrote: a
  near-duplicate of another agent's episode only is stored and reported as with ``"report"``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from mcp_memory import faults
from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, InvalidArgument, NotFound, TooLarge
from mcp_memory.models import Episode, Outcome, parse_outcome, parse_uuid, validate_identifier
from mcp_memory.services.episodic import EpisodicMemory, episode_text
from mcp_memory.services.session_control import retention_policy
from mcp_memory.services.validation import (
    MAX_LESSONS,
    MAX_TASK_TYPE,
    MAX_TEXT,
    check_importance,
    check_lessons,
    check_metadata,
    check_text,
    parse_since,
)
from mcp_memory.stores.ports import (
    DurableStore,
    EpisodeChanged,
    EpisodeChanges,
    EpisodeSelector,
    EpisodeText,
    EventRecord,
)

logger = logging.getLogger(__name__)

MAX_FORGET_IDS = 1000
"""Most episode ids one ``forget_episodes`` call takes."""


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What ``forget`` did: the ids of the episodes it removed (all of them, for a filter too: subscribers of each
    are told), or, for a filter without ``confirm``, how many it ``would_forget``; ``by_ids``: the call named them;
    ``sessions``: the sessions (agent, session id) the removed episodes came from, once each."""

    episode_ids: tuple[UUID, ...] = ()
    would_forget: int | None = None
    by_ids: bool = False
    sessions: tuple[tuple[UUID, str], ...] = ()

    def as_result(self) -> dict[str, Any]:
        """The tool's result: the count, and the ids only when the call gave ids (a filter may remove thousands)."""
        if self.would_forget is not None:
            return {"forgotten": 0, "would_forget": self.would_forget}
        result: dict[str, Any] = {"forgotten": len(self.episode_ids)}
        if self.by_ids:
            result["episode_ids"] = [str(e) for e in self.episode_ids]
        return result


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``record`` did: the episode's id (the new one, or the older one it repeats or was merged into);
    ``repeat``: it repeats a stored episode exactly (nothing written); ``duplicate_of`` / ``similarity``: a
    near-duplicate's older episode and their cosine; ``merged``: merged into that one (no new row)."""

    episode: Episode
    repeat: bool = False
    duplicate_of: UUID | None = None
    similarity: float | None = None
    merged: bool = False

    def as_result(self) -> dict[str, Any]:
        """The tool's result."""
        out: dict[str, Any] = {"episode_id": str(self.episode.episode_id)}
        if self.repeat:
            out["repeat"] = True
        if self.merged:
            out["merged"] = True
        elif self.duplicate_of is not None:
            out["duplicate_of"] = str(self.duplicate_of)
        if self.similarity is not None:
            out["similarity"] = round(self.similarity, 4)
        return out


class EpisodeControl:
    """Forget, edit and duplicate-aware recording of one durable store's episodes."""

    def __init__(
        self,
        episodic: EpisodicMemory,
        store: DurableStore,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._episodic = episodic
        self._store = store
        self._settings = settings
        self._clock = clock

    # -- forget ------------------------------------------------------------------------------------------------
    def selector(
        self,
        episode_ids: Sequence[str | UUID] | None = None,
        agent_instance_id: str | UUID | None = None,
        session_id: str | None = None,
        task_type: str | None = None,
        outcome: Outcome | str | None = None,
        before: str | datetime | None = None,
    ) -> EpisodeSelector:
        """The arguments of ``forget_episodes`` checked into a selector (``invalid_argument`` otherwise)."""
        sel = EpisodeSelector(
            agent_instance_id=None if agent_instance_id is None else parse_uuid(agent_instance_id, "agent_instance_id"),
            session_id=None if session_id is None else validate_identifier(session_id, "session_id"),
            task_type=None if task_type is None else check_text(task_type, "task_type", MAX_TASK_TYPE),
            outcome=None if outcome is None else parse_outcome(outcome),
            before=None if before is None else parse_since(before, "before"),
        )
        if episode_ids is None:
            return sel
        if sel != EpisodeSelector():
            raise InvalidArgument("give episode_ids or a filter (agent, session, task_type, outcome, before), not both")
        if not isinstance(episode_ids, list | tuple) or not episode_ids:
            raise InvalidArgument("episode_ids must be a non-empty list of episode ids")
        if len(episode_ids) > MAX_FORGET_IDS:
            raise TooLarge(f"episode_ids has {len(episode_ids)} entries; the limit is {MAX_FORGET_IDS}")
        ids = tuple(dict.fromkeys(parse_uuid(e, "an episode id") for e in episode_ids))
        return EpisodeSelector(episode_ids=ids)

    async def forget(
        self,
        project_id: str | UUID,
        confirm: bool = False,
        *,
        episode_ids: Sequence[str | UUID] | None = None,
        agent_instance_id: str | UUID | None = None,
        session_id: str | None = None,
        task_type: str | None = None,
        outcome: Outcome | str | None = None,
        before: str | datetime | None = None,
    ) -> Forgotten:
        """``forget_episodes``: what was removed, or, for a filter without ``confirm``, only how many would be
        (:meth:`Forgotten.as_result` is the tool's answer)."""
        project = parse_uuid(project_id, "project_id")
        if not isinstance(confirm, bool):
            raise InvalidArgument("confirm must be true or false")
        sel = self.selector(episode_ids, agent_instance_id, session_id, task_type, outcome, before)
        by_ids = sel.episode_ids is not None
        if not by_ids and not confirm:
            if sel == EpisodeSelector():
                raise InvalidArgument(
                    "forget_episodes with neither episode_ids nor a filter would forget every episode of the "
                    "project; pass confirm=true to do that"
                )
            return Forgotten(would_forget=await self._store.count_episodes(project, sel))
        started = time.perf_counter()
        event = EventRecord("forget_episodes", self._clock(), 0.0, "ok", {}, perf_start=started)
        gone = await self._store.forget_episodes(project, sel, event, retention_policy(self._settings))
        lone = sum(1 for g in gone if g.session_id is None)
        if gone:
            # Events go on the episodes' sessions; what has none is logged here (no session to hold its event).
            logger.info("forgot %d episodes of project %s (%d without a session)", len(gone), project, lone)
        sessions = dict.fromkeys((g.agent_instance_id, g.session_id) for g in gone if g.session_id is not None)
        return Forgotten(tuple(g.episode_id for g in gone), by_ids=by_ids, sessions=tuple(sessions))

    # -- edit --------------------------------------------------------------------------------------------------
    async def update(
        self,
        project_id: str | UUID,
        episode_id: str | UUID,
        lessons_learned: list[str] | None = None,
        outcome_details: str | None = None,
        importance_score: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``update_episode``: ``{"episode_id", "updated": {field: new value}}``; ``not_found`` for an episode
        the project does not hold."""
        project = parse_uuid(project_id, "project_id")
        eid = parse_uuid(episode_id, "episode_id")
        fields: dict[str, Any] = {}
        if lessons_learned is not None:
            fields["lessons_learned"] = check_lessons(lessons_learned)
        if outcome_details is not None:
            fields["outcome_details"] = check_text(outcome_details, "outcome_details", MAX_TEXT, required=False)
        if importance_score is not None:
            fields["importance_score"] = check_importance(importance_score)
        if metadata is not None:
            fields["metadata"] = check_metadata(metadata, self._settings.max_value_bytes)
        if not fields:
            raise InvalidArgument("give at least one of lessons_learned, outcome_details, importance_score, metadata")
        current = await self._episodic.get(project, eid)
        updated = await self._apply(current, fields, "update_episode")
        return {"episode_id": str(updated.episode_id), "updated": {k: getattr(updated, k) for k in fields}}

    async def _apply(
        self, current: Episode, fields: dict[str, Any] | Callable[[Episode], dict[str, Any]], event_type: str
    ) -> Episode:
        """Write ``fields`` (or the fields a function makes of the stored episode) into the stored ``current``
        episode, re-embedding it if its searchable text changes. The write is made from the text and importance as
        read: if a concurrent edit changed either meanwhile, the episode is read again and the change made again
        from it, so no edit is lost and the vector is always that of the stored text."""
        for _ in range(_EDIT_ATTEMPTS):
            wanted = fields(current) if callable(fields) else fields
            if not wanted:
                return current
            try:
                return await self._write_edit(current, wanted, event_type)
            except EpisodeChanged:
                current = await self._episodic.get(current.project_id, current.episode_id)
        raise Conflict(f"episode '{current.episode_id}' kept changing under concurrent edits; retry")

    async def _write_edit(self, current: Episode, fields: dict[str, Any], event_type: str) -> Episode:
        started = time.perf_counter()
        new = current.model_copy(update=fields)
        # Decided on the whole fields, not on the embedded text: that is cut at MAX_EMBED_CHARS and joins the lessons
        # with newlines, so an edit past the cut (or lessons split differently) would leave the store's full-text
        # index on the old text.
        made_from = EpisodeText.of(current)
        reembed = EpisodeText.of(new) != made_from
        vector = None
        if reembed:
            vectors = await self._episodic.embed([episode_text(new)])
            vector = vectors[0] if vectors else None
        changes = EpisodeChanges(
            lessons_learned=fields.get("lessons_learned"),
            outcome_details=fields.get("outcome_details"),
            importance_score=fields.get("importance_score"),
            metadata=fields.get("metadata"),
            reembed=reembed,
            embedding=vector,
            embedding_model=self._episodic.embedding_model if vector is not None else None,
            made_from=made_from,
            # A merge decides the importance from the one it read: one raised since must not be written over.
            importance_from=current.importance_score,
        )
        detail = {"episode_id": str(current.episode_id), "fields": sorted(fields)}
        event = EventRecord(event_type, self._clock(), 0.0, "ok", detail, perf_start=started)
        retention = retention_policy(self._settings)
        updated = await self._store.update_episode(current.project_id, current.episode_id, changes, event, retention)
        if updated is None:  # forgotten meanwhile
            raise NotFound(f"episode '{current.episode_id}' does not exist in project {current.project_id}")
        return updated

    # -- record, without repeats -------------------------------------------------------------------------------
    async def record(self, **fields: Any) -> Recorded:
        """``record_episode`` with duplicates recognised (see the module docstring)."""
        episode = self._episodic.build(**fields)
        same = await self._store.same_episode(episode)
        if same is not None:
            return Recorded(await self._episodic.get(episode.project_id, same), repeat=True)
        vectors = await self._episodic.embed([episode_text(episode)])
        vector = vectors[0] if vectors else None
        model = self._episodic.embedding_model if vector is not None else None
        near = None
        if vector is not None:
            near = await self._near_duplicate(episode, vector, model)
            if near is not None and self._settings.duplicate_action == "merge":
                merged = await self._merge_near(episode, vector, model, near)
                if isinstance(merged, Recorded):
                    return merged
                near = merged
        stored = await self._store.add_episode(episode, vector, model)
        if stored != episode.episode_id:  # recorded by a concurrent call meanwhile
            return Recorded(await self._episodic.get(episode.project_id, stored), repeat=True)
        return Recorded(
            episode.model_copy(update={"embedded": vector is not None}),
            duplicate_of=None if near is None else near[0],
            similarity=None if near is None else near[1],
        )

    async def _near_duplicate(
        self, episode: Episode, vector: list[float], model: str | None, own: bool = False
    ) -> tuple[UUID, float] | None:
        """The project's episode (with ``own``: of ``episode``'s agent) of its task type and outcome nearest to
        ``vector``, with their cosine, if that is at least ``duplicate_similarity``."""
        agent = episode.agent_instance_id if own else None
        near = await self._store.nearest_episode(
            episode.project_id, vector, model, episode.task_type, episode.outcome, agent_instance_id=agent
        )
        # Written as "not >=": a similarity that is not a number (a zero vector's) is no duplicate.
        if near is None or not near[1] >= self._settings.duplicate_similarity:
            return None
        return near

    async def _merge_near(
        self, episode: Episode, vector: list[float], model: str | None, near: tuple[UUID, float]
    ) -> Recorded | tuple[UUID, float] | None:
        """Merge ``episode`` into ``near``, its near-duplicate in the project, if that is its agent's; if not, into
        the agent's own nearest near-duplicate. The merge's answer, or else what the new episode (stored as new) is
        a duplicate of: nothing if the episode to merge into was forgotten since it was found, ``near`` (another
        agent's) if the agent has no near-duplicate of its own."""
        older = await self._store.get_episode(episode.project_id, near[0])
        if older is None:
            return None
        into = near
        if older.agent_instance_id != episode.agent_instance_id:
            # Merged only within one agent, so that each episode holds one agent's text and forgetting an agent
            # (forget_episodes, delete_session, mcp-memory forget) forgets all it wrote.
            own = await self._near_duplicate(episode, vector, model, own=True)
            older = None if own is None else await self._store.get_episode(episode.project_id, own[0])
            if own is None or older is None:
                return near
            into = own
        await faults.reached("record.merging")
        merged = await self._merge(older, episode)
        if merged is None:  # forgotten before the merge was written
            return None if into is near else near
        return Recorded(merged, duplicate_of=into[0], similarity=into[1], merged=True)

    async def record_fields(self, fields: dict[str, Any]) -> Episode:
        """``record`` for the Python API (:meth:`EpisodicMemory.record_episode`): the episode stored, repeated or
        merged into."""
        return (await self.record(**fields)).episode

    async def _merge(self, older: Episode, new: Episode) -> Episode | None:
        """Keep ``older``: its lessons followed by ``new``'s that it lacks, and the higher importance (computed from
        the stored episode, again if a concurrent merge changed it first). None if ``older`` was forgotten before
        the merge was written: nothing was."""

        def merged(stored: Episode) -> dict[str, Any]:
            lessons = list(dict.fromkeys([*stored.lessons_learned, *new.lessons_learned]))[:MAX_LESSONS]
            fields: dict[str, Any] = {}
            if lessons != stored.lessons_learned:
                fields["lessons_learned"] = lessons
            if new.importance_score > stored.importance_score:
                fields["importance_score"] = new.importance_score
            return fields

        try:
            return await self._apply(older, merged, "merge_episode")
        except NotFound:  # the only episode _apply reads or writes is the older one
            return None


_EDIT_ATTEMPTS = 5
"""How many times an edit is made again from the stored episode when concurrent edits keep changing it."""


__all__ = ["MAX_FORGET_IDS", "EpisodeControl", "Forgotten", "Recorded"]
