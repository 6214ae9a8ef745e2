"""A pause's durable write on SQLite with the WAL checkpointed every N write transactions, for two N, alternating
block by block in one process on one file.

Our connections do not checkpoint inside a commit; a thread of the store runs a PASSIVE checkpoint after every N
write transactions (``stores/sqlite/connection.py``). It copies the WAL's pages into the database file and syncs
that file, on the same disk as the next pause's commit and its fsync: the fewer checkpoints, the more pages each
one copies and the longer a commit that meets one waits. Every round records one checkpoint of K keys (~100-byte
values, as the pause benchmarks) through ``SqliteStore.record_pause`` at the retention bound (the newest 100
checkpoints, 1,000 events: each pause also deletes one), SQLite at FULL durability.

    python benchmarks/bench_sqlite_wal_checkpoint.py [--every 8,32] [--keys 1000] [--rounds 1600] [--block 80]

Prints p50 / p99 in ms of ``record_pause`` and of its ``COMMIT`` alone for each N, past the bound.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import anyio
from bench_pause_resume import pct
from bench_sqlite_prune import packed_state, pause_record

import mcp_memory.stores.sqlite.connection as sqlite_connection
from mcp_memory import MemoryRuntime, Scope, Settings
from mcp_memory.stores.records import Retention
from mcp_memory.stores.sqlite.store import SqliteStore

_T = TypeVar("_T")

COMMITS: list[float] = []
"""The duration of each write transaction's ``COMMIT``, in ms, as the wrapped transaction below notes it."""

_in_transaction = sqlite_connection._in_transaction


def timed_transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """The store's write transaction (``connection._in_transaction``) with its ``COMMIT`` timed."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
        started = time.perf_counter()
        db.execute("COMMIT")
        COMMITS.append((time.perf_counter() - started) * 1000)
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


async def run(cadences: list[int], keys: int, rounds: int, block: int) -> None:
    sqlite_connection._in_transaction = timed_transaction
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp}/wal.db", sqlite_synchronous="FULL")
        async with MemoryRuntime(settings) as rt:
            store = rt.store
            assert isinstance(store, SqliteStore)
            checkpointer = store._checkpointer
            assert checkpointer is not None
            scope = Scope(uuid.uuid4(), uuid.uuid4(), "wal")
            await rt.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)
            state = packed_state(keys)
            retention = Retention(keep_last=100, events_keep_last=1000)
            whole: dict[int, list[float]] = {n: [] for n in cadences}
            commits: dict[int, list[float]] = {n: [] for n in cadences}
            for i in range(rounds):
                every = cadences[(i // block) % len(cadences)]
                checkpointer._every = every  # the cadence of this block
                info, event = pause_record(state)
                COMMITS.clear()
                started = time.perf_counter()
                await store.record_pause(scope, info, state, event, retention)
                elapsed = (time.perf_counter() - started) * 1000
                # Past the bound (every pause prunes), and not the first rounds of a block (the cadence before it
                # may still have a checkpoint running).
                if i >= 110 and i % block >= 8:
                    whole[every].append(elapsed)
                    commits[every].extend(COMMITS)
    sqlite_connection._in_transaction = _in_transaction
    print(f"record_pause of {keys} keys at the retention bound, SQLite FULL, blocks of {block} rounds alternating")
    print("| WAL checkpoint every | rounds | record_pause p50 | p99 | COMMIT p50 | p99 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in cadences:
        w, c = whole[n], commits[n]
        print(f"| {n} | {len(w)} | {pct(w, 0.5):.2f} | {pct(w, 0.99):.2f} | {pct(c, 0.5):.2f} | {pct(c, 0.99):.2f} |")
    print(f"default: every {sqlite_connection.WAL_CHECKPOINT_EVERY}; load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--every", default="8,32", help="the cadences compared, comma-separated")
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1600)
    parser.add_argument("--block", type=int, default=80)
    args = parser.parse_args()
    anyio.run(run, [int(n) for n in args.every.split(",")], args.keys, args.rounds, args.block)


if __name__ == "__main__":
    main()
