"""Pause/resume with Postgres as the store, side by side with LangGraph's ``AsyncPostgresSaver``.

Same database, same process, same state: N keys (10, 100, 1,000) of ~100-byte string values.

- mcp-memory: ``lifecycle.pause`` (one transaction: the session row locked, then one statement that aggregates the
  live working memory, held in Postgres here, into the checkpoint's JSONB, marks the session paused, records the
  event and prunes by retention; see stores/postgres/transitions.py) and ``lifecycle.resume`` (one transaction:
  the lock, then one statement restoring the newest checkpoint into live working memory inside Postgres, marking
  the session running and recording the event).
- load: the newest checkpoint read back (ours: ``get_checkpoint``), the like-for-like row.
- LangGraph (``langgraph-checkpoint-postgres``, psycopg 3): ``aput`` of a checkpoint whose channels are the N keys
  (all of them new versions, as a pause writes the whole state) and ``aget_tuple`` of the newest one. It only
  saves and loads: there is no live state to snapshot or restore, and no session or event bookkeeping.

    python benchmarks/bench_pg_pause_resume.py [--sizes 10,100,1000] [--rounds 50] [--url postgresql://...]

The two sides run alternately, call by call, so that both meet the same load on a shared machine. Prints p50/p99 per
operation and size and the ratios of the p50s (LangGraph / mcp-memory: above 1, ours is faster).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from pg_common import add_arguments, as_string, bench_database, pct, server_url

from mcp_memory import MemoryRuntime, Scope, Settings


def state_of(n: int) -> dict[str, str]:
    return {f"key/{i:05d}": f"value {i:05d} " + "x" * 88 for i in range(n)}


async def side_by_side(
    rounds: int, ours: Callable[[], Awaitable[Any]], theirs: Callable[[], Awaitable[Any]]
) -> tuple[list[float], list[float]]:
    """Both operations, alternating within each round (which goes first alternates too), so that both meet the same
    load on a shared machine."""
    for _ in range(3):
        await ours()
        await theirs()
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(rounds):
        order = ((0, ours), (1, theirs)) if i % 2 == 0 else ((1, theirs), (0, ours))
        for side, fn in order:
            started = time.perf_counter()
            await fn()
            samples[side].append((time.perf_counter() - started) * 1000)
    return samples


async def compare(
    rt: MemoryRuntime, saver: AsyncPostgresSaver, n: int, rounds: int
) -> dict[tuple[str, str], list[float]]:
    p, a, s = uuid.uuid4(), uuid.uuid4(), f"bench-{n}"
    await rt.lifecycle.spawn(p, a, s, initial_state=state_of(n))
    scope = Scope(p, a, s)
    config: dict[str, Any] = {"configurable": {"thread_id": f"bench-{n}-{uuid.uuid4()}", "checkpoint_ns": ""}}
    state = state_of(n)

    async def save() -> None:
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = dict(state)
        versions = {key: str(uuid.uuid4()) for key in state}
        checkpoint["channel_versions"] = versions
        await saver.aput(config, checkpoint, {"source": "update", "step": 0}, versions)  # type: ignore[arg-type, typeddict-item]

    async def load() -> None:
        loaded = await saver.aget_tuple(config)  # type: ignore[arg-type]
        assert loaded is not None and len(loaded.checkpoint["channel_values"]) == n

    out: dict[tuple[str, str], list[float]] = {}
    out[("ours", "pause")], out[("langgraph", "pause")] = await side_by_side(
        rounds, lambda: rt.lifecycle.pause(p, a, s), save
    )
    out[("ours", "load")], out[("langgraph", "load")] = await side_by_side(
        rounds, lambda: rt.store.get_checkpoint(scope, None), load
    )
    out[("ours", "resume")], out[("langgraph", "resume")] = await side_by_side(
        rounds, lambda: rt.lifecycle.resume(p, a, s), load
    )
    return out


async def main(args: argparse.Namespace) -> None:
    admin, _server = server_url(args.url, args.shared_buffers)
    sizes = [int(x) for x in args.sizes.split(",")]
    async with bench_database(admin, embedding_dimension=256, keep=args.keep) as url:
        results: dict[int, dict[tuple[str, str], list[float]]] = {}
        settings = Settings(database_url=as_string(url), max_keys_per_session=max(sizes) + 10)
        # psycopg speaks libpq URLs: the same database, without SQLAlchemy's driver suffix.
        conninfo = as_string(url.set(drivername="postgresql"))
        async with MemoryRuntime(settings) as rt, AsyncPostgresSaver.from_conn_string(conninfo) as saver:
            await saver.setup()
            for n in sizes:
                results[n] = await compare(rt, saver, n, args.rounds)

    print(f"\npause/resume on Postgres, {args.rounds} rounds after 3 warm-up, ~100-byte values, ms, the two sides")
    print("alternating call by call")
    print("(load: read the newest checkpoint only; resume: ours also restores it into live working memory and")
    print("records the event, LangGraph's resume is its load)\n")
    print("| keys | op | mcp-memory p50 / p99 | LangGraph AsyncPostgresSaver p50 / p99 | LangGraph / ours (p50) |")
    print("|---:|---|---:|---:|---:|")
    for n in sizes:
        for op in ("pause", "load", "resume"):
            o, lg = results[n][("ours", op)], results[n][("langgraph", op)]
            print(
                f"| {n:,} | {op} | {pct(o, 0.5):.2f} / {pct(o, 0.99):.2f} | {pct(lg, 0.5):.2f} / {pct(lg, 0.99):.2f} "
                f"| {pct(lg, 0.5) / pct(o, 0.5):.2f}x |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=50)
    add_arguments(parser)
    anyio.run(main, parser.parse_args())
