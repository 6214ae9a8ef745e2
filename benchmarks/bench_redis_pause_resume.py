"""Pause/resume with working memory in Redis: mcp-memory's way against the seed's per-key way.

Everything runs in this process against the same Redis (and, for the durable checkpoints, the same SQLite
file), with values of about 100 bytes. Three things are timed per size:

- ``store``: the Redis working store's own calls, ``snapshot`` (what pause reads) and ``restore`` (what resume
  writes): one Lua script each, one round trip whatever the number of keys.
- ``lifecycle``: the whole ``pause`` / ``resume`` calls, which also write the checkpoint to (or read it from)
  the durable store, SQLite here at its default FULL durability (an fsync per pause).
- ``seed``: the seed module's algorithm over the same WorkingMemory service on the same Redis: list the keys,
  get them one by one, store the checkpoint as one more key; resume deletes and re-sets every key one by one.

    python benchmarks/bench_redis_pause_resume.py [--redis-url redis://127.0.0.1:6379/0 | --private]
        [--sizes 10,100,1000,10000] [--rounds 50] [--seed-rounds 3] [--synchronous FULL|NORMAL]

The Redis URL defaults to ``$MCP_MEMORY_TEST_REDIS_URL`` or 127.0.0.1:6379; ``--private`` starts a
``redis-server`` of its own (no persistence) on a free port and stops it at the end. Keys are written under a
unique prefix and deleted at the end (nothing else on the server is touched). Prints p50/p99 in ms and the ratio
seed p50 / ours p50.

After each size's set-up (sessions spawned, one warm-up pause and resume) the benchmark calls ``gc.freeze()``,
as ``mcp-memory serve`` does after start-up: the objects alive by then leave the collector's scans, so a timed
call is not charged for a full collection walking the set-up's objects.
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import anyio
import redis

from mcp_memory import MemoryRuntime, Scope, Settings
from mcp_memory.stores.redis.store import RedisWorkingStore

sys.path.insert(0, str(Path(__file__).parent))
from bench_pause_resume import SeedWay, pct, timed


def row(n: int, op: str, ours: list[float], base: list[float] | None) -> str:
    text = f"| {n} | {op} | {pct(ours, 0.5):.2f} | {pct(ours, 0.99):.2f} |"
    if base is None:
        return text + " | | |"
    ratio = statistics.median(base) / statistics.median(ours)
    return text + f" {pct(base, 0.5):.2f} | {pct(base, 0.99):.2f} | {ratio:.1f}x |"


async def run(url: str, sizes: list[int], rounds: int, seed_rounds: int, synchronous: str) -> None:
    prefix = f"mcpmem-bench-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
            redis_url=url,
            redis_key_prefix=prefix,
            max_value_bytes=64 * 1024 * 1024,  # the seed stores a whole checkpoint as one value
            max_keys_per_session=20_000,
            sqlite_synchronous=synchronous,
        )
        try:
            async with MemoryRuntime(settings) as rt:
                store = rt.working_store
                assert isinstance(store, RedisWorkingStore)
                info = await store.ping()
                print(f"Redis {info.get('version')} ({info.get('mode')}) at {info.get('url')}; SQLite {synchronous}")
                seed = SeedWay(rt)
                limits = rt.working.limits
                project, agent = uuid.uuid4(), uuid.uuid4()
                print("| keys | op | ours p50 | ours p99 | seed p50 | seed p99 | ratio |")
                print("|---:|---|---:|---:|---:|---:|---:|")
                for n in sizes:
                    state = {f"key-{i:05d}": "v" * 90 for i in range(n)}  # ~100 bytes serialised per value
                    ours_sid, seed_sid = f"ours-{n}", f"seed-{n}"
                    await rt.lifecycle.spawn(project, agent, ours_sid, initial_state=state)
                    await rt.lifecycle.spawn(project, agent, seed_sid, initial_state=state)
                    ours_scope, seed_scope = Scope(project, agent, ours_sid), Scope(project, agent, seed_sid)
                    snap = await store.snapshot(ours_scope, rt.clock())
                    await rt.lifecycle.pause(project, agent, ours_sid)  # warm-up (connections, caches)
                    await rt.lifecycle.resume(project, agent, ours_sid)
                    gc.freeze()  # as `mcp-memory serve` does after start-up

                    store_pause = await timed(rounds, lambda sc=ours_scope: store.snapshot(sc, rt.clock()))
                    store_resume = await timed(
                        rounds, lambda sc=ours_scope, it=snap: store.restore(sc, it, True, rt.clock(), limits)
                    )
                    life_pause = await timed(rounds, lambda s=ours_sid: rt.lifecycle.pause(project, agent, s))
                    life_resume = await timed(rounds, lambda s=ours_sid: rt.lifecycle.resume(project, agent, s))
                    r = max(1, seed_rounds if n >= 1000 else rounds)
                    ids = iter(range(10**6))
                    seed_pause = await timed(r, lambda sc=seed_scope, it=ids: seed.pause(sc, f"c{next(it)}"))
                    seed_resume = await timed(r, lambda sc=seed_scope: seed.resume(sc, "c0"))
                    print(row(n, "pause: store snapshot", store_pause, seed_pause))
                    print(row(n, "pause: lifecycle (+ SQLite checkpoint)", life_pause, seed_pause))
                    print(row(n, "resume: store restore", store_resume, seed_resume))
                    print(row(n, "resume: lifecycle (+ SQLite read)", life_resume, seed_resume))
        finally:
            client: Any = redis.Redis.from_url(url)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for i in range(0, len(keys), 500):
                client.delete(*keys[i : i + 500])
            client.close()
    print("times in ms; ratio = seed p50 / ours p50 (higher is better for mcp-memory)")


@contextmanager
def private_redis() -> Iterator[str]:
    """A throw-away ``redis-server`` on a free loopback port, without persistence."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = subprocess.Popen([*args, "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            for _ in range(200):
                try:
                    if redis.Redis.from_url(url).ping():
                        break
                except redis.ConnectionError:
                    time.sleep(0.02)
            yield url
        finally:
            process.terminate()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--redis-url", default=os.environ.get("MCP_MEMORY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--private", action="store_true", help="start a redis-server of its own for the run")
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed-rounds", type=int, default=3, help="rounds of the slow baseline at >= 1000 keys")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="SQLite durability")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with private_redis() if args.private else nullcontext(args.redis_url) as url:
        anyio.run(run, url, sizes, args.rounds, args.seed_rounds, args.synchronous)


if __name__ == "__main__":
    main()
