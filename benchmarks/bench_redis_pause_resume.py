"""Pause/resume with working memory in Redis: mcp-memory's way against the seed's per-key way.

Everything runs in this process against the same Redis (and, for the durable checkpoints, the same SQLite
file), with values of about 100 bytes. Three things are timed per size:

- ``store``: the Redis working store's own calls, ``snapshot_packed`` (what pause reads, packed as the durable
  store keeps it) and ``restore_packed`` (what resume writes, from the stored text): one Lua script each, one
  round trip whatever the number of keys. Where the store keeps a pause's copy (``stores/redis/copies.py``), also
  ``snapshot_for_pause`` (the snapshot that copies) and ``take_copy`` (what resume runs instead of the restore
  when the copy is the checkpoint's).
- ``lifecycle``: the whole ``pause`` / ``resume`` calls, which also write the checkpoint to (or read it from)
  the durable store: SQLite at its default FULL durability (an fsync per pause), or with ``--durable postgres``
  a Postgres (``--url``, or a pgserver started in a temp dir as ``pg_common.py`` does; fsync on, its default).
- ``seed``: the seed module's algorithm over the same WorkingMemory service on the same Redis: list the keys,
  get them one by one, store the checkpoint as one more key; resume deletes and re-sets every key one by one.
- ``floor`` (SQLite only): what no pause that keeps its checkpoint durable can go below on this machine, each
  round the snapshot with its copy plus a bare commit, from Python's ``sqlite3`` with nothing else around it, of one
  row holding the checkpoint's state text into a WAL file at the same durability in the same directory. Its ratio
  is the highest any pause could reach against the seed here, whose pause writes nothing durable.

    python benchmarks/bench_redis_pause_resume.py [--redis-url redis://127.0.0.1:6379/0 | --private]
        [--sizes 10,100,1000,10000] [--rounds 50] [--seed-rounds 3] [--synchronous FULL|NORMAL]
        [--durable sqlite|postgres [--url postgresql://...]] [--profile] [--values repeated|varied]
        [--no-wal-checkpoints]

The Redis URL defaults to ``$MCP_MEMORY_TEST_REDIS_URL`` or 127.0.0.1:6379; ``--private`` starts a
``redis-server`` of its own (no persistence) on a free port and stops it at the end. Keys are written under a
unique prefix and deleted at the end (nothing else on the server is touched). Prints p50/p99 in ms and the ratio
seed p50 / ours p50. ``--no-wal-checkpoints`` keeps the SQLite store's WAL checkpoint thread asleep for the run, to
show what its checkpoints, copying the WAL into the database file and syncing it beside the pauses' commits, add to
their p99. ``--profile`` prints, after the table, where the whole calls' time goes at the largest size:
each step's p50 (the Redis script, the durable write or read) and cProfile's top functions by own time.

After each size's set-up (sessions spawned, one warm-up pause and resume) the benchmark calls ``gc.freeze()``,
as ``mcp-memory serve`` does after start-up: the objects alive by then leave the collector's scans, so a timed
call is not charged for a full collection walking the set-up's objects.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import random
import socket
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import anyio
import redis

from mcp_memory import MemoryRuntime, Scope, Settings
from mcp_memory.stores.redis.store import RedisWorkingStore

sys.path.insert(0, str(Path(__file__).parent))
from bench_pause_resume import SeedWay, pct, timed
from pg_common import as_string, bench_database, server_url


def row(n: int, op: str, ours: list[float], base: list[float] | None) -> str:
    text = f"| {n} | {op} | {pct(ours, 0.5):.2f} | {pct(ours, 0.99):.2f} |"
    if base is None:
        return text + " | | |"
    ratio = statistics.median(base) / statistics.median(ours)
    return text + f" {pct(base, 0.5):.2f} | {pct(base, 0.99):.2f} | {ratio:.1f}x |"


@asynccontextmanager
async def durable_url(kind: str, synchronous: str, pg_url: str | None) -> AsyncIterator[tuple[str, str]]:
    """The durable store's URL and its description: a SQLite file in a temp dir, or a fresh Postgres database."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/bench.db", f"SQLite {synchronous}"
        return
    admin, _server = server_url(pg_url, None)
    async with bench_database(admin, embedding_dimension=256) as url:  # the default Settings width
        yield as_string(url), "Postgres"


def bare_commits(database_url: str, synchronous: str, text: str, rounds: int) -> list[float]:
    """ms of each of ``rounds`` commits of one row holding ``text`` into a WAL SQLite file beside the store's, at
    ``synchronous``, by Python's sqlite3 alone: the durable write's floor (the store's checkpoint row also carries
    its id, times, counts and hash, and the session's status and event rows go in the same commit)."""
    path = Path(database_url.removeprefix("sqlite+aiosqlite:///")).with_name("floor.db")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
        out = []
        for i in range(rounds):
            t = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (state) VALUES (?)", (text,))
            db.execute("COMMIT")
            out.append((time.perf_counter() - t) * 1000.0)
            if i % 32 == 31:  # as the store's checkpoint thread does, but outside the timed commits
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return out
    finally:
        db.close()


class Steps:
    """Each step's durations, by wrapping the stores' methods (``--profile`` only)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def wrap(self, target: object, *names: str) -> None:
        for name in names:
            method = getattr(target, name, None)
            if method is not None:
                setattr(target, name, self._timed(name, method))

    def _timed(self, name: str, method: Any) -> Any:
        async def timed_call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                self.times.setdefault(name, []).append((time.perf_counter() - started) * 1000)

        return timed_call


COPY_STEPS = ("snapshot_for_pause", "take_copy")
"""The pause's copy's steps, where the store has them."""


async def profile(rt: MemoryRuntime, project: uuid.UUID, agent: uuid.UUID, sid: str, rounds: int) -> None:
    """Where a whole pause and resume spend their time: each step's p50, then cProfile's top functions."""
    steps = Steps()
    steps.wrap(rt.working_store, "snapshot_packed", "restore_packed", "snapshot", "restore")
    steps.wrap(rt.working_store, *(n for n in COPY_STEPS if hasattr(rt.working_store, n)))
    steps.wrap(rt.store, "record_pause", "get_packed_checkpoint", "get_checkpoint", "record_resume")
    whole: dict[str, list[float]] = {"pause (whole call)": [], "resume (whole call)": []}
    for _ in range(rounds):
        started = time.perf_counter()
        await rt.lifecycle.pause(project, agent, sid)
        whole["pause (whole call)"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await rt.lifecycle.resume(project, agent, sid)
        whole["resume (whole call)"].append((time.perf_counter() - started) * 1000)
    print("\n| step | p50 ms | p99 ms |\n|---|---:|---:|")
    for name, samples in {**whole, **steps.times}.items():
        print(f"| {name} | {pct(samples, 0.5):.2f} | {pct(samples, 0.99):.2f} |")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        await rt.lifecycle.pause(project, agent, sid)
        await rt.lifecycle.resume(project, agent, sid)
    profiler.disable()
    print(f"\ncProfile of {rounds} pauses and resumes, top functions by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


async def run(
    url: str,
    sizes: list[int],
    rounds: int,
    seed_rounds: int,
    synchronous: str,
    durable: str = "sqlite",
    pg_url: str | None = None,
    profiling: bool = False,
    values: str = "repeated",
    wal_checkpoints: bool = True,
) -> None:
    prefix = f"mcpmem-bench-{uuid.uuid4().hex[:12]}"
    async with durable_url(durable, synchronous, pg_url) as (database_url, described):
        settings = Settings(
            database_url=database_url,
            redis_url=url,
            redis_key_prefix=prefix,
            max_value_bytes=64 * 1024 * 1024,  # the seed stores a whole checkpoint as one value
            max_keys_per_session=20_000,
            sqlite_synchronous=synchronous,
        )
        try:
            async with MemoryRuntime(settings) as rt:
                store = rt.working_store
                if not wal_checkpoints:
                    # The store's WAL checkpoint thread (stores/sqlite/connection.py) never wakes for the run: what
                    # the pauses cost without the checkpoints' copying and fsync beside them (the WAL grows meanwhile).
                    checkpointer = getattr(rt.store, "_checkpointer", None)
                    assert checkpointer is not None, "--no-wal-checkpoints is for the SQLite durable store"
                    checkpointer._every = checkpointer._interval = 10**9
                assert isinstance(store, RedisWorkingStore)
                info = await store.ping()
                checkpoints = "" if wal_checkpoints else ", no WAL checkpoint during the run"
                print(
                    f"Redis {info.get('version')} ({info.get('mode')}) at {info.get('url')}; {described}{checkpoints}"
                )
                print(f"load average before: {os.getloadavg()[0]:.2f}")
                seed = SeedWay(rt)
                limits = rt.working.limits
                project, agent = uuid.uuid4(), uuid.uuid4()
                print("| keys | op | ours p50 | ours p99 | seed p50 | seed p99 | ratio |")
                print("|---:|---|---:|---:|---:|---:|---:|")
                for n in sizes:
                    state = state_of(n, values)
                    ours_sid, seed_sid = f"ours-{n}", f"seed-{n}"
                    await rt.lifecycle.spawn(project, agent, ours_sid, initial_state=state)
                    await rt.lifecycle.spawn(project, agent, seed_sid, initial_state=state)
                    ours_scope, seed_scope = Scope(project, agent, ours_sid), Scope(project, agent, seed_sid)
                    snap = (await store.snapshot_packed(ours_scope, rt.clock())).text
                    await rt.lifecycle.pause(project, agent, ours_sid)  # warm-up (connections, caches)
                    await rt.lifecycle.resume(project, agent, ours_sid)
                    gc.freeze()  # as `mcp-memory serve` does after start-up

                    store_pause = await timed(rounds, lambda sc=ours_scope: store.snapshot_packed(sc, rt.clock()))
                    store_resume = await timed(
                        rounds, lambda sc=ours_scope, it=snap: store.restore_packed(sc, it, True, rt.clock(), limits)
                    )
                    copies = hasattr(store, "take_copy")
                    if copies:  # the snapshot that copies, and the take of that copy (kept: taken again each round)
                        # at every size here (the lifecycle rows below copy only from COPY_MIN_KEYS keys)
                        default_min, store.copy_min_keys = store.copy_min_keys, 1
                        nonce = uuid.uuid4().hex
                        copy_pause = await timed(
                            rounds, lambda sc=ours_scope, k=nonce: store.snapshot_for_pause(sc, rt.clock(), k)
                        )
                        await store.snapshot_for_pause(ours_scope, rt.clock(), nonce)
                        copy_resume = await timed(
                            rounds, lambda sc=ours_scope, k=nonce: store.take_copy(sc, k, rt.clock(), limits)
                        )
                        store.copy_min_keys = default_min
                    life_pause = await timed(rounds, lambda s=ours_sid: rt.lifecycle.pause(project, agent, s))
                    life_resume = await timed(rounds, lambda s=ours_sid: rt.lifecycle.resume(project, agent, s))
                    r = max(1, seed_rounds if n >= 1000 else rounds)
                    ids = iter(range(10**6))
                    seed_pause = await timed(r, lambda sc=seed_scope, it=ids: seed.pause(sc, f"c{next(it)}"))
                    seed_resume = await timed(r, lambda sc=seed_scope: seed.resume(sc, "c0"))
                    print(row(n, "pause: store snapshot", store_pause, seed_pause))
                    if copies:
                        print(row(n, "pause: store snapshot + copy", copy_pause, seed_pause))
                    print(row(n, f"pause: lifecycle (+ {durable} checkpoint)", life_pause, seed_pause))
                    if copies and durable == "sqlite":
                        commits = bare_commits(database_url, synchronous, snap, rounds)
                        floor = [a + b for a, b in zip(copy_pause, commits, strict=True)]
                        print(
                            row(
                                n,
                                "pause: floor (snapshot + copy, + a bare sqlite3 commit of the state)",
                                floor,
                                seed_pause,
                            )
                        )
                    print(row(n, "resume: store restore", store_resume, seed_resume))
                    if copies:
                        print(row(n, "resume: store take of the copy", copy_resume, seed_resume))
                    print(row(n, f"resume: lifecycle (+ {durable} read)", life_resume, seed_resume))
                if profiling:
                    await profile(rt, project, agent, f"ours-{sizes[-1]}", rounds)
        finally:
            client: Any = redis.Redis.from_url(url)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for i in range(0, len(keys), 500):
                client.delete(*keys[i : i + 500])
            client.close()
    print("times in ms; ratio = seed p50 / ours p50 (higher is better for mcp-memory)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


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


def state_of(n: int, values: str) -> dict[str, str]:
    """``n`` keys of ~100 bytes serialised each: the same 90 characters (a state any compressor shrinks to almost
    nothing), or 90 random letters and spaces per value, seeded (one that pglz cannot shrink by a quarter: it
    tries, then stores it as is)."""
    if values == "repeated":
        return {f"key-{i:05d}": "v" * 90 for i in range(n)}
    rng = random.Random(n)
    letters = string.ascii_lowercase + " "
    return {f"key-{i:05d}": "".join(rng.choices(letters, k=90)) for i in range(n)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--redis-url", default=os.environ.get("MCP_MEMORY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--private", action="store_true", help="start a redis-server of its own for the run")
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed-rounds", type=int, default=3, help="rounds of the slow baseline at >= 1000 keys")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="SQLite durability")
    parser.add_argument("--durable", choices=["sqlite", "postgres"], default="sqlite", help="the durable store")
    parser.add_argument("--url", help="--durable postgres: admin URL of a Postgres with pgvector (default: pgserver)")
    parser.add_argument("--profile", action="store_true", help="then profile the whole calls at the largest size")
    parser.add_argument(
        "--values", choices=["repeated", "varied"], default="repeated", help="each value's 90 characters (state_of)"
    )
    parser.add_argument(
        "--no-wal-checkpoints",
        action="store_true",
        help="SQLite: no WAL checkpoint during the run (to see what the checkpoints add to the pauses' p99)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with private_redis() if args.private else nullcontext(args.redis_url) as url:
        anyio.run(
            run,
            url,
            sizes,
            args.rounds,
            args.seed_rounds,
            args.synchronous,
            args.durable,
            args.url,
            args.profile,
            args.values,
            not args.no_wal_checkpoints,
        )


if __name__ == "__main__":
    main()
