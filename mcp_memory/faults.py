"""Named fault points on the multi-step paths whose crash safety is tested (a seam for tests, inert otherwise).

A path calls :func:`reached` between its steps. Tests either register a hook (:func:`on_fault`: raise, or block as
a server that stopped would) or start a server with ``MCP_MEMORY_FAULT_EXIT_AT=<point>`` in its environment, which
makes the process exit at once at that point (``os._exit``: no cleanup, no ``finally``, as under ``kill -9``).

Points: ``spawn.begun`` (the durable session exists, incomplete), ``spawn.staged`` (Redis holds the staged initial
state), ``spawn.completed`` (the durable session is complete), ``spawn.committed`` (Redis has committed it);
``spawn.completing`` (a SQL store's ``complete_spawn`` is called, and does not yet hold the store: its write lock, a
connection), ``spawn.lapsed_dropped`` (a spawn taking over a lapsed one has dropped that one's staged state, and not
yet taken its durable row);
``import.validated`` (an import has read and checked the whole file, nothing written yet), ``import.working_staged``
(an import has staged one more session's working memory in Redis), ``import.durable_committed`` (an import's durable
transaction has committed; Redis's part is staged, not switched), ``import.switched`` (Redis's part is switched in,
its terminated sessions closed; the import not answered); ``delete.working_erased`` (``delete_session`` has erased
the session's Redis keys, the durable record is still there), ``delete.durable_deleted`` (``delete_session`` has
deleted the durable record and not yet erased Redis a second time: a hook raising there stands for that erase
failing), ``delete.absent`` and ``delete.leftover_checked`` (``delete_session`` found no durable session, before
asking Redis what it holds of it; then found none durably again, before erasing that leftover),
``delete.waiting`` (``delete_session`` found the session sealed by another deletion and waits for its answer; reached
at each look), ``delete.renewing``
(``delete_session`` is about to renew its seal, every third of the lease while it runs), ``recover.read`` (a call that
found its session missing in Redis has read the durable record to re-open it from, and not yet written Redis),
``recover.written`` (that call has re-opened the session in Redis and not yet answered);
``erase.rows_deleted`` (a SQL store's ``delete_session`` or ``erase`` has deleted the sessions' working memory rows,
checkpoints and events in its transaction, not yet the sessions), ``erase.episodes_deleted`` (a SQL store's
``delete_session`` or ``erase`` has deleted the episodes of its scope in its transaction, and not yet dropped what it
keeps for a project left without episodes); ``terminate.sealed`` (terminate holds the session's seals, nothing read
or recorded yet), ``terminate.recorded`` (terminate has recorded the session terminated, working memory is not yet
marked terminated nor cleared), ``terminate.closed`` (terminate, or a call finishing its job, has marked working
memory terminated and cleared it; the hooks have not run, the record is not yet finished), ``terminate.completing``
(that call has let go of the session lock and not yet read the record again before its hooks); ``terminate.claiming`` (a
retried terminate or the terminate sweep has read a record unfinished past its lease, and not yet claimed its job);
``resume.read`` (a two-step resume has read its checkpoint from the durable store, working memory not yet restored),
``resume.restored`` (a two-step resume has restored its checkpoint into working memory, not yet recorded it);
``pause.snapshotted`` (a two-step pause has its snapshot of working memory, not yet recorded it); ``record.merging``
(``record_episode`` with ``duplicate_action = "merge"`` has read the older episode it merges into, nothing written
yet); ``listing.read``
(``resources/list`` is about to read recent checkpoints and episodes), ``completion.read`` (``completion/complete``
is about to read stored identifiers): a hook that raises at the last two stands for a store failing under a request
that is not a tool call; ``migrate.locked`` (``mcp-memory migrate`` on Postgres holds the migration lock in its
transaction, nothing read or changed yet); ``sweep.listed`` (the sweep of spawns cut off by a crash has listed a
batch of lapsed spawns, nothing dropped yet), ``sweep.staged_dropped`` (it has dropped their staged state in Redis,
their durable rows are still there).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

FaultHook = Callable[[str], Awaitable[None]]
EXIT_ENV = "MCP_MEMORY_FAULT_EXIT_AT"
POINTS = ("spawn.begun", "spawn.staged", "spawn.completed", "spawn.committed")
"""The spawn path's points, in order."""
IMPORT_POINTS = ("import.validated", "import.working_staged", "import.durable_committed", "import.switched")
"""The import path's points, in order (the last three with working memory in Redis)."""
DELETE_POINTS = (
    "delete.working_erased",
    "delete.durable_deleted",
    "delete.absent",
    "delete.leftover_checked",
    "delete.waiting",
    "delete.renewing",
    "recover.read",
    "recover.written",
    "terminate.sealed",
    "resume.read",
    "resume.restored",
    "pause.snapshotted",
)
"""A deletion racing a re-open of the session from the durable store or another deletion, a terminate racing a
deletion or a resume, a pause and a resume of two servers racing, or a deletion and a new spawn of the session
racing a pause or resume (working memory in Redis)."""
ERASE_POINTS = ("erase.rows_deleted", "erase.episodes_deleted")
"""A SQL store's ``delete_session`` or ``erase`` inside its transaction: between deleting the sessions' rows and the
sessions themselves; after deleting the episodes."""

EPISODE_POINTS = ("record.merging",)
"""A merge into an older episode racing a forget of that episode."""
READ_POINTS = ("listing.read", "completion.read")
"""Requests outside tool calls that read the durable store (resources/list, completion/complete)."""
MIGRATE_POINTS = ("migrate.locked",)
"""A Postgres migration inside its transaction."""
SWEEP_POINTS = ("sweep.listed", "sweep.staged_dropped")
"""The spawn sweep between its steps: a spawn retried there, or the sweep stopping there."""
TERMINATE_POINTS = ("terminate.recorded", "terminate.closed", "terminate.completing")
"""A terminate between its record and its record marked finished: a server dying there leaves the job to a retry
or the terminate sweep (services/terminate_lease.py)."""
LEASE_POINTS = ("spawn.lapsed_dropped", "spawn.completing")
"""A spawn that reaches the durable store past its lease (held at ``spawn.completing``, as by a busy store) while a
takeover or the sweep removes it."""

_hooks: list[FaultHook] = []


async def reached(point: str) -> None:
    """A path has reached ``point``: exit if asked to by the environment, else run the registered hooks."""
    if os.environ.get(EXIT_ENV) == point:
        sys.stderr.write(f"mcp-memory: exiting at fault point {point} ({EXIT_ENV})\n")
        sys.stderr.flush()
        os._exit(137)
    for hook in list(_hooks):
        await hook(point)


@contextmanager
def on_fault(hook: FaultHook) -> Iterator[None]:
    """Run ``hook`` at every fault point reached while the block runs (in this process)."""
    _hooks.append(hook)
    try:
        yield
    finally:
        _hooks.remove(hook)


__all__ = [
    "DELETE_POINTS",
    "EPISODE_POINTS",
    "ERASE_POINTS",
    "EXIT_ENV",
    "IMPORT_POINTS",
    "LEASE_POINTS",
    "MIGRATE_POINTS",
    "POINTS",
    "READ_POINTS",
    "SWEEP_POINTS",
    "TERMINATE_POINTS",
    "FaultHook",
    "on_fault",
    "reached",
]
