"""The HTTP transports: SSE and Streamable HTTP from the MCP SDK in one ASGI app, served by uvicorn.

Routes: ``/mcp`` (Streamable HTTP), ``/sse`` + ``/messages/`` (SSE), ``/healthz`` (the process is up),
``/readyz`` (every store answers a trivial probe within ``http.readiness_timeout_seconds``, else 503; one probe
shared by concurrent requests, :mod:`.readiness`) and ``/metrics`` (Prometheus; with tokens, a token of every
project, else 403). Around them, outermost first:

1. Host/Origin validation against DNS rebinding (421 / 403), on every path but the health probes (a balancer
   probes by address). The allowed hosts follow the bind address and port; ``http.allowed_hosts`` and
   ``http.allowed_origins`` add more. The SDK transports get the same lists and check again.
2. A declared body larger than ``http.max_request_bytes`` gets 413 without being read; the SDK's transports
   stop reading a streamed (chunked) body at the same limit.
3. Bearer tokens (:mod:`.auth`) when ``http.tokens`` is set: 401 otherwise, the health probes excepted
   (``/metrics`` too if ``http.metrics_require_token`` is false); OAuth discovery paths answer 404.

Below ASGI, :mod:`.connections` applies read timeouts and connection caps (idle connections are shed first);
stateful sessions are capped per token by :mod:`.sessions`.

Stateless mode (``http.stateless``) serves each Streamable HTTP request with a fresh transport and answers in
JSON, so any process behind a balancer can take any request; SSE is a stream bound to one process and needs
sticky sessions whatever the mode.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_memory.config import Settings
from mcp_memory.config_sections import HttpSettings
from mcp_memory.errors import ConfigurationError
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.auth import GRANT_SCOPE_KEY, NOTHING, BearerAuthMiddleware, Grant, TokenTable
from mcp_memory.server.connections import ConnectionLimits, ConnectionRegistry, guarded_protocol
from mcp_memory.server.jsonrpc_input import JsonRpcShapeMiddleware
from mcp_memory.server.readiness import Readiness
from mcp_memory.server.sessions import FairSessionManager, SessionRefused, StreamsPerToken, send_refusal
from mcp_memory.summary import counted

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
SSE_PATH = "/sse"
MESSAGES_PATH = "/messages/"
PROBES = frozenset({"/healthz", "/readyz"})
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SHUTDOWN_GRACE_SECONDS = 1
"""After SIGINT/SIGTERM, how long calls in flight may take to end before the server cuts them off (as
``unavailable``, :mod:`.in_flight`)."""
_UVICORN_GRACE_SECONDS = SHUTDOWN_GRACE_SECONDS + 1  # uvicorn takes whole seconds
"""uvicorn's own graceful timeout, past ours: its cut-off (logged at ERROR, a traceback per request) is left for
requests that are not calls, such as a response a client is slow to read."""


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server to this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def check_http_settings(http: HttpSettings) -> TokenTable:
    """The token table, after refusing what would be unsafe: a non-loopback bind without tokens."""
    try:
        tokens = TokenTable(http.tokens)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    if not tokens and not is_loopback(http.host):
        raise ConfigurationError(
            f"refusing to serve on {http.host}: without bearer tokens anyone who can reach this address could read "
            "and write every project's memory. Configure http.tokens (create one with `mcp-memory hash-token "
            "--generate`) or bind a loopback address (--host 127.0.0.1)"
        )
    return tokens


def allowed_hosts_and_origins(http: HttpSettings) -> tuple[list[str], list[str]]:
    """Host and Origin header values accepted: the bind address at the bind port (any port for port 0; the
    loopback names when bound to loopback; this machine's name and the loopback names when bound to every
    interface), then ``http.allowed_hosts`` / ``http.allowed_origins``."""
    host = http.host
    if is_loopback(host) or _is_wildcard(host):
        names = list(_LOOPBACK_NAMES)
        if _is_wildcard(host):
            names.append(socket.gethostname())
    else:
        names = []
    bracketed = f"[{host.strip('[]')}]" if ":" in host else host
    if not _is_wildcard(host) and bracketed not in names:
        names.insert(0, bracketed)
    port = str(http.port) if http.port else "*"
    hosts: list[str] = []
    origins: list[str] = []
    for name in names:
        hosts.append(f"{name}:{port}")
        origins += [f"http://{name}:{port}", f"https://{name}:{port}"]
        if http.port == 80:
            hosts.append(name)
            origins.append(f"http://{name}")
        if http.port == 443:
            hosts.append(name)
            origins.append(f"https://{name}")
    return hosts + list(http.allowed_hosts), origins + list(http.allowed_origins)


def _matches(value: str, patterns: list[str]) -> bool:
    """An exact match, or ``base:*`` for ``base`` at any (numeric) port: the SDK's rule, a little stricter."""
    for pattern in patterns:
        if value == pattern:
            return True
        if pattern.endswith(":*") and value.startswith(pattern[:-1]) and value[len(pattern) - 1 :].isdigit():
            return True
    return False


def transport_security(http: HttpSettings) -> TransportSecuritySettings:
    """The same checks for the SDK's transports (off only if a list is ``["*"]``: ours still checks the other)."""
    hosts, origins = allowed_hosts_and_origins(http)
    if "*" in hosts or "*" in origins:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Host/Origin validation and the declared-size limit, before authentication and routing."""

    def __init__(self, app: ASGIApp, http: HttpSettings, on_reject: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.hosts, self.origins = allowed_hosts_and_origins(http)
        self.max_bytes = http.max_request_bytes
        self.on_reject = on_reject or (lambda reason: None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # No endpoint speaks WebSocket: refused outright (before this, an upgrade passed every check and
            # reached an HTTP handler; uvicorn answers a close before accept with 403).
            self.on_reject("websocket")
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["path"] not in PROBES:
            host = headers.get("host", "")
            if "*" not in self.hosts and not _matches(host, self.hosts):
                logger.warning("refused a request for Host %r (allowed: %s)", host[:100], ", ".join(self.hosts))
                self.on_reject("host")
                await _plain(send, 421, "Invalid Host header")
                return
            origin = headers.get("origin")
            if origin is not None and "*" not in self.origins and not _matches(origin, self.origins):
                logger.warning("refused a request from Origin %r", origin[:100])
                self.on_reject("origin")
                await _plain(send, 403, "Invalid Origin header")
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            self.on_reject("too_large")
            # Answered without reading the body; the connection is closed rather than drained.
            await _plain(send, 413, f"Request body larger than {self.max_bytes} bytes", [(b"connection", b"close")])
            return
        await self.app(scope, receive, send)


class _SseEndpoint:
    """GET /sse: one SSE stream, served by the MCP server until the client goes away."""

    def __init__(self, server: MemoryServer, transport: SseServerTransport, streams: StreamsPerToken) -> None:
        self.server = server
        self.transport = transport
        self.streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lowlevel = self.server._lowlevel_server
        try:
            with self.streams.opened(scope):
                async with self.transport.connect_sse(scope, receive, send) as (read_stream, write_stream):
                    await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
        except SessionRefused as refused:
            logger.warning("refused an SSE stream (%d): %s", refused.status, refused.message)
            await send_refusal(send, refused)
        except ValueError as exc:
            # connect_sse refuses (and answers) a request its own Host/Origin check fails; ours ran first with
            # the same lists, so this is rare.
            logger.info("SSE connection refused or ended: %s", exc)


def build_app(
    server: MemoryServer, settings: Settings | None = None, *, readiness_clock: Callable[[], float] = time.monotonic
) -> Starlette:
    """The ASGI app of the HTTP transports for ``server`` (settings: the server's own by default).
    ``readiness_clock`` times how long a ``/readyz`` probe's result is reused (a test's own clock)."""
    settings = settings or server.runtime.settings
    http = settings.http
    tokens = check_http_settings(http)
    if tokens:
        # A message that reaches a handler without a grant may touch nothing.
        server.grants.fallback = NOTHING
    if http.max_request_bytes <= settings.max_value_bytes:
        logger.warning(
            "http.max_request_bytes (%d) is not above max_value_bytes (%d): the largest values get 413, not too_large",
            http.max_request_bytes,
            settings.max_value_bytes,
        )
    security = transport_security(http)
    session_manager = FairSessionManager(
        app=server._lowlevel_server,
        json_response=http.stateless,
        stateless=http.stateless,
        security_settings=security,
        max_request_body_size=http.max_request_bytes,
        session_idle_timeout=http.session_idle_timeout_seconds,
        max_sessions=http.max_sessions,
        max_sessions_per_token=http.max_sessions_per_token,
    )
    sse = SseServerTransport(MESSAGES_PATH, security_settings=security, max_request_body_size=http.max_request_bytes)
    runtime = server.runtime

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    readiness = Readiness(lambda: runtime.probe(http.readiness_timeout_seconds), clock=readiness_clock)

    async def readyz(request: Request) -> Response:
        if await readiness.ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    async def metrics(request: Request) -> Response:
        # The counts are of every project's calls: with tokens, only a token of every project may read them.
        grant = request.scope.get(GRANT_SCOPE_KEY)
        if isinstance(grant, Grant) and grant.projects is not None:
            server.metrics.rejected("forbidden")
            return JSONResponse(
                {"error": "forbidden", "error_description": 'reading /metrics takes a token of every project ("*")'},
                status_code=403,
            )
        body, content_type = server.metrics.render()
        return Response(body, media_type=content_type)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with runtime, session_manager.run():
            yield

    public = PROBES if http.metrics_require_token else PROBES | {"/metrics"}
    middleware = [Middleware(GuardMiddleware, http=http, on_reject=server.metrics.rejected)]
    if tokens:
        middleware.append(
            Middleware(BearerAuthMiddleware, tokens=tokens, public=public, on_reject=server.metrics.rejected)
        )
    # After authentication: a caller without a token gets 401 before its body is read.
    middleware.append(
        Middleware(JsonRpcShapeMiddleware, path=MCP_PATH, sse_path=MESSAGES_PATH, max_bytes=http.max_request_bytes)
    )
    routes: list[Route | Mount] = [
        Route(MCP_PATH, endpoint=StreamableHTTPASGIApp(session_manager)),
        Route(
            SSE_PATH, endpoint=_SseEndpoint(server, sse, StreamsPerToken(http.max_sessions_per_token)), methods=["GET"]
        ),
        Mount(MESSAGES_PATH, app=sse.handle_post_message),
        Route("/healthz", endpoint=healthz, methods=["GET"]),
        Route("/readyz", endpoint=readyz, methods=["GET"]),
        Route("/metrics", endpoint=metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


async def serve(server: MemoryServer, transport: str = "http", settings: Settings | None = None) -> None:
    """Serve the HTTP app with uvicorn until interrupted; logs the bound address (port 0: the one chosen)."""
    import uvicorn

    settings = settings or server.runtime.settings
    http = settings.http
    app = build_app(server, settings)
    limits = ConnectionLimits(
        max_connections=http.max_connections,
        max_connections_per_client=http.max_connections_per_client,
        header_timeout=http.header_timeout_seconds,
        body_timeout=http.body_timeout_seconds,
    )
    _raise_open_file_limit(http.max_connections)
    config = uvicorn.Config(
        app,
        host=http.host,
        port=http.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        # Requests in flight (a Streamable HTTP call on the 2026 protocol is served in its own request, a stream
        # lasts as long as its client) get this long to end before they are cancelled: serve stops within seconds.
        # The calls among them are cut off before, by _Server.shutdown.
        timeout_graceful_shutdown=_UVICORN_GRACE_SECONDS,
        # Our h11 protocol (whatever parser uvicorn would pick) applies the read timeouts and connection caps;
        # uvicorn's limit_concurrency is not used: it counts idle connections, so idle sockets starved everyone.
        http=guarded_protocol(ConnectionRegistry(limits, on_reject=server.metrics.rejected)),
        # uvicorn annotates it int but only hands it to loop.call_later, which takes seconds as a float.
        timeout_keep_alive=http.keep_alive_timeout_seconds,  # type: ignore[arg-type]
        server_header=False,
        ws="none",  # no WebSocket endpoints: an upgrade request is handled (and refused) as plain HTTP
    )
    hosts, _ = allowed_hosts_and_origins(http)
    path = SSE_PATH if transport == "sse" else MCP_PATH
    if transport == "sse" and http.stateless:
        logger.warning("stateless mode applies to Streamable HTTP (%s); an SSE stream stays with one process", MCP_PATH)
    tokens = f"{len(http.tokens)} token(s)" if http.tokens else "no tokens (loopback only)"

    # The stores open before uvicorn: a store that cannot start is raised here as itself, where uvicorn's lifespan
    # would log it as a long traceback and exit 3. The app's lifespan opens them again (counted); this hold is let
    # go in shutdown, while uvicorn still holds the signals: once it re-raises a SIGINT, asyncio cancels this task
    # and a close after that would be cut short.
    runtime = server.runtime
    await runtime.start()
    held = True

    async def let_go() -> None:
        nonlocal held
        if held:
            held = False
            await runtime.close()

    in_flight = server.in_flight

    async def cut_off_after_grace() -> None:
        await asyncio.sleep(SHUTDOWN_GRACE_SECONDS)
        in_flight.cut_off()

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # Calls still running after the grace are cut off here, each answered unavailable, so that uvicorn's
            # own cut-off (an ERROR) finds no call left to cancel: a normal stop logs one WARNING at most.
            in_flight.stopping = True
            cutter = asyncio.create_task(cut_off_after_grace())
            try:
                await super().shutdown(sockets)
            finally:
                cutter.cancel()
                if in_flight.cut_off_count:
                    logger.warning(
                        "stopping: cut off %s in flight (a client still connected is answered unavailable)",
                        counted(in_flight.cut_off_count, "call"),
                    )
                await let_go()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            for srv in self.servers if self.started else []:
                for sock in srv.sockets:
                    address: Any = sock.getsockname()
                    host = f"[{address[0]}]" if ":" in address[0] else address[0]
                    logger.info(
                        "mcp-memory listening on http://%s:%s%s (Streamable HTTP at %s, SSE at %s; %s; hosts %s)",
                        host,
                        address[1],
                        path,
                        MCP_PATH,
                        SSE_PATH,
                        tokens,
                        ", ".join(hosts),
                    )

    try:
        await _Server(config).serve()
    finally:
        await let_go()  # uvicorn did not start (shutdown never ran), or failed midway


def _raise_open_file_limit(max_connections: int) -> None:
    """Raise the soft limit on open files towards the hard one, so the connection cap is reached (and idle
    connections shed) before accept() fails for want of descriptors (a common soft limit is 1024)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + 256  # the stores' files and sockets, the log, the stdio pipes
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit to %d (http.max_connections): %s", target, exc)
            return
        if target < wanted:
            logger.warning(
                "the open-file limit (%d) is below http.max_connections + 256: lower the cap or raise `ulimit -n`",
                target,
            )


__all__ = [
    "MCP_PATH",
    "MESSAGES_PATH",
    "SSE_PATH",
    "GuardMiddleware",
    "allowed_hosts_and_origins",
    "build_app",
    "check_http_settings",
    "is_loopback",
    "serve",
    "transport_security",
]
