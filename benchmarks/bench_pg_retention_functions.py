"""The pause and resume functions alone, with retention by per-session counts (revision 0011) against the scans of
revision 0010, in the steady state of a session at its bounds (100 checkpoints, 1,000 events: each pause prunes one
of each, and at 0011 each resume prunes one event).

Two databases on one server: one at head, one migrated to head and downgraded to 0010 (0008's ``mcpmem_pause`` and
``mcpmem_resume`` back). One session each of N keys (~100-byte values) in working memory; ``mcpmem_pause`` and
``mcpmem_resume`` called directly on one asyncpg connection per database, the two sides in turn call by call (which
goes first alternates), with ``synchronous_commit = off`` so that the function's own work is what is timed, not the
disk's flush. The first half of the rounds (at most ``--rounds`` minus 500) brings each session to its bounds; p50
and p90 of the rest, ms per call, round trip included (``SELECT 1``'s is printed for scale).

    python benchmarks/bench_pg_retention_functions.py [--keys 10] [--rounds 1500] [--no-bounds] [--url ...]

``--against REVISION`` downgrades the other database to that revision instead of 0010 (e.g. 0014: the prune before
0015 made it spare the pause's own checkpoint).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import asyncpg
import orjson
from pg_common import add_arguments, as_string, bench_database, connect_args, pct, server_url

from mcp_memory.stores.postgres.schema import head_revision, migrate

PAUSE = (
    "SELECT o_done FROM mcpmem_pause($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
)
PAUSE_0017 = PAUSE.replace("$18)", "$18, $19)")
"""The overload servers call since revision 0017 (``p_check_newer``: true, as the server sends it first)."""
RESUME_0010 = "SELECT o_done FROM mcpmem_resume($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
RESUME_0011 = "SELECT o_done FROM mcpmem_resume($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
RESUME_0018 = RESUME_0011.replace("$14)", "$14, $15)")
"""The overload servers call since revision 0018 (``p_skip_locked``: true, as the server sends it first)."""
KEEP_LAST, EVENTS_KEEP_LAST = 100, 1000
BOUNDS = True
"""False (``--no-bounds``): no retention at all, the cost of the rest of the functions."""


class Side:
    """One database's session and the calls of its revision."""

    def __init__(self, conn: asyncpg.Connection, revision: str) -> None:
        self.conn = conn
        # Revision 0011 brought the counts and the resume's event bounds; 0017 and 0018 the overloads servers call.
        self.counted = revision >= "0011"
        self.revision = revision
        self.project, self.agent = uuid.uuid4(), uuid.uuid4()
        self.samples: dict[str, list[float]] = {"pause": [], "resume": []}

    async def start(self, keys: int) -> None:
        counts = ", event_count" if self.counted else ""
        pk = await self.conn.fetchval(
            "INSERT INTO sessions (project_id, agent_instance_id, session_id, status, created_at, updated_at"
            f"{counts}) VALUES ($1, $2, 's', 'running', now(), now(){', 1' if self.counted else ''}) RETURNING id",
            self.project,
            self.agent,
        )
        await self.conn.execute(
            "INSERT INTO events (session_pk, event_type, at, duration_ms, outcome) "
            "VALUES ($1, 'spawn', now(), 0, 'ok')",
            pk,
        )
        await self.conn.executemany(
            "INSERT INTO working_items (session_pk, key, value, expires_at) VALUES ($1, $2, $3, NULL)",
            [(pk, f"key/{i:05d}", orjson.dumps(f"value {i:05d} " + "x" * 88).decode()) for i in range(keys)],
        )

    async def pause(self, i: int) -> None:
        at = datetime.now(UTC)
        args = (
            self.project, self.agent, "s", time.time(), f"c{i:06d}", at, None, "{}", False,
            "pause", at, 0.1, "ok", "{}", *((KEEP_LAST, None, EVENTS_KEEP_LAST, None) if BOUNDS else (None,) * 4),
        )  # fmt: skip
        sql = PAUSE
        if self.revision >= "0017":
            args, sql = (*args, True), PAUSE_0017
        started = time.perf_counter()
        done = await self.conn.fetchval(sql, *args)
        self.samples["pause"].append((time.perf_counter() - started) * 1000)
        assert done

    async def resume(self) -> None:
        at = datetime.now(UTC)
        args: tuple[Any, ...] = (
            self.project,
            self.agent,
            "s",
            time.time(),
            None,
            True,
            100_000,
            "resume",
            at,
            0.1,
            "ok",
            "{}",
        )
        sql = RESUME_0010
        if self.counted:
            args, sql = (*args, EVENTS_KEEP_LAST if BOUNDS else None, None), RESUME_0011
        if self.revision >= "0018":
            args, sql = (*args, True), RESUME_0018
        started = time.perf_counter()
        done = await self.conn.fetchval(sql, *args)
        self.samples["resume"].append((time.perf_counter() - started) * 1000)
        assert done


@asynccontextmanager
async def connected(url: Any) -> AsyncIterator[asyncpg.Connection]:
    args = connect_args(url)
    args["server_settings"] = {
        **args["server_settings"],
        "plan_cache_mode": "force_custom_plan",
        "synchronous_commit": "off",
    }
    conn = await asyncpg.connect(**args)
    try:
        yield conn
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    global BOUNDS
    BOUNDS = not args.no_bounds
    admin, _server = server_url(args.url, args.shared_buffers)
    async with (
        bench_database(admin, embedding_dimension=256, keep=args.keep) as old_url,
        bench_database(admin, embedding_dimension=256, keep=args.keep) as new_url,
    ):
        await migrate(as_string(old_url), revision=args.against, downgrade=True)
        async with connected(old_url) as old_conn, connected(new_url) as new_conn:
            old = Side(old_conn, args.against)
            sides = {args.against: old, "head": Side(new_conn, head_revision())}
            for side in sides.values():
                await side.start(args.keys)
            order = list(sides.values())
            for i in range(args.rounds):
                for side in order if i % 2 else order[::-1]:
                    await side.pause(i)
                    await side.resume()
            started = time.perf_counter()
            for _ in range(200):
                await new_conn.fetchval("SELECT 1")
            trip = (time.perf_counter() - started) / 200 * 1000
    skip = max(args.rounds // 2, args.rounds - 500)
    print(
        f"\n{args.keys} keys, {args.rounds} rounds (the last {args.rounds - skip} counted), ms per call; "
        f"SELECT 1: {trip:.3f}"
    )
    print("\n| revision | pause p50 / p90 | resume p50 / p90 |\n|---|---:|---:|")
    for name, side in sides.items():
        p, r = side.samples["pause"][skip:], side.samples["resume"][skip:]
        print(f"| {name} | {pct(p, 0.5):.3f} / {pct(p, 0.9):.3f} | {pct(r, 0.5):.3f} / {pct(r, 0.9):.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1500)
    parser.add_argument("--no-bounds", action="store_true", help="no retention: the sessions grow")
    parser.add_argument("--against", default="0010", help="the revision the other database is downgraded to")
    add_arguments(parser)
    anyio.run(main, parser.parse_args())
