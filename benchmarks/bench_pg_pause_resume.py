"""Pause/resume with Postgres as the store, side by side with LangGraph's ``AsyncPostgresSaver``.

Same database, same process, same state: N keys (10, 100, 1,000) of ~100-byte string values.

- mcp-memory: ``lifecycle.pause`` and ``lifecycle.resume``, each one ``SELECT`` of a server-side function
  (``mcpmem_pause``, ``mcpmem_resume``; see stores/postgres/transitions.py) on a connection of the store's pool:
  the pause locks the session, aggregates its live working memory (held in Postgres here) into the checkpoint's
  JSONB, prunes by retention, marks the session paused and records the event; the resume restores the newest
  checkpoint into live working memory, marks the session running and records the event.
- load: the newest checkpoint read back (ours: ``get_checkpoint``), the like-for-like row.
- LangGraph (``langgraph-checkpoint-postgres``, psycopg 3): ``aput`` of a checkpoint whose channels are the N keys
  (all of them new versions, as a pause writes the whole state) and ``aget_tuple`` of the newest one. It only
  saves and loads: there is no live state to snapshot or restore, and no session or event bookkeeping. Two
  savers: on a ``psycopg_pool.AsyncConnectionPool`` (a pool, as ours: like for like) and on one connection
  (``from_conn_string``: no pool checkout, but one caller at a time). Both with the settings ``from_conn_string``
  uses (autocommit, statements prepared at once, dict rows); the server's durability (``synchronous_commit``) is
  the same for every side.
- floor: what no call that keeps the contract's durability can go below on this server, one statement on the same
  pool as LangGraph's: for pause, one ``INSERT`` of the state as JSONB into a table of nothing else (the checkpoint
  alone: no status, no event, no retention); for resume, one ``INSERT`` of a small row (the event every lifecycle
  call must record durably, SPEC.md; nothing restored); for load, one ``SELECT`` of the newest state row. Each
  commit waits for the disk as ours and LangGraph's do.

    python benchmarks/bench_pg_pause_resume.py [--sizes 10,100,1000] [--rounds 50] [--url postgresql://...]

The sides run in turn, call by call (which goes first rotates), so that all meet the same load on a shared
machine. Prints p50/p99 per operation and size and the ratios of the p50s (LangGraph / mcp-memory: above 1, ours is
faster).
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from pg_common import add_arguments, as_string, bench_database, pct, server_url
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from mcp_memory import MemoryRuntime, Scope, Settings

SIDES = ("ours", "langgraph-pool", "langgraph-conn", "floor")

FLOOR_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_floor_states (id bigserial PRIMARY KEY, state jsonb NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bench_floor_events (id bigserial PRIMARY KEY, at timestamptz NOT NULL)",
)


def state_of(n: int) -> dict[str, str]:
    return {f"key/{i:05d}": f"value {i:05d} " + "x" * 88 for i in range(n)}


async def in_turn(rounds: int, calls: Sequence[Callable[[], Awaitable[Any]]]) -> list[list[float]]:
    """Each call once per round, in an order that rotates from round to round, so that all meet the same load on a
    shared machine; ms per call, by side."""
    for _ in range(3):
        for fn in calls:
            await fn()
    samples: list[list[float]] = [[] for _ in calls]
    for i in range(rounds):
        for k in range(len(calls)):
            side = (i + k) % len(calls)
            started = time.perf_counter()
            await calls[side]()
            samples[side].append((time.perf_counter() - started) * 1000)
    return samples


def langgraph_calls(
    saver: AsyncPostgresSaver, n: int
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """``aput`` of the N keys as a new checkpoint, and ``aget_tuple`` of the newest, on one thread of ``saver``."""
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

    return save, load


def floor_calls(pool: AsyncConnectionPool[Any], n: int) -> tuple[Callable[[], Awaitable[None]], ...]:
    """The floor's pause (the state inserted as JSONB, alone), load (the newest state read) and resume (one small
    row inserted), each one statement on a connection of ``pool`` in autocommit."""
    state = Jsonb(state_of(n))

    async def pause() -> None:
        async with pool.connection() as conn:
            await conn.execute("INSERT INTO bench_floor_states (state) VALUES (%s)", (state,))

    async def load() -> None:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT state FROM bench_floor_states ORDER BY id DESC LIMIT 1")
            row = await cur.fetchone()
            assert row is not None and len(row["state"]) == n

    async def resume() -> None:
        async with pool.connection() as conn:
            await conn.execute("INSERT INTO bench_floor_events (at) VALUES (now())")

    return pause, load, resume


async def compare(
    rt: MemoryRuntime, savers: Sequence[AsyncPostgresSaver], pool: AsyncConnectionPool[Any], n: int, rounds: int
) -> dict[tuple[str, str], list[float]]:
    p, a, s = uuid.uuid4(), uuid.uuid4(), f"bench-{n}"
    await rt.lifecycle.spawn(p, a, s, initial_state=state_of(n))
    scope = Scope(p, a, s)
    theirs = [langgraph_calls(saver, n) for saver in savers]
    floor = floor_calls(pool, n)

    async def pause() -> None:
        await rt.lifecycle.pause(p, a, s)

    async def load() -> None:
        await rt.store.get_checkpoint(scope, None)

    async def resume() -> None:
        await rt.lifecycle.resume(p, a, s)

    out: dict[tuple[str, str], list[float]] = {}
    for op, ours, index, bare in (("pause", pause, 0, 0), ("load", load, 1, 1), ("resume", resume, 1, 2)):
        # LangGraph's resume is its load: the state comes back to the process, which is where its working memory is.
        samples = await in_turn(rounds, [ours, *(calls[index] for calls in theirs), floor[bare]])
        for side, taken in zip(SIDES, samples, strict=True):
            out[(side, op)] = taken
    return out


async def main(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()[0]
    admin, _server = server_url(args.url, args.shared_buffers)
    sizes = [int(x) for x in args.sizes.split(",")]
    async with bench_database(admin, embedding_dimension=256, keep=args.keep) as url:
        results: dict[int, dict[tuple[str, str], list[float]]] = {}
        settings = Settings(database_url=as_string(url), max_keys_per_session=max(sizes) + 10)
        # psycopg speaks libpq URLs: the same database, without SQLAlchemy's driver suffix.
        conninfo = as_string(url.set(drivername="postgresql"))
        # The keywords from_conn_string gives its one connection, and a pool of ours' size (10).
        kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        async with (
            MemoryRuntime(settings) as rt,
            AsyncConnectionPool(conninfo, min_size=10, max_size=10, kwargs=kwargs, open=False) as pool,
            AsyncPostgresSaver.from_conn_string(conninfo) as single,
        ):
            pooled = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await single.setup()
            async with pool.connection() as conn:
                for ddl in FLOOR_DDL:
                    await conn.execute(ddl)
            for n in sizes:
                results[n] = await compare(rt, (pooled, single), pool, n, args.rounds)

    print(f"\nload average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"pause/resume on Postgres, {args.rounds} rounds after 3 warm-up, ~100-byte values, ms, the sides in turn")
    print("call by call (load: read the newest checkpoint only; resume: ours restores it into live working memory in")
    print("Postgres, marks the session running and records the event, one commit; LangGraph's resume is its load)\n")
    print("floor: one statement, the least a call keeping the contract's durability does (pause: the state inserted")
    print(
        "alone; resume: one event row inserted; load: the newest state read); ratio = LangGraph p50 / the row's p50\n"
    )
    print(
        "| keys | op | mcp-memory p50 / p99 | LangGraph, pool p50 / p99 | LangGraph, one connection p50 / p99 "
        "| ratio pool / one connection (p50) | floor p50 / p99 | floor's ratio pool / one connection (p50) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for op in ("pause", "load", "resume"):
            o, lp, lc, fl = (results[n][(side, op)] for side in SIDES)
            print(
                f"| {n:,} | {op} | {pct(o, 0.5):.2f} / {pct(o, 0.99):.2f} | {pct(lp, 0.5):.2f} / {pct(lp, 0.99):.2f} "
                f"| {pct(lc, 0.5):.2f} / {pct(lc, 0.99):.2f} "
                f"| {pct(lp, 0.5) / pct(o, 0.5):.2f}x / {pct(lc, 0.5) / pct(o, 0.5):.2f}x "
                f"| {pct(fl, 0.5):.2f} / {pct(fl, 0.99):.2f} "
                f"| {pct(lp, 0.5) / pct(fl, 0.5):.2f}x / {pct(lc, 0.5) / pct(fl, 0.5):.2f}x |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=50)
    add_arguments(parser)
    anyio.run(main, parser.parse_args())
