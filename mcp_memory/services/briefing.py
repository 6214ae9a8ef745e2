"""A briefing for an agent that starts (or restarts) work: what it left behind and what it learned before.

Built for the ``resume_briefing`` prompt and the ``memory_prompt`` tool (:mod:`mcp_memory.server.prompts`), which
differ only in how they hand it over. The briefing is compact Markdown a model reads in one go:

1. a heading with the task;
2. the session (when one is named): its status, times, and a summary of its working memory
   (:func:`mcp_memory.summary.summarize_state`: it withholds secret-looking values);
3. its newest checkpoints (id, time, label, key count);
4. the episodes most relevant to the task, the agent's own first, each with its lessons learned
   (without a task: the project's most recent episodes);
5. next steps: which tool to call to carry on.

Everything stays within a token budget, estimated as UTF-8 bytes / 4 (a common rule of thumb for English text
and JSON; a briefing that overshoots a real tokenizer by a little is harmless, one that is cut mid-sentence is
not). Whole items are left out, lowest priority first, and the briefing says what was left out and how to get
it. Priority: the session and its state, the newest checkpoint, the best episode, the other checkpoints, the
other episodes, the next steps. The text keeps the reading order above whatever was cut.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from mcp_memory.errors import InvalidArgument
from mcp_memory.models import (
    CheckpointInfo,
    Episode,
    Scope,
    SessionInfo,
    SessionStatus,
    parse_uuid,
    validate_identifier,
)
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.services.validation import MAX_QUERY, check_text
from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.summary import clip, counted, summarize_state

DEFAULT_TOKEN_BUDGET = 1500
MIN_TOKEN_BUDGET = 100
"""Below this not even the heading and the session's status line fit."""
MAX_TOKEN_BUDGET = 20_000
BYTES_PER_TOKEN = 4
CHECKPOINTS_SHOWN = 5
EPISODES_SHOWN = 5
OWN_EPISODES_FIRST = 2
"""How many of the agent's own relevant episodes lead the list (its earlier attempts at the same kind of task)."""
STATE_SHARE = 0.5
"""The working-memory summary may take at most this share of the budget, so checkpoints and episodes keep room."""
_MIN_STATE_BYTES = 80
_LEFT_OUT_ROOM = 200
"""Bytes kept free for the line that says what was left out (a fifth of a small budget, 100 at least)."""
_TASK_SHOWN = 200
_TASK_TYPE_SHOWN = 60
_LESSON_SHOWN = 400
_DETAILS_SHOWN = 300


def estimate_tokens(text: str) -> int:
    """Tokens of ``text``, estimated from its UTF-8 size."""
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")
"""ASCII digits only: ``str.isdigit`` also takes ``²``, which ``int`` refuses."""


def parse_token_budget(raw: object) -> int:
    """The token budget from a prompt argument (a string, as MCP prompt arguments are) or a tool argument.

    None is the default; anything but a whole number in range is ``invalid_argument``."""
    if raw is None or raw == "":
        return DEFAULT_TOKEN_BUDGET
    if isinstance(raw, bool):
        raise InvalidArgument("token_budget must be a whole number")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _WHOLE_NUMBER.fullmatch(raw.strip()):
        value = int(raw.strip())
    else:
        raise InvalidArgument("token_budget must be a whole number of tokens, e.g. 1500")
    if not MIN_TOKEN_BUDGET <= value <= MAX_TOKEN_BUDGET:
        raise InvalidArgument(f"token_budget must be from {MIN_TOKEN_BUDGET} to {MAX_TOKEN_BUDGET}")
    return value


@dataclass(frozen=True, slots=True)
class BriefingRequest:
    """What to brief on. ``session`` needs the agent; the agent alone puts its own episodes first."""

    project_id: UUID
    task: str | None = None
    agent_instance_id: UUID | None = None
    session_id: str | None = None
    token_budget: int = DEFAULT_TOKEN_BUDGET
    list_sessions_available: bool = False
    """Whether the server offers ``list_sessions`` (then a briefing without a session points to it)."""

    @classmethod
    def parse(
        cls,
        project_id: UUID,
        task: object,
        agent_instance_id: object,
        session_id: object,
        token_budget: object,
        list_sessions_available: bool = False,
    ) -> BriefingRequest:
        """Validate raw arguments (``invalid_argument`` for anything wrong; nothing is read before)."""
        text = check_text(task, "task", MAX_QUERY, required=False).strip() or None
        if session_id is not None and agent_instance_id is None:
            raise InvalidArgument("agent_instance_id is required with session_id (a session belongs to one agent)")
        agent = None if agent_instance_id is None else parse_uuid(agent_instance_id, "agent_instance_id")
        session = None if session_id is None else validate_identifier(session_id, "session_id")
        return cls(project_id, text, agent, session, parse_token_budget(token_budget), list_sessions_available)


@dataclass(slots=True)
class Briefing:
    """The briefing text and what it is made of (for a tool's structured result)."""

    text: str
    token_budget: int
    tokens: int
    session_status: str | None
    checkpoint_ids: list[str]
    episode_ids: list[str]
    left_out: list[str] = field(default_factory=list)
    """What did not fit, e.g. ``["3 episodes", "2 checkpoints"]``."""


_NAMED_WHOLE = frozenset({"session status", "working-memory summary", "next steps"})
"""Pieces that are one thing each, named in the left-out note without a number."""


def _count(n: int, kind: str) -> str:
    """``2 episodes``, ``1 checkpoint``; the status line, the state summary and the next steps are one thing each,
    named without a number."""
    if kind in _NAMED_WHOLE:
        return kind
    return f"{n} {kind if n != 1 else kind.removesuffix('s')}"


def _when(dt: datetime) -> str:
    """Minutes are enough for a model to tell old from new; seconds would cost tokens for nothing."""
    return dt.strftime("%Y-%m-%d %H:%MZ")


@dataclass(slots=True)
class _Item:
    """One piece of the briefing that is kept or left out whole."""

    section: int
    """Where it goes in the text (sections in reading order)."""
    text: str
    kind: str = ""
    """Counted in the left-out note under this name ("" for pieces not worth naming)."""
    ident: str = ""


_SESSION, _STATE, _CHECKPOINTS, _EPISODES, _NEXT = range(5)


class _Sections:
    """Headings are written only above a section that kept at least one item."""

    def __init__(self, title: str, headings: dict[int, str]) -> None:
        self.title = title
        self.headings = headings

    def render(self, items: Sequence[_Item], left_out: str) -> str:
        parts = [self.title]
        for section in sorted({i.section for i in items}):
            if section in self.headings:
                parts.append(self.headings[section])
            parts.extend(i.text for i in items if i.section == section)
        if left_out:
            parts.append(left_out)
        return "\n".join(parts)


def _session_line(info: SessionInfo) -> str:
    line = f"Status **{info.status.value}**; started {_when(info.created_at)}, last activity {_when(info.updated_at)}."
    if info.status == SessionStatus.TERMINATED:
        episode = f" Its episode: `{info.episode_id}`." if info.episode_id else ""
        line += f" Terminated for good (checkpoints stay readable).{episode}"
    return line


def _one_line(text: str, max_bytes: int) -> str:
    """Stored free text on one line: a newline in a label or a task type could otherwise start a section of its own
    (``## Next steps`` written by whoever stored it)."""
    return clip(" ".join(text.split()), max_bytes)


def _checkpoint_line(cp: CheckpointInfo) -> str:
    label = f' "{_one_line(cp.label, 80)}"' if cp.label else ""
    return f"- `{cp.checkpoint_id}` {_when(cp.created_at)}{label}, {counted(cp.keys_count, 'key')}"


def _episode_text(ep: Episode, own: bool) -> str:
    facts = [ep.outcome.value, _one_line(ep.task_type, _TASK_TYPE_SHOWN), _when(ep.created_at)]
    if own:
        facts.append("yours")
    lines = [
        f"### {_one_line(ep.task_description, _TASK_SHOWN)}",
        f"{', '.join(facts)}; `{ep.episode_id}`",
    ]
    if ep.lessons_learned:
        lines.append("Lessons:")
        lines.extend(f"- {_one_line(lesson, _LESSON_SHOWN)}" for lesson in ep.lessons_learned)
    elif ep.outcome_details:
        lines.append(_one_line(ep.outcome_details, _DETAILS_SHOWN))
    return "\n".join(lines)


def _next_steps(req: BriefingRequest, info: SessionInfo | None, newest: str | None) -> str:
    steps: list[str] = []
    sid = req.session_id
    if info is None:
        if req.list_sessions_available:
            steps.append("- `list_sessions` finds your earlier sessions; pass one as session_id for its state.")
        steps.append("- `spawn` a session to start; `pause` before stopping.")
    elif info.status == SessionStatus.PAUSED:
        target = f"checkpoint `{newest}`" if newest else "its newest checkpoint"
        steps.append(f'- `resume` session_id "{sid}" restores {target}, then carry on with `memory_get`/`memory_set`.')
    elif info.status == SessionStatus.RUNNING:
        steps.append(f'- Session "{sid}" is live: read it with `memory_get`/`memory_list`; `pause` before stopping.')
    else:
        steps.append("- That session is over: `spawn` a new session (with a new session_id) to work on.")
    steps.append("- `search_episodes` for more; `terminate` with lessons_learned when done.")
    return "## Next steps\n" + "\n".join(steps)


async def _episodes(rt: MemoryRuntime, req: BriefingRequest) -> list[tuple[Episode, bool]]:
    """The episodes to show, best first, each with whether it is the agent's own."""
    if req.task is None:
        mine: list[Episode] = []
        if req.agent_instance_id is not None:  # the agent's own newest first, as with a task
            own_filter = EpisodeFilter(agent_instance_id=req.agent_instance_id)
            mine = await rt.store.recent_episodes([req.project_id], OWN_EPISODES_FIRST, own_filter)
        recent = mine + await rt.store.recent_episodes([req.project_id], EPISODES_SHOWN)
        return _first_of_each(recent, req.agent_instance_id)
    # One embedding for both searches: a remote provider would otherwise be asked twice for the same text.
    vectors = await rt.episodic.embed([req.task])
    vector = vectors[0] if vectors else None
    model = rt.episodic.embedding_model

    async def search(flt: EpisodeFilter, limit: int) -> list[Episode]:
        hits = await rt.store.search_episodes(
            req.project_id, req.task or "", vector, flt, limit, rt.clock(), embedding_model=model
        )
        return list(hits)

    own: list[Episode] = []
    if req.agent_instance_id is not None:
        own = await search(EpisodeFilter(agent_instance_id=req.agent_instance_id), OWN_EPISODES_FIRST)
    return _first_of_each(own + await search(EpisodeFilter(), EPISODES_SHOWN), req.agent_instance_id)


def _first_of_each(found: list[Episode], agent: UUID | None) -> list[tuple[Episode, bool]]:
    """``found`` without repeats, at most :data:`EPISODES_SHOWN`, each with whether it is ``agent``'s own."""
    seen: set[UUID] = set()
    result: list[tuple[Episode, bool]] = []
    for ep in found:
        if ep.episode_id not in seen:
            seen.add(ep.episode_id)
            result.append((ep, ep.agent_instance_id == agent))
    return result[:EPISODES_SHOWN]


async def build_briefing(rt: MemoryRuntime, req: BriefingRequest) -> Briefing:
    """The briefing for ``req`` (the caller has checked that the request may see ``req.project_id``).

    A named session that does not exist is ``not_found``: a briefing that silently skipped it would let the
    model believe it had no state."""
    budget_bytes = req.token_budget * BYTES_PER_TOKEN
    note_room = min(_LEFT_OUT_ROOM, max(100, budget_bytes // 5))
    info: SessionInfo | None = None
    checkpoints: list[CheckpointInfo] = []
    scope: Scope | None = None
    if req.session_id is not None and req.agent_instance_id is not None:
        scope = Scope(req.project_id, req.agent_instance_id, req.session_id)
        info = await rt.lifecycle.session(scope)
        checkpoints = await rt.store.list_checkpoints(scope, CHECKPOINTS_SHOWN, None)
    episodes = await _episodes(rt, req)

    title = f"# Briefing: {clip(' '.join(req.task.split()), _TASK_SHOWN)}" if req.task else "# Briefing"
    headings = {
        _SESSION: f'## Session "{req.session_id}"',
        _STATE: "### Working memory",
        _CHECKPOINTS: "## Newest checkpoints",
        _EPISODES: "## Relevant past episodes" if req.task else "## Recent episodes",
    }
    sections = _Sections(title, headings)

    # In priority order (the text is rendered in section order).
    ranked: list[_Item] = []
    if info is not None:
        ranked.append(_Item(_SESSION, _session_line(info), "session status"))
    cp_items = [_Item(_CHECKPOINTS, _checkpoint_line(cp), "checkpoints", cp.checkpoint_id) for cp in checkpoints]
    ep_items = [_Item(_EPISODES, _episode_text(ep, own), "episodes", str(ep.episode_id)) for ep, own in episodes]
    ranked += cp_items[:1] + ep_items[:1] + cp_items[1:] + ep_items[1:]
    if not episodes:
        ranked.append(_Item(_EPISODES, "None found in this project." if req.task else "None yet in this project."))
    newest = checkpoints[0].checkpoint_id if checkpoints else None
    ranked.append(_Item(_NEXT, _next_steps(req, info, newest), "next steps"))

    kept: list[_Item] = []
    if info is not None and scope is not None and info.status != SessionStatus.TERMINATED:
        # The state summary is sized to what is left after the heading and status line, not cut afterwards.
        head = sections.render(ranked[:1], "")
        room = int(min(budget_bytes * STATE_SHARE, budget_bytes - len(head.encode()) - note_room - 40))
        if room >= _MIN_STATE_BYTES:
            items = await rt.working.store.snapshot(scope, rt.clock())
            ranked.insert(1, _Item(_STATE, summarize_state(items, room), "working-memory summary"))
        else:
            ranked.insert(1, _Item(_STATE, "", "working-memory summary"))

    dropped: list[_Item] = []
    for item in ranked:
        if dropped or not item.text:
            dropped.append(item)  # strictly by priority: nothing after a left-out item is kept
            continue
        candidate = sorted([*kept, item], key=lambda i: i.section)
        if len(sections.render(candidate, "").encode()) + 1 + note_room <= budget_bytes:
            kept = candidate
        else:
            dropped.append(item)

    counts: dict[str, int] = {}
    for item in dropped:
        if item.kind:
            counts[item.kind] = counts.get(item.kind, 0) + 1
    left_out = [_count(n, kind) for kind, n in counts.items()]
    note = ""
    if left_out:
        note = clip(f"_Left out (token_budget {req.token_budget}): {', '.join(left_out)}; ask with more._", note_room)
    text = sections.render(kept, note)
    return Briefing(
        text=text,
        token_budget=req.token_budget,
        tokens=estimate_tokens(text),
        session_status=info.status.value if info else None,
        checkpoint_ids=[i.ident for i in kept if i.kind == "checkpoints"],
        episode_ids=[i.ident for i in kept if i.kind == "episodes"],
        left_out=left_out,
    )


__all__ = [
    "DEFAULT_TOKEN_BUDGET",
    "MAX_TOKEN_BUDGET",
    "MIN_TOKEN_BUDGET",
    "Briefing",
    "BriefingRequest",
    "build_briefing",
    "estimate_tokens",
    "parse_token_budget",
]
