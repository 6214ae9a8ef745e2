"""Prometheus metrics of one server: tool calls, errors by docs/contract.md code, latency per tool, and calls of any
method refused before they ran.

Counted where every transport passes (``MemoryServer.call_tool``, the cap on calls in flight), so stdio calls count
too; only the HTTP transports expose them (``GET /metrics``). Each server has a registry of its own, so several
servers in one process (tests) never share or clash.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# Lifecycle calls on SQLite at FULL durability take milliseconds; a slow store or a big checkpoint seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """The counters and histograms of one server, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tool_calls = Counter("mcp_memory_tool_calls", "Tool calls, by tool.", ["tool"], registry=self.registry)
        self.tool_errors = Counter(
            "mcp_memory_tool_errors",
            "Tool calls that ended in an error, by tool and error code ('protocol': a JSON-RPC error; 'cancelled').",
            ["tool", "code"],
            registry=self.registry,
        )
        self.tool_latency = Histogram(
            "mcp_memory_tool_duration_seconds",
            "Time to answer a tool call, by tool.",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_rejected = Counter(
            "mcp_memory_http_rejected_requests",
            "HTTP requests refused before reaching MCP, or connections closed, by reason (unauthorized, forbidden, "
            "host, origin, too_large, websocket, shed, busy, client_busy, header_timeout, body_timeout).",
            ["reason"],
            registry=self.registry,
        )
        self.calls_refused = Counter(
            "mcp_memory_calls_refused",
            "MCP requests (tools/call, resources/read, resources/list, prompts/get, completion/complete) refused "
            "before they ran, by method and reason (calls_in_flight: the MCP session had "
            "max_calls_in_flight_per_mcp_session calls in flight).",
            ["method", "reason"],
            registry=self.registry,
        )

    def observe_tool(self, tool: str, seconds: float, error_code: str | None) -> None:
        """Count one tool call (``tool`` must come from a bounded set: unknown names as 'unknown')."""
        self.tool_calls.labels(tool).inc()
        self.tool_latency.labels(tool).observe(seconds)
        if error_code is not None:
            self.tool_errors.labels(tool, error_code).inc()

    def rejected(self, reason: str) -> None:
        """Count one HTTP request refused before MCP."""
        self.http_rejected.labels(reason).inc()

    def call_refused(self, method: str, reason: str) -> None:
        """Count one MCP request refused before it ran (``method`` from the server's own bounded set)."""
        self.calls_refused.labels(method, reason).inc()

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


__all__ = ["LATENCY_BUCKETS", "ServerMetrics"]
