"""The episode a terminate records for its session: drafted (and so validated) from the call's arguments before
anything is written, then completed from the session's working memory as the seal holds it: a summary of the state
and the list of its keys, under a metadata key reserved to terminate (:data:`STATE_KEYS`, which an import recognises:
:mod:`.import_checks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp_memory.errors import InvalidArgument
from mcp_memory.models import Episode, Item, Outcome, Scope
from mcp_memory.services.episodic import EpisodicMemory
from mcp_memory.services.validation import MAX_TEXT, check_text
from mcp_memory.summary import counted, summarize_state

DEFAULT_TERMINATE_TASK_TYPE = "session_completion"
"""The task_type of the episode terminate records when the caller names none."""
STATE_KEYS = "state_keys"
"""The key of terminate's episode metadata that lists the consolidated working-memory keys (reserved to it)."""
STATE_KEYS_LISTED = 200
"""How many of those keys (the first in key order) the list holds."""


def draft_episode(
    episodic: EpisodicMemory,
    scope: Scope,
    task_type: str,
    task_description: str | None,
    outcome: Outcome,
    lessons_learned: Sequence[str] | None,
    metadata: dict[str, Any],
) -> Episode:
    """terminate's episode before the session's state is read: every field the caller gave validated
    (``invalid_argument``), so that a bad one is refused before anything is sealed or written."""
    if STATE_KEYS in metadata:
        # The episode's metadata lists the consolidated keys under this name: refused rather than overwritten.
        raise InvalidArgument(
            f"metadata must not have the key '{STATE_KEYS}': terminate records the session's working-memory "
            "keys under it in the episode's metadata; name yours otherwise"
        )
    description = None if task_description is None else check_text(task_description, "task_description", MAX_TEXT)
    return episodic.build(
        scope.project_id,
        scope.agent_instance_id,
        task_type,
        description or f"Session {scope.session_id} completed",
        outcome,
        session_id=scope.session_id,
        lessons_learned=lessons_learned,
        importance_score=0.6,
        metadata=metadata,
    )


def consolidated(draft: Episode, outcome: Outcome, items: Mapping[str, Item], metadata: dict[str, Any]) -> Episode:
    """The draft completed from the session's working memory (``items``, as sealed): its details, a summary of the
    state and the caller's ``metadata`` with the state's keys added under :data:`STATE_KEYS`."""
    return draft.model_copy(
        update={
            "outcome_details": f"Session terminated ({outcome.value}) with "
            f"{counted(len(items), 'working-memory item')}",
            "context_summary": summarize_state(items),
            "metadata": {**metadata, STATE_KEYS: sorted(items)[:STATE_KEYS_LISTED]},
        }
    )


__all__ = ["DEFAULT_TERMINATE_TASK_TYPE", "STATE_KEYS", "STATE_KEYS_LISTED", "consolidated", "draft_episode"]
