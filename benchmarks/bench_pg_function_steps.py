"""Where a Postgres pause and resume spend their time inside the server: each statement of ``mcpmem_pause`` and
``mcpmem_resume`` (Postgres as both stores, no Redis) timed by ``clock_timestamp()``.

A database of its own (pg_common): migrated to head, whose two functions must still be revision 0025's bodies (the
run stops if a later migration changed them). A session of N keys (~100-byte values) is spawned and paused and
resumed through ``MemoryRuntime`` until it holds more than its bounds (100 checkpoints, 1,000 events: each pause
prunes a checkpoint, each pause and resume an event), then each function is replaced, in that database only, by the
same body with a ``clock_timestamp()`` read after each step, the reads written to an unlogged table at the end of
the call. ``--rounds`` pause/resume pairs are then timed that way, with the whole call as the Python caller sees it
(``lifecycle.pause`` / ``resume``, commit and its flush included) for scale.

    python benchmarks/bench_pg_function_steps.py [--sizes 10,100,1000] [--rounds 300] [--url ...]

The reads cost a few microseconds each, so the steps add up to slightly more than the function uninstrumented.
"""

from __future__ import annotations

import argparse
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import import_module
from typing import Any

import anyio
import asyncpg
from pg_common import add_arguments, as_string, bench_database, connect_args, pct, server_url

from mcp_memory import MemoryRuntime, Settings

HEAD = import_module("mcp_memory.stores.migrations.versions.postgres.0025_transitions_answer_the_session_they_refused")
"""The revision whose ``mcpmem_pause`` / ``mcpmem_resume`` bodies are instrumented (checked against the database)."""
STEPS_TABLE = "public.mcpmem_bench_steps"

PAUSE_STEPS = {
    "lock the session's row": "        RETURN;  -- missing or not writable: the caller says which\n    END IF;",
    "check for a newer checkpoint": "        o_overtaken := true;\n        RETURN;\n    END IF;",
    "insert the checkpoint (state aggregated, hashed)": (
        "        RETURN;  -- the checkpoint id is taken: nothing written\n    END IF;"
    ),
    "prune checkpoints": "        n_unkept := n_unkept - gone;\n    END IF;",
    "insert the event": "    RETURNING id INTO own_event;",
    "prune events": "        n_events := n_events - gone;\n    END IF;",
    "update the session's row": "                        event_count = n_events\n    WHERE id = pk;",
}
"""Each step of ``mcpmem_pause`` and the text its ``clock_timestamp()`` read follows (the step's last lines)."""
RESUME_STEPS = {
    "lock the session's row": "            RETURN;  -- no session: every column NULL\n        END IF;\n    END IF;",
    "read the checkpoint": (
        "        FROM checkpoints WHERE session_pk = pk ORDER BY created_at DESC, id DESC LIMIT 1;\n    END IF;"
    ),
    "restore working memory, insert the event": "INTO o_restored, o_kept, o_done FROM n, others;",
    "prune events": "        n_events := n_events - gone;\n    END IF;",
    "update the session's row": (
        "    UPDATE sessions SET status = 'running', updated_at = p_ev_at, event_count = n_events WHERE id = pk;"
    ),
}


def body_of(sql: str) -> str:
    return sql.split("$fn$")[1]


def replacing(sql: str) -> str:
    """``sql`` (the migration's CREATE FUNCTION) as a CREATE OR REPLACE FUNCTION of the function it created."""
    return sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def instrumented(sql: str, steps: dict[str, str], kind: str) -> str:
    """``sql`` (a CREATE FUNCTION) as a CREATE OR REPLACE FUNCTION with a clock read after each step and the reads
    stored at the end."""
    out = replacing(sql).replace("BEGIN\n", "BEGIN\n    ts := ARRAY[clock_timestamp()];\n", 1)
    out = re.sub(r"\nDECLARE\n", "\nDECLARE\n    ts timestamptz[];\n", out, count=1)
    for anchor in steps.values():
        if out.count(anchor) != 1:
            raise SystemExit(f"the {kind} body changed: {anchor!r} is not found once; update the steps")
        out = out.replace(anchor, anchor + "\n    ts := ts || clock_timestamp();", 1)
    end = "\nEND\n$fn$"
    return out.replace(end, f"\n    INSERT INTO {STEPS_TABLE} VALUES ('{kind}', ts);{end}", 1)


async def check_head(conn: asyncpg.Connection) -> None:
    """Stop unless the database's functions of these names include the bodies instrumented here (the overloads the
    server calls; older overloads of earlier revisions are kept beside them)."""
    for name, sql in (("mcpmem_pause", HEAD.PAUSE), ("mcpmem_resume", HEAD.RESUME)):
        sources = await conn.fetch("SELECT prosrc FROM pg_proc WHERE proname = $1", name)
        if body_of(sql) not in [r["prosrc"] for r in sources]:
            raise SystemExit(f"{name} at head is not revision {HEAD.revision}'s: update this benchmark")


class StatementTimes:
    """The round trip of each call's one statement (``fetchrow`` on the store's asyncpg connection: sent, run,
    committed and flushed, answered), as the store's Python sees it."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {"pause": [], "resume": []}
        self.last = 0.0

    def append(self, kind: str) -> None:
        self.times[kind].append(self.last)


def timed_statements(rt: MemoryRuntime) -> StatementTimes:
    """Wrap the store's connection hand-out so that each ``fetchrow`` on it is timed (into the result's ``last``)."""
    out = StatementTimes()
    store = rt.store
    driver_of = store._driver  # type: ignore[attr-defined]

    @asynccontextmanager
    async def timed_driver(*args: object, **kwargs: object) -> AsyncIterator[object]:
        async with driver_of(*args, **kwargs) as driver:
            yield TimedConnection(driver, out)

    store._driver = timed_driver  # type: ignore[attr-defined]
    return out


class TimedConnection:
    def __init__(self, driver: asyncpg.Connection, out: StatementTimes) -> None:
        self._driver, self._out = driver, out

    async def fetchrow(self, *args: object) -> object:
        started = time.perf_counter()
        try:
            return await self._driver.fetchrow(*args)
        finally:
            self._out.last = (time.perf_counter() - started) * 1000

    def __getattr__(self, name: str) -> object:
        return getattr(self._driver, name)


def steps_table(
    kind: str, names: list[str], rows: list[list[datetime]], whole: list[float], statement: list[float]
) -> None:
    totals = [(ts[-1] - ts[0]).total_seconds() * 1000 for ts in rows]
    print(f"| {kind}: step | p50 ms | p90 ms | share of the function (p50) |\n|---|---:|---:|---:|")
    for i, name in enumerate(names):
        d = [(ts[i + 1] - ts[i]).total_seconds() * 1000 for ts in rows]
        print(f"| {name} | {pct(d, 0.5):.3f} | {pct(d, 0.9):.3f} | {pct(d, 0.5) / pct(totals, 0.5):.0%} |")
    print(f"| the function, from its first statement to its last | {pct(totals, 0.5):.3f} | {pct(totals, 0.9):.3f} | |")
    print(
        f"| the statement's round trip, commit included, as the store sees it | {pct(statement, 0.5):.3f} | "
        f"{pct(statement, 0.9):.3f} | |"
    )
    print(f"| the whole call, as the Python caller waits for it | {pct(whole, 0.5):.3f} | {pct(whole, 0.9):.3f} | |\n")


async def run_size(url: str, admin: dict[str, Any], n: int, rounds: int) -> None:
    settings = Settings(database_url=url, max_value_bytes=64 * 1024 * 1024, max_keys_per_session=20_000)
    conn = await asyncpg.connect(**admin)
    try:
        await check_head(conn)
        await conn.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS {STEPS_TABLE} (kind text, ts timestamptz[])")
        await conn.execute(f"TRUNCATE {STEPS_TABLE}")
        async with MemoryRuntime(settings) as rt:
            project, agent, sid = uuid.uuid4(), uuid.uuid4(), f"steps-{n}"
            state = {f"k{i:05d}": "v" * 90 + f"{i:010d}" for i in range(n)}
            await rt.lifecycle.spawn(project, agent, sid, initial_state=state)
            for _ in range(560):  # past 100 checkpoints and 1,000 events: each call prunes, as in a long session
                await rt.lifecycle.pause(project, agent, sid)
                await rt.lifecycle.resume(project, agent, sid)
            statement = timed_statements(rt)
            await conn.execute(instrumented(HEAD.PAUSE, PAUSE_STEPS, "pause"))
            await conn.execute(instrumented(HEAD.RESUME, RESUME_STEPS, "resume"))
            try:
                whole: dict[str, list[float]] = {"pause": [], "resume": []}
                for _ in range(rounds):
                    for kind, call in (("pause", rt.lifecycle.pause), ("resume", rt.lifecycle.resume)):
                        started = time.perf_counter()
                        await call(project, agent, sid)
                        whole[kind].append((time.perf_counter() - started) * 1000)
                        statement.append(kind)
            finally:
                await conn.execute(replacing(HEAD.PAUSE))
                await conn.execute(replacing(HEAD.RESUME))
        for kind, names in (("pause", list(PAUSE_STEPS)), ("resume", list(RESUME_STEPS))):
            rows = [r["ts"] for r in await conn.fetch(f"SELECT ts FROM {STEPS_TABLE} WHERE kind = $1", kind)]
            if len(rows) != rounds or any(len(ts) != len(names) + 1 for ts in rows):
                raise SystemExit(f"{kind}: {len(rows)} timed calls of {rounds}, or a call took another path")
            print(f"{n} keys, {rounds} calls, at the bounds")
            steps_table(kind, names, rows, whole[kind], statement.times[kind])
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    admin_url, _server = server_url(args.url, args.shared_buffers)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for n in (int(s) for s in args.sizes.split(",")):
        async with bench_database(admin_url, embedding_dimension=256, keep=args.keep) as url:
            await run_size(as_string(url), connect_args(url), n, args.rounds)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=300)
    add_arguments(parser)
    anyio.run(main, parser.parse_args())
