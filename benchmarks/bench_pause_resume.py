"""Pause/resume on the embedded SQLite store: mcp-memory's way against the seed's per-key way.

Both run in this process on the same SQLite file. The seed's algorithm (kept here only as a baseline) lists
the keys, reads them one by one, and writes the checkpoint as one more working-memory key; its resume
deletes and re-sets every key one call at a time. Ours is one snapshot read plus one durable write for
pause, one checkpoint read plus one restore transaction for resume.

    python benchmarks/bench_pause_resume.py [--sizes 10,100,1000] [--rounds 20]

Prints p50/p99 per operation and size, and the seed/ours ratio of the p50s.

After each size's set-up (its sessions spawned) the benchmark calls ``gc.freeze()``, as ``mcp-memory serve``
does after start-up: the objects alive by then leave the collector's scans, so a timed call is not charged for
a full collection walking the set-up's objects.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import uuid
from typing import Any

import anyio

from mcp_memory import MemoryRuntime, Scope, Settings

CHECKPOINT_PREFIX = "__checkpoint__"


class SeedWay:
    """The seed's pause/resume, one store call per key, over our WorkingMemory service."""

    def __init__(self, rt: MemoryRuntime) -> None:
        self.rt = rt

    async def pause(self, scope: Scope, checkpoint_id: str) -> int:
        working = self.rt.working
        keys = [k for k in await working.list_keys(scope) if not k.startswith(CHECKPOINT_PREFIX)]
        state: dict[str, Any] = {}
        for key in keys:
            state[key] = await working.get(scope, key)
        await working.set(scope, CHECKPOINT_PREFIX + checkpoint_id, {"state": state, "keys_count": len(state)})
        return len(state)

    async def resume(self, scope: Scope, checkpoint_id: str) -> int:
        working = self.rt.working
        checkpoint = await working.get(scope, CHECKPOINT_PREFIX + checkpoint_id)
        for key in await working.list_keys(scope):
            if not key.startswith(CHECKPOINT_PREFIX):
                await working.delete(scope, key)
        for key, value in checkpoint["state"].items():
            await working.set(scope, key, value)
        return len(checkpoint["state"])


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(rounds: int, fn: Any) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


async def run(sizes: list[int], rounds: int, seed_rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
            max_value_bytes=64 * 1024 * 1024,  # the seed stores a whole checkpoint as one value
            max_keys_per_session=20_000,
        )
        async with MemoryRuntime(settings) as rt:
            seed = SeedWay(rt)
            project, agent = uuid.uuid4(), uuid.uuid4()
            print(f"{'keys':>6} {'op':<7} {'ours p50':>9} {'ours p99':>9} {'seed p50':>9} {'seed p99':>9} {'ratio':>7}")
            for n in sizes:
                state = {f"key-{i:05d}": "v" * 90 for i in range(n)}
                ours_sid, seed_sid = f"ours-{n}", f"seed-{n}"
                await rt.lifecycle.spawn(project, agent, ours_sid, initial_state=state)
                await rt.lifecycle.spawn(project, agent, seed_sid, initial_state=state)
                seed_scope = Scope(project, agent, seed_sid)
                gc.freeze()  # as `mcp-memory serve` does after start-up
                r = max(1, seed_rounds if n >= 1000 else rounds)

                ours_pause = await timed(rounds, lambda s=ours_sid: rt.lifecycle.pause(project, agent, s))
                ours_resume = await timed(rounds, lambda s=ours_sid: rt.lifecycle.resume(project, agent, s))
                ids = iter(range(10**6))
                seed_pause = await timed(r, lambda sc=seed_scope, it=ids: seed.pause(sc, f"c{next(it)}"))
                seed_resume = await timed(r, lambda sc=seed_scope: seed.resume(sc, "c0"))
                for op, ours, base in (("pause", ours_pause, seed_pause), ("resume", ours_resume, seed_resume)):
                    ratio = statistics.median(base) / statistics.median(ours)
                    print(
                        f"{n:>6} {op:<7} {pct(ours, 0.5):>9.2f} {pct(ours, 0.99):>9.2f} "
                        f"{pct(base, 0.5):>9.2f} {pct(base, 0.99):>9.2f} {ratio:>6.1f}x"
                    )
    print("times in ms; ratio = seed p50 / ours p50 (higher is better for mcp-memory)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed-rounds", type=int, default=3, help="rounds of the slow baseline at >= 1000 keys")
    args = parser.parse_args()
    anyio.run(run, [int(s) for s in args.sizes.split(",")], args.rounds, args.seed_rounds)


if __name__ == "__main__":
    main()
