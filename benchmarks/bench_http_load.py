"""Load over Streamable HTTP: many agents at once against one ``mcp-memory serve --transport http`` process.

Each agent (its own MCP client and HTTP connection pool, all at the same time) does spawn, N memory_set,
pause, resume and terminate. Afterwards every checkpoint is read back (it must hold exactly the N values
written) and so is the working memory that resume restored; any tool error, exception or lost write fails
the run. The server is a real subprocess on a free loopback port with a bearer token, on a fresh SQLite file.

    python benchmarks/bench_http_load.py [--agents 50] [--keys 100] [--stateless] [--synchronous FULL]

Prints the wall time, the throughput in tool calls per second and p50/p99 per tool (ms).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
            if paused.get("items_saved") != keys:
                run.lost.append(f"agent {n}: pause saved {paused.get('items_saved')} of {keys}")
            # Change the live state, so that resume has something to restore.
            await c.call_tool("memory_delete", {**s, "key": "key/000"})
            resumed = await run.call(c, "resume", **s)
            if resumed.get("items_restored") != keys:
                run.lost.append(f"agent {n}: resume restored {resumed.get('items_restored')} of {keys}")
            checkpoint = await read(c, f"{uri}/checkpoints/{paused.get('checkpoint_id')}")
            if checkpoint["state"] != expected:
                run.lost.append(f"agent {n}: the checkpoint holds {len(checkpoint['state'])} items, not those written")
            live = await read(c, uri)
            if live["working_memory"] != expected:
                run.lost.append(f"agent {n}: resume restored {len(live['working_memory'])} items, not the checkpoint")
            ended = await run.call(c, "terminate", **s, task_description=f"load agent {n}")
            if ended.get("state_items_consolidated") != keys:
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


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--stateless", action="store_true", help="serve in stateless mode (JSON responses)")
    parser.add_argument("--transport", choices=["http", "http-legacy"], default="http")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    args = parser.parse_args()

    token = generate_token()
    with tempfile.TemporaryDirectory() as tmp:
        env = server_env(
            Path(tmp) / "load.db",
            MCP_MEMORY_HTTP__TOKENS=token_config(("load", token, ["*"])),
            MCP_MEMORY_HTTP__STATELESS="1" if args.stateless else "0",
            MCP_MEMORY_SQLITE_SYNCHRONOUS=args.synchronous,
            # Every agent here shares one token and one address: keep the fairness caps out of the measurement.
            MCP_MEMORY_HTTP__MAX_SESSIONS_PER_TOKEN=str(max(100, 2 * args.agents)),
            MCP_MEMORY_HTTP__MAX_CONNECTIONS_PER_CLIENT=str(max(100, 4 * args.agents)),
            MCP_MEMORY_HTTP__MAX_CONNECTIONS=str(max(1000, 4 * args.agents)),
        )
        with ServerProcess(env) as server:
            run = Run()
            project = str(uuid.uuid4())
            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for n in range(args.agents):
                    tg.start_soon(agent, run, server.url, token, project, n, args.keys, args.transport)
            wall = time.perf_counter() - started
            server_side = await scrape(server.url, token)

    calls = sum(len(v) for v in run.latency.values())
    mode = "stateless" if args.stateless else "stateful"
    print(
        f"{args.agents} agents x (spawn, {args.keys} memory_set, pause, resume, terminate) over Streamable HTTP "
        f"({mode}, {args.transport}), SQLite synchronous={args.synchronous}"
    )
    print(f"wall {wall:.2f} s, {calls} timed tool calls, {calls / wall:.0f} calls/s")
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
    for problem in (run.errors + run.lost)[:20]:
        print("  ", problem, file=sys.stderr)
    return 1 if run.errors or run.lost else 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
