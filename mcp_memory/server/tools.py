"""The MCP tools of docs/contract.md: typed arguments, structured results, docstrings for the model.

Each tool body is a few lines that parse the scope and call a service; validation and errors live below.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from mcp_memory.errors import InvalidArgument
from mcp_memory.models import Scope, iso
from mcp_memory.server import episode_control_tools
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.auth import authorize

# -- argument types (their descriptions and patterns are what the model sees) -------------------------
_UUID = {"format": "uuid"}
ProjectId = Annotated[
    str | None,
    Field(
        description="Project UUID. May be omitted when the server has a default project configured.",
        json_schema_extra=_UUID,
    ),
]
AgentInstanceId = Annotated[str, Field(description="UUID of this agent instance.", json_schema_extra=_UUID)]
SessionId = Annotated[
    str,
    Field(
        description="Session identifier: 1-128 characters of A-Z a-z 0-9 . _ -",
        pattern=r"^[A-Za-z0-9._-]{1,128}$",
    ),
]
CheckpointId = Annotated[
    str | None,
    Field(
        description="Checkpoint identifier: 1-128 characters of A-Z a-z 0-9 . _ -",
        pattern=r"^[A-Za-z0-9._-]{1,128}$",
    ),
]
Metadata = Annotated[dict[str, Any] | None, Field(description="Free-form JSON object recorded with the event.")]
OutcomeArg = Literal["success", "failure", "partial"]
Key = Annotated[str, Field(description="The key (1-256 characters).", min_length=1)]


# -- results ---------------------------------------------------------------------------------------------
class SpawnResult(BaseModel):
    session_id: str
    status: str
    initial_items: int


class PauseResult(BaseModel):
    checkpoint_id: str
    items_saved: int
    bytes: int
    created_at: str


class ResumeResult(BaseModel):
    checkpoint_id: str
    items_restored: int
    checkpoint_created_at: str


class TerminateResult(BaseModel):
    episode_id: str | None
    state_items_consolidated: int
    items_cleared: int
    outcome: str


class CheckpointSummary(BaseModel):
    checkpoint_id: str
    created_at: str
    keys_count: int
    bytes: int
    label: str | None


class CheckpointList(BaseModel):
    checkpoints: list[CheckpointSummary] = Field(description="Newest first.")
    next_before: str | None = Field(
        default=None, description="Pass as `before` to get the next (older) page; null on the last page."
    )


class MemorySetResult(BaseModel):
    key: str
    expires_at: str | None


class MemoryGetResult(BaseModel):
    key: str
    value: Any


class MemoryDeleteResult(BaseModel):
    deleted: bool


class MemoryListResult(BaseModel):
    keys: list[str]


class RecordEpisodeResult(BaseModel):
    episode_id: str


class EpisodeHit(BaseModel):
    episode_id: str
    score: float
    task_type: str
    task_description: str
    outcome: str
    outcome_details: str
    lessons_learned: list[str]
    importance_score: float
    agent_instance_id: str
    session_id: str | None
    created_at: str
    context_summary: str


class SearchEpisodesResult(BaseModel):
    episodes: list[EpisodeHit] = Field(description="Best match first.")


def register_tools(server: MemoryServer) -> None:
    """Register every tool of docs/contract.md on ``server``."""
    rt = server.runtime

    def project(project_id: str | None) -> str:
        if project_id is None and rt.settings.project_id is not None:
            project_id = str(rt.settings.project_id)
        if project_id is None:
            raise InvalidArgument("project_id is required (no default project is configured: MCP_MEMORY_PROJECT_ID)")
        authorize(project_id)  # the server checks before the call already; a tool never relies on that
        return project_id

    def scope(project_id: str | None, agent_instance_id: str, session_id: str) -> Scope:
        return Scope.parse(project(project_id), agent_instance_id, session_id)

    # -- lifecycle -------------------------------------------------------------------------------------
    @server.tool()
    async def spawn(
        agent_instance_id: AgentInstanceId,
        session_id: SessionId,
        project_id: ProjectId = None,
        agent_type_id: Annotated[
            str | None, Field(description="Optional UUID of the agent's type.", json_schema_extra=_UUID)
        ] = None,
        initial_state: Annotated[
            dict[str, Any] | None, Field(description="Initial working memory as {key: JSON value}.")
        ] = None,
        metadata: Metadata = None,
    ) -> SpawnResult:
        """Start a new session for this agent, optionally with initial working memory.

        Call once per session. If the session exists already this fails with `conflict`: use `resume`
        to continue a paused session instead."""
        r = await rt.lifecycle.spawn(
            project(project_id), agent_instance_id, session_id, agent_type_id, initial_state, metadata
        )
        return SpawnResult(**r.data)

    @server.tool()
    async def pause(
        agent_instance_id: AgentInstanceId,
        session_id: SessionId,
        project_id: ProjectId = None,
        checkpoint_id: Annotated[
            CheckpointId, Field(description="Optional id for the checkpoint; generated if omitted.")
        ] = None,
        label: Annotated[str | None, Field(description="Optional human-readable label.")] = None,
        metadata: Metadata = None,
    ) -> PauseResult:
        """Checkpoint the session's whole working memory durably (an atomic snapshot), before stopping
        or before a risky step. Returns the checkpoint_id to resume from later. A checkpoint_id that
        exists already fails with `conflict` and overwrites nothing."""
        r = await rt.lifecycle.pause(project(project_id), agent_instance_id, session_id, checkpoint_id, label, metadata)
        return PauseResult(**r.data)

    @server.tool()
    async def resume(
        agent_instance_id: AgentInstanceId,
        session_id: SessionId,
        project_id: ProjectId = None,
        checkpoint_id: Annotated[
            CheckpointId, Field(description="Checkpoint to restore; the newest if omitted.")
        ] = None,
        clear_current: Annotated[
            bool,
            Field(strict=True, description="Replace working memory entirely (true) or merge the checkpoint over it."),
        ] = True,
        metadata: Metadata = None,
    ) -> ResumeResult:
        """Restore working memory from a checkpoint (the newest by default), atomically, and mark the
        session running. Use after a restart or to roll back. Unknown checkpoint: `not_found`, and working
        memory is left untouched."""
        r = await rt.lifecycle.resume(
            project(project_id), agent_instance_id, session_id, checkpoint_id, clear_current, metadata
        )
        return ResumeResult(**r.data)

    @server.tool()
    async def terminate(
        agent_instance_id: AgentInstanceId,
        session_id: SessionId,
        project_id: ProjectId = None,
        task_description: Annotated[str | None, Field(description="What the session set out to do.")] = None,
        outcome: Annotated[OutcomeArg, Field(description="How it ended.")] = "success",
        lessons_learned: Annotated[
            list[str] | None, Field(description="Lessons worth remembering for future tasks.")
        ] = None,
        consolidate_to_episodic: Annotated[
            bool, Field(strict=True, description="Record the session as an episode for search_episodes.")
        ] = True,
        cleanup_working: Annotated[bool, Field(strict=True, description="Clear working memory afterwards.")] = True,
        metadata: Metadata = None,
    ) -> TerminateResult:
        """End the session: record it as an episode (with a summary of working memory and your lessons),
        then clear working memory. Safe to call twice: the second call returns the same episode_id.
        Checkpoints stay readable; the session accepts no more writes."""
        r = await rt.lifecycle.terminate(
            project(project_id),
            agent_instance_id,
            session_id,
            task_description,
            outcome,
            lessons_learned,
            consolidate_to_episodic,
            cleanup_working,
            metadata,
        )
        return TerminateResult(**r.data)

    @server.tool()
    async def list_checkpoints(
        agent_instance_id: AgentInstanceId,
        session_id: SessionId,
        project_id: ProjectId = None,
        limit: Annotated[int, Field(ge=1, le=500, strict=True, description="Page size.")] = 50,
        before: Annotated[
            CheckpointId, Field(description="A checkpoint_id: list only checkpoints older than it (paging).")
        ] = None,
    ) -> CheckpointList:
        """List the session's checkpoints, newest first, with their size and label."""
        rows = await rt.lifecycle.list_checkpoints(project(project_id), agent_instance_id, session_id, limit, before)
        items = [CheckpointSummary(**row) for row in rows]
        return CheckpointList(checkpoints=items, next_before=items[-1].checkpoint_id if len(items) == limit else None)

    # -- working memory --------------------------------------------------------------------------------
    @server.tool()
    async def memory_set(
        agent_instance_id: AgentInstanceId,
        session_id: SessionId,
        key: Key,
        value: Annotated[Any, Field(description="Any JSON value (up to 1 MiB serialised by default).")],
        project_id: ProjectId = None,
        ttl_seconds: Annotated[
            float | None, Field(gt=0, strict=True, description="Expire the key after this many seconds.")
        ] = None,
    ) -> MemorySetResult:
        """Store a JSON value under a key in the session's working memory (replacing any previous value)."""
        s = scope(project_id, agent_instance_id, session_id)
        expires = await rt.working.set(s, key, value, ttl_seconds)
        return MemorySetResult(key=key, expires_at=iso(expires) if expires else None)

    @server.tool()
    async def memory_get(
        agent_instance_id: AgentInstanceId,
        session_id: SessionId,
        key: Key,
        project_id: ProjectId = None,
    ) -> MemoryGetResult:
        """Read one key of the session's working memory (`not_found` if absent or expired)."""
        s = scope(project_id, agent_instance_id, session_id)
        return MemoryGetResult(key=key, value=await rt.working.get(s, key))

    @server.tool()
    async def memory_delete(
        agent_instance_id: AgentInstanceId,
        session_id: SessionId,
        key: Key,
        project_id: ProjectId = None,
    ) -> MemoryDeleteResult:
        """Delete one key from the session's working memory; `deleted` says whether it existed."""
        s = scope(project_id, agent_instance_id, session_id)
        return MemoryDeleteResult(deleted=await rt.working.delete(s, key))

    @server.tool()
    async def memory_list(
        agent_instance_id: AgentInstanceId,
        session_id: SessionId,
        project_id: ProjectId = None,
        prefix: Annotated[str | None, Field(description="Only keys starting with this.")] = None,
    ) -> MemoryListResult:
        """List the keys of the session's working memory, sorted."""
        s = scope(project_id, agent_instance_id, session_id)
        return MemoryListResult(keys=await rt.working.list_keys(s, prefix))

    # -- episodic memory -------------------------------------------------------------------------------
    @server.tool()
    async def record_episode(
        agent_instance_id: AgentInstanceId,
        task_type: Annotated[str, Field(description="A short category, e.g. 'bug_fix' or 'deployment'.")],
        task_description: Annotated[str, Field(description="What the task was.")],
        outcome: OutcomeArg,
        project_id: ProjectId = None,
        session_id: Annotated[
            str | None,
            Field(description="The session this belongs to, if any.", pattern=r"^[A-Za-z0-9._-]{1,128}$"),
        ] = None,
        outcome_details: Annotated[str | None, Field(description="What happened, in a few sentences.")] = None,
        lessons_learned: Annotated[list[str] | None, Field(description="Lessons for next time.")] = None,
        importance_score: Annotated[
            float | None, Field(ge=0, le=1, strict=True, description="0-1: how much this should weigh in recall.")
        ] = None,
        metadata: Metadata = None,
    ) -> CallToolResult:
        """Record an experience (a task and how it went) so that future tasks can find it. Recording the same
        episode again returns the first one's id; a near-duplicate names the older episode as duplicate_of."""
        recorded = await rt.episode_control.record(
            project_id=project(project_id),
            agent_instance_id=agent_instance_id,
            task_type=task_type,
            task_description=task_description,
            outcome=outcome,
            session_id=session_id,
            outcome_details=outcome_details,
            lessons_learned=lessons_learned,
            importance_score=importance_score,
            metadata=metadata,
        )
        return episode_control_tools.reply(recorded.as_result())

    @server.tool()
    async def search_episodes(
        query: Annotated[str, Field(description="What you are looking for, in plain words.")],
        project_id: ProjectId = None,
        limit: Annotated[int, Field(ge=1, le=100, strict=True)] = 5,
        outcome: OutcomeArg | None = None,
        task_type: str | None = None,
        agent_instance_id: Annotated[
            str | None, Field(description="Only episodes of this agent instance.", json_schema_extra=_UUID)
        ] = None,
        since: Annotated[
            str | None, Field(description="Only episodes recorded at or after this ISO 8601 date-time.")
        ] = None,
    ) -> SearchEpisodesResult:
        """Find past episodes relevant to a task, best first, each with its relevance score. Use it at
        the start of a task to reuse what earlier sessions learned."""
        hits = await rt.episodic.search(project(project_id), query, limit, outcome, task_type, agent_instance_id, since)
        return SearchEpisodesResult(
            episodes=[
                EpisodeHit(
                    episode_id=str(h.episode_id),
                    score=h.score,
                    task_type=h.task_type,
                    task_description=h.task_description,
                    outcome=h.outcome.value,
                    outcome_details=h.outcome_details,
                    lessons_learned=h.lessons_learned,
                    importance_score=h.importance_score,
                    agent_instance_id=str(h.agent_instance_id),
                    session_id=h.session_id,
                    created_at=iso(h.created_at),
                    context_summary=h.context_summary,
                )
                for h in hits
            ]
        )

    episode_control_tools.register(server, project)


__all__ = ["register_tools"]
