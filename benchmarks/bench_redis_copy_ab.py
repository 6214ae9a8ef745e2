"""Pause and resume with and without the pause's Redis copy (``stores/redis/copies.py``), interleaved in one process.

Per size, one session of ~100-byte values; each round pauses and resumes it twice: once with a store that copies
every state (``copy_min_keys`` 1: the resume takes the copy) and once with one that never copies (the resume reads
the checkpoint's text and restores it). Alternating the two in one process cancels most of a shared machine's
drift, which two separate runs do not. Prints the p50 of the whole ``pause`` and ``resume`` calls, in ms.

    python benchmarks/bench_redis_copy_ab.py [--sizes 10,100,250,1000] [--rounds 150] [--durable sqlite|postgres]
        [--redis-url redis://127.0.0.1:6379/0]

SQLite records are a FULL-durability file in a temp dir; Postgres records a fresh database in a pgserver
(``pg_common.py``). Keys go under a unique prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import uuid
from pathlib import Path

import anyio

from mcp_memory import MemoryRuntime, Settings
from mcp_memory.stores.redis.store import RedisWorkingStore

sys.path.insert(0, str(Path(__file__).parent))
from bench_redis_pause_resume import durable_url

NEVER = 10**9
"""A ``copy_min_keys`` no state reaches: no copy."""


async def run(redis_url: str, sizes: list[int], rounds: int, durable: str) -> None:
    prefix = f"mcpmem-copy-ab-{uuid.uuid4().hex[:12]}"
    async with durable_url(durable, "FULL", None) as (database_url, described):
        settings = Settings(
            database_url=database_url, redis_url=redis_url, redis_key_prefix=prefix, max_keys_per_session=20_000
        )
        async with MemoryRuntime(settings) as rt:
            store = rt.working_store
            assert isinstance(store, RedisWorkingStore)
            print(f"{described}; p50 ms of the whole calls")
            print("| keys | pause without copy | pause with copy | resume from the text | resume taking the copy |")
            print("|---:|---:|---:|---:|---:|")
            project, agent = uuid.uuid4(), uuid.uuid4()
            try:
                for n in sizes:
                    sid = f"s{n}"
                    state = {f"key-{i:05d}": "v" * 90 for i in range(n)}
                    await rt.lifecycle.spawn(project, agent, sid, initial_state=state)
                    await rt.lifecycle.pause(project, agent, sid)  # warm-up
                    await rt.lifecycle.resume(project, agent, sid)
                    gc.freeze()
                    times: dict[str, list[float]] = {k: [] for k in ("pn", "pc", "rn", "rc")}
                    for _ in range(rounds):
                        for way, min_keys in (("n", NEVER), ("c", 1)):
                            store.copy_min_keys = min_keys
                            started = time.perf_counter()
                            await rt.lifecycle.pause(project, agent, sid)
                            times[f"p{way}"].append(time.perf_counter() - started)
                            started = time.perf_counter()
                            await rt.lifecycle.resume(project, agent, sid)
                            times[f"r{way}"].append(time.perf_counter() - started)
                    p50 = {k: sorted(v)[len(v) // 2] * 1000 for k, v in times.items()}
                    print(f"| {n} | {p50['pn']:.2f} | {p50['pc']:.2f} | {p50['rn']:.2f} | {p50['rc']:.2f} |")
            finally:
                keys = [k async for k in store.client.scan_iter(match=f"{prefix}:*", count=1000)]
                for i in range(0, len(keys), 500):
                    await store.client.delete(*keys[i : i + 500])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--redis-url", default=os.environ.get("MCP_MEMORY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--sizes", default="10,100,250,1000")
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--durable", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    anyio.run(run, args.redis_url, sizes, args.rounds, args.durable)


if __name__ == "__main__":
    main()
