"""The contract's checks and error messages, the same for both SQL stores (no SQL here)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mcp_memory.errors import Conflict, NotFound, TooLarge
from mcp_memory.models import Item, Scope, SessionStatus
from mcp_memory.stores.ports import Limits, spawn_first
from mcp_memory.summary import counted

COMMON_TERM_SHARE = 0.05
"""Full text, both stores: a word found in at least this share of the project's episodes does not make an episode
a candidate (it still counts in the score of the candidates that the query's other words find)..."""
COMMON_TERM_MIN_EPISODES = 5000
"""...once the project holds this many episodes (below it, ranking every match costs little)."""


def distinct_words(words: list[str]) -> list[str]:
    """A query's words without repeats (``Run`` repeats ``run``), each as the user wrote it: the store's own
    tokenizer folds case as it did when indexing. Lower-casing in Python first can split a word: ``"İ".lower()`` is
    ``i`` and a combining dot, which no word pattern matches, so ``İstanbul`` became ``i`` and ``stanbul``."""
    first: dict[str, str] = {}
    for word in words:
        first.setdefault(word.lower(), word)
    return list(first.values())


def candidate_pool(limit: int) -> int:
    """How many full-text candidates ``search_episodes`` ranks for ``limit`` results (and SQLite's vector pool)."""
    return max(limit * 10, 50)


def check_fits(items: Mapping[str, Item], now: float, limits: Limits) -> None:
    """A whole new state must fit the key limit; items already expired do not count (they are skipped)."""
    live = sum(1 for it in items.values() if it.expires_at is None or it.expires_at > now)
    if live > limits.max_keys:
        raise keys_exceed(live, limits)


def keys_exceed(count: int, limits: Limits) -> TooLarge:
    """A whole new state (a spawn's, an import's, a clearing restore's) of ``count`` live keys, past the limit."""
    return TooLarge(f"{counted(count, 'key')} exceed the limit of {counted(limits.max_keys, 'key')} per session")


def check_writable(scope: Scope, found: tuple[Any, Any] | None, created_at: datetime | None = None) -> None:
    """The error that says why a session takes no writes, from its ``(status, sealed)`` (None: no session), noting
    ``created_at``, the creation time of that session's record, where the caller read it with them."""
    if found is None:
        raise spawn_first(scope)
    status, sealed = found
    if status == SessionStatus.TERMINATED:
        raise Conflict(f"session '{scope.session_id}' is terminated and accepts no writes").of_session(created_at)
    if sealed:
        raise Conflict(
            f"session '{scope.session_id}' is being terminated and accepts no writes "
            "(if a terminate was interrupted, call terminate again to finish it once its seal lapses)"
        ).of_session(created_at)


def check_terminate(scope: Scope, row: Any, seal_token: str | None) -> bool:
    """``record_terminate``'s look at the session's ``(status, terminate_result, sealed, seal_token)`` row: True if
    it is terminated already (the call is a replay: answer the stored result), False (go on) if ``seal_token`` is
    None or still holds the seal. ``NotFound`` if there is no row; ``Conflict`` if another terminate has taken the
    seal over (this call's snapshot may miss writes acknowledged since: it must record nothing)."""
    if row is None:
        raise NotFound(f"session '{scope.session_id}' does not exist for this agent")
    if row.status == SessionStatus.TERMINATED:
        return True
    if seal_token is not None and not (row.sealed and row.seal_token == seal_token):
        raise Conflict(
            f"terminating session '{scope.session_id}': another terminate took over its seal meanwhile (this "
            "one outlasted its lease); nothing was recorded, retry"
        )
    return False


def terminate_in_progress(scope: Scope, lease_seconds: float) -> Conflict:
    """``seal`` of a session another terminate or deletion holds sealed, its lease not yet run out."""
    return Conflict(
        f"a terminate or deletion of session '{scope.session_id}' is already in progress; retry "
        f"(if it was interrupted, its seal lapses within {counted(lease_seconds, 'second')})"
    )


def keys_full(scope: Scope, limits: Limits) -> TooLarge:
    """``set`` of a new key into a session at its key limit."""
    return TooLarge(
        f"session '{scope.session_id}' holds {counted(limits.max_keys, 'key')}, the limit; "
        "delete some before adding new ones"
    )


def restore_overflows(limits: Limits) -> TooLarge:
    """``restore`` without clearing would leave more keys than the limit (and so restores nothing)."""
    return TooLarge(
        f"restoring without clearing would exceed {counted(limits.max_keys, 'key')} per session; nothing was restored"
    )


def session_exists(scope: Scope, status: Any) -> Conflict:
    """``create_session`` of a session that exists already (in ``status``): what the caller can do next."""
    if status == SessionStatus.TERMINATED:
        # resume would fail too: a terminated session is closed for good (its checkpoints stay readable).
        return Conflict(
            f"session '{scope.session_id}' exists already and is terminated for good; spawn a new session_id "
            "(its checkpoints and episode stay readable)"
        )
    return Conflict(
        f"session '{scope.session_id}' exists already (status {status}); "
        "use resume to continue it, or spawn a new session_id"
    )


def spawn_in_progress(scope: Scope) -> Conflict:
    """A spawn of a session whose earlier spawn has not completed and still holds its lease."""
    return Conflict(
        f"a spawn of session '{scope.session_id}' is already in progress; retry (if it was interrupted, its "
        "lease lapses within spawn_lease_seconds and a retried spawn then takes it over)"
    )


def checkpoint_exists(checkpoint_id: str) -> Conflict:
    """``record_pause`` with a checkpoint id the session has already."""
    return Conflict(
        f"checkpoint '{checkpoint_id}' exists already in this session; nothing was "
        "overwritten (omit checkpoint_id to get a fresh one)"
    )
