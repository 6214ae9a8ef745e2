"""A pause's durable write on SQLite at the retention bound, with the writer connection's ``secure_delete`` FAST (what
the store sets when it connects) against ON (what Debian's SQLite does by default: the pruned checkpoint's overflow
pages zeroed, written and synced again), alternating round by round in one process (the setting changed on the writer
between rounds, outside the timing).

Every round records one checkpoint of N keys (~100-byte values, as the pause benchmarks) through
``SqliteStore.record_pause`` with the default retention (the newest 100 checkpoints, 1,000 events), so past the
first 100 rounds each pause also deletes the oldest checkpoint. SQLite at FULL durability (an fsync per commit).

    python benchmarks/bench_sqlite_prune.py [--keys 1000] [--rounds 400]

Prints p50 / p99 in ms of the rounds past the bound, for each setting, and the ratio of the p50s (ON / FAST).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from itertools import repeat

import anyio
from bench_pause_resume import pct

from mcp_memory import MemoryRuntime, Scope, Settings
from mcp_memory.models import CheckpointInfo, PackedState, pack_state
from mcp_memory.stores.records import EventRecord, Retention
from mcp_memory.stores.sqlite.store import SqliteStore


def packed_state(keys: int) -> PackedState:
    """A state of ``keys`` keys of ~100 bytes each, packed as a pause hands it to the durable store."""
    names = [f"key-{i:05d}" for i in range(keys)]
    return pack_state(names, ['"' + "v" * 90 + '"'] * keys, repeat(None))


def pause_record(state: PackedState) -> tuple[CheckpointInfo, EventRecord]:
    """A new checkpoint of ``state`` (a fresh id, now) and the pause event naming it, as ``record_pause`` takes them."""
    info = CheckpointInfo(
        checkpoint_id=uuid.uuid4().hex,
        created_at=datetime.now(UTC),
        keys_count=state.keys_count,
        bytes=state.bytes,
        content_hash=state.content_hash,
    )
    return info, EventRecord("pause", time.time(), 0.0, "ok", {"checkpoint_id": info.checkpoint_id})


async def run(keys: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp}/prune.db")
        async with MemoryRuntime(settings) as rt:
            store = rt.store
            assert isinstance(store, SqliteStore)
            scope = Scope(uuid.uuid4(), uuid.uuid4(), "prune")
            await rt.lifecycle.spawn(scope.project_id, scope.agent_instance_id, scope.session_id)
            state = packed_state(keys)
            retention = Retention(keep_last=100, events_keep_last=1000)
            times: dict[str, list[float]] = {"ON": [], "FAST": []}
            for i in range(rounds):
                setting = ("ON", "FAST")[i % 2]
                await store._write_direct(lambda db, s=setting: db.execute(f"PRAGMA secure_delete = {s}"))
                info, event = pause_record(state)
                started = time.perf_counter()
                await store.record_pause(scope, info, state, event, retention)
                if i >= 110:  # past the bound (and a few rounds more): every pause prunes
                    times[setting].append((time.perf_counter() - started) * 1000)
    on, fast = times["ON"], times["FAST"]
    print(f"record_pause of {keys} keys at the retention bound, SQLite FULL, {len(on)} rounds each, ms")
    print("| writer's secure_delete | p50 | p99 |\n|---|---:|---:|")
    print(f"| ON | {pct(on, 0.5):.2f} | {pct(on, 0.99):.2f} |")
    print(f"| FAST (the store's) | {pct(fast, 0.5):.2f} | {pct(fast, 0.99):.2f} |")
    print(f"ratio ON / FAST (p50): {pct(on, 0.5) / pct(fast, 0.5):.2f}x; load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    anyio.run(run, args.keys, args.rounds)


if __name__ == "__main__":
    main()
