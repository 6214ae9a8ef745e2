"""Load over Streamable HTTP: many agents at once against one ``mcp-memory serve --transport http`` process.

Each agent (its own MCP client and HTTP connection pool, all at the same time) does spawn, N memory_set,
pause, resume and terminate. Afterwards every checkpoint is read back (it must hold exactly the N values
written) and so is the working memory that resume restored; any tool error, exception or lost write fails
the run. The server is a real subprocess on a free loopback port with a bearer token, on a fresh SQLite file
(``--backend sqlite``) or on Redis + Postgres (``--backend redis-postgres``: working memory in Redis under a
key prefix of its own, deleted at the end; the rest in a fresh Postgres database with pgvector, pgserver's
unless ``--url`` names one, dropped at the end).

After the load, one client measures the server's own cost per call on the idle server: ``prompts/list``
(transport, session and JSON-RPC, no tool and no store; ``ping`` is gone as of protocol 2026-07-28) and
``memory_get`` of a missing key (the cheapest tool: argument validation, scope, one store read, the error).
"Per core" is per second of the server process's CPU time (Redis and Postgres run in processes of their own).

    python benchmarks/bench_http_load.py [--agents 50] [--keys 100] [--backend sqlite|redis-postgres]
        [--stateless] [--synchronous FULL] [--redis-url URL] [--url POSTGRES_ADMIN_URL]

Prints the wall time, the throughput in tool calls per second (and per core: per second of the server
process's CPU time), p50/p99 per tool (ms) and the per-call floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pg_common import add_arguments, as_string, bench_database, server_url

from mcp_memory.server.auth import generate_token
from tests.http_helpers import ServerProcess, connect, read, server_env, token_config

TOOLS = ["spawn", "memory_set", "pause", "resume", "terminate"]


class Run:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.lost: list[str] = []

    async def call(self, client: Any, tool: str, **arguments: Any) -> dict[str, Any]:
        started = time.perf_counter()
        result = await client.call_tool(tool, arguments)
        self.latency[tool].append(time.perf_counter() - started)
        if result.is_error:
            self.errors.append(f"{tool}: {result.content[0].text}")
            return {}
        data: dict[str, Any] = result.structured_content or {}
        return data


async def agent(run: Run, url: str, token: str, project: str, n: int, keys: int, transport: str) -> None:
    s = {"project_id": project, "agent_instance_id": str(uuid.uuid4()), "session_id": f"load-{n}"}
    uri = f"memory://projects/{project}/agents/{s['agent_instance_id']}/sessions/{s['session_id']}"
    expected = {f"key/{i:03d}": {"agent": n, "i": i, "text": f"value {i} of agent {n}"} for i in range(keys)}
    try:
        async with connect(url, token, transport) as c:
            await run.call(c, "spawn", **s)
            for key, value in expected.items():
                await run.call(c, "memory_set", **s, key=key, value=value)
            paused = await run.call(c, "pause", **s)
            if paused and paused.get("items_saved") != keys:
                run.lost.append(f"agent {n}: pause saved {paused.get('items_saved')} of {keys}")
            # Change the live state, so that resume has something to restore.
            await c.call_tool("memory_delete", {**s, "key": "key/000"})
            resumed = await run.call(c, "resume", **s)
            if resumed and resumed.get("items_restored") != keys:
                run.lost.append(f"agent {n}: resume restored {resumed.get('items_restored')} of {keys}")
            checkpoint = await read(c, f"{uri}/checkpoints/{paused.get('checkpoint_id')}")
            if checkpoint["state"] != expected:
                run.lost.append(f"agent {n}: the checkpoint holds {len(checkpoint['state'])} items, not those written")
            live = await read(c, uri)
            if live["working_memory"] != expected:
                run.lost.append(f"agent {n}: resume restored {len(live['working_memory'])} items, not the checkpoint")
            ended = await run.call(c, "terminate", **s, task_description=f"load agent {n}")
            if ended and ended.get("state_items_consolidated") != keys:
                run.lost.append(f"agent {n}: terminate consolidated {ended.get('state_items_consolidated')}")
    except Exception as exc:
        run.errors.append(f"agent {n}: {exc!r}")


async def scrape(url: str, token: str) -> dict[str, float]:
    """Mean time per tool as the server measured it (its /metrics), to tell store time from transport time."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient(timeout=30) as h:
        text = (await h.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})).text
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mcp_memory_tool_duration_seconds_sum":
                sums[sample.labels["tool"]] = sample.value
            elif sample.name == "mcp_memory_tool_duration_seconds_count":
                counts[sample.labels["tool"]] = sample.value
    return {tool: sums[tool] / counts[tool] for tool in sums if counts.get(tool)}


async def floor(run: Run, url: str, token: str, project: str, transport: str, rounds: int) -> None:
    """The per-call cost without store work to speak of, one call at a time on the idle server."""
    s = {"project_id": project, "agent_instance_id": str(uuid.uuid4()), "session_id": "floor"}
    async with connect(url, token, transport) as c:
        await c.call_tool("spawn", s)
        for _ in range(rounds):
            started = time.perf_counter()
            await c.list_prompts()
            run.latency["prompts/list"].append(time.perf_counter() - started)
        for _ in range(rounds):
            started = time.perf_counter()
            result = await c.call_tool("memory_get", {**s, "key": "missing"})
            run.latency["memory_get (missing)"].append(time.perf_counter() - started)
            if not (result.is_error and result.content[0].text.startswith("not_found")):  # type: ignore[union-attr]
                run.errors.append(f"memory_get of a missing key answered {result.content}")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux /proc), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def backend(args: argparse.Namespace, tmp: Path) -> AsyncIterator[dict[str, str]]:
    """The server's store settings (environment) for ``--backend``; cleans up what it created."""
    if args.backend == "sqlite":
        yield {"MCP_MEMORY_SQLITE_SYNCHRONOUS": args.synchronous}
        return
    import redis

    prefix = f"mcpmem-bench-{uuid.uuid4().hex[:12]}"
    admin, _pg = server_url(args.url, args.shared_buffers)
    try:
        async with bench_database(admin, embedding_dimension=256, keep=args.keep) as db:
            yield {
                "MCP_MEMORY_DATABASE_URL": as_string(db),
                "MCP_MEMORY_REDIS_URL": args.redis_url,
                "MCP_MEMORY_REDIS_KEY_PREFIX": prefix,
            }
    finally:
        client: Any = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        client.close()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--backend", choices=["sqlite", "redis-postgres"], default="sqlite")
    parser.add_argument("--stateless", action="store_true", help="serve in stateless mode (JSON responses)")
    parser.add_argument("--transport", choices=["http", "http-legacy"], default="http")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="SQLite only")
    parser.add_argument("--floor-rounds", type=int, default=200, help="calls of each kind in the per-call floor")
    parser.add_argument("--redis-url", default=os.environ.get("MCP_MEMORY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--call-timeout", type=float, help="the server's call_timeout_seconds (default: its own)")
    add_arguments(parser)
    args = parser.parse_args()

    token = generate_token()
    with tempfile.TemporaryDirectory() as tmp:
        async with backend(args, Path(tmp)) as store_env:
            env = server_env(
                Path(tmp) / "load.db",
                MCP_MEMORY_HTTP__TOKENS=token_config(("load", token, ["*"])),
                MCP_MEMORY_HTTP__STATELESS="1" if args.stateless else "0",
                # Every agent here shares one token and one address: keep the fairness caps out of the measurement.
                MCP_MEMORY_HTTP__MAX_SESSIONS_PER_TOKEN=str(max(100, 2 * args.agents)),
                MCP_MEMORY_HTTP__MAX_CONNECTIONS_PER_CLIENT=str(max(100, 4 * args.agents)),
                MCP_MEMORY_HTTP__MAX_CONNECTIONS=str(max(1000, 4 * args.agents)),
                **store_env,
            )
            if args.call_timeout:
                env["MCP_MEMORY_CALL_TIMEOUT_SECONDS"] = str(args.call_timeout)
            with ServerProcess(env) as server:
                run = Run()
                project = str(uuid.uuid4())
                cpu_before = cpu_seconds(server.pid)
                client_before = time.process_time()
                started = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for n in range(args.agents):
                        tg.start_soon(agent, run, server.url, token, project, n, args.keys, args.transport)
                wall = time.perf_counter() - started
                cpu = cpu_seconds(server.pid) - cpu_before
                client_cpu = time.process_time() - client_before
                server_side = await scrape(server.url, token)
                await floor(run, server.url, token, project, args.transport, args.floor_rounds)
                server_floor = await scrape(server.url, token)
                # The first error the server logged, with its traceback (an "internal" answer is explained there).
                first = next((i for i, line in enumerate(server.log) if " ERROR " in line), len(server.log))
                server_log = server.log[first : first + 40]

    calls = sum(len(run.latency[t]) for t in TOOLS)
    mode = "stateless" if args.stateless else "stateful"
    store = f"SQLite synchronous={args.synchronous}" if args.backend == "sqlite" else "Redis + Postgres"
    print(
        f"{args.agents} agents x (spawn, {args.keys} memory_set, pause, resume, terminate) over Streamable HTTP "
        f"({mode}, {args.transport}), {store}"
    )
    per_core = f", {calls / cpu:.0f} calls per server CPU-second" if cpu else ""
    print(f"wall {wall:.2f} s, {calls} timed tool calls, {calls / wall:.0f} calls/s{per_core} ({os.cpu_count()} cores)")
    print(f"CPU during the load: server {cpu:.1f} s, {args.agents} clients (this process) {client_cpu:.1f} s")
    print(f"errors: {len(run.errors)}, lost writes: {len(run.lost)}")
    print()
    print("| tool | calls | p50 ms | p99 ms | mean ms | server mean ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for tool in TOOLS:
        samples = run.latency.get(tool, [])
        if samples:
            print(
                f"| {tool} | {len(samples)} | {1000 * pct(samples, 0.5):.1f} | {1000 * pct(samples, 0.99):.1f} "
                f"| {1000 * statistics.fmean(samples):.1f} | {1000 * server_side.get(tool, 0.0):.1f} |"
            )
    # The server's mean for memory_get after the floor phase is the floor's own (no memory_get in the load).
    floor_server = {"prompts/list": None, "memory_get (missing)": server_floor.get("memory_get")}
    for kind, inside in floor_server.items():
        samples = run.latency[kind]
        inside_ms = "-" if inside is None else f"{1000 * inside:.2f}"
        print(
            f"| floor: {kind}, one client | {len(samples)} | {1000 * pct(samples, 0.5):.2f} "
            f"| {1000 * pct(samples, 0.99):.2f} | {1000 * statistics.fmean(samples):.2f} | {inside_ms} |"
        )
    for problem in (run.errors + run.lost)[:20]:
        print("  ", problem, file=sys.stderr)
    for line in server_log:
        print("   server:", line.rstrip(), file=sys.stderr)
    return 1 if run.errors or run.lost else 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
