"""A stand-in for a remote OpenAI-compatible embeddings API (the one thing in these tests outside our
control): a real HTTP server (Starlette under uvicorn, on a loopback port, in a thread) whose behaviour a test
switches at run time: answer, fail with a status, stall, or rate-limit with Retry-After.

Its vectors are the local hash embedding's, so that vector search over them behaves like the real thing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mcp_memory.embeddings import HashEmbedding


@dataclass
class Behaviour:
    """What the next requests get. ``failures``: how many requests fail (with ``status``) before the API
    answers again; -1 means all of them."""

    status: int = 500
    failures: int = 0
    retry_after: str | None = None
    delay: float = 0.0
    slow_over: int | None = None
    """Only requests of more than this many inputs wait ``delay`` (a model server whose time grows with the batch)."""
    dimension: int = 64
    reverse: bool = False
    refuse: str | None = None
    """Answer 400 to any request with an input containing this (an input the model will not take)."""
    trickle: bool = False
    """Answer 200 and then send the body a byte at a time, never finishing (a proxy or server that hangs mid-body:
    every read gets something, so no read timeout ever fires)."""
    answers: int | None = None
    """Answer (or refuse) this many requests, then fail every one with ``status`` (a rate limit that starts)."""


@dataclass
class FakeEmbeddingAPI:
    """The server's state: its behaviour and every request it received."""

    url: str = ""
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, **changes: Any) -> None:
        with self.lock:
            self.behaviour = Behaviour(**changes)

    def healthy(self) -> None:
        self.set(dimension=self.behaviour.dimension)

    def failing(self, status: int = 500, **changes: Any) -> None:
        self.set(status=status, failures=-1, dimension=self.behaviour.dimension, **changes)

    async def _embeddings(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            self.requests.append(
                {"headers": dict(request.headers), "query": dict(request.query_params), "body": body, "at": time.time()}
            )
            b = self.behaviour
            fail = b.failures != 0
            if b.failures > 0:
                b.failures -= 1
            if b.answers is not None:
                fail = fail or b.answers == 0
                b.answers = max(0, b.answers - 1)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if b.delay and (b.slow_over is None or len(texts) > b.slow_over):
            await asyncio.sleep(b.delay)
        if b.trickle:
            return StreamingResponse(_trickle(), media_type="application/json")
        if fail:
            headers = {"Retry-After": b.retry_after} if b.retry_after is not None else None
            return JSONResponse({"error": {"message": "unavailable"}}, status_code=b.status, headers=headers)
        if b.refuse is not None and any(b.refuse in text for text in texts):
            return JSONResponse({"error": {"message": "input refused"}}, status_code=400)
        hasher = HashEmbedding(b.dimension)
        data = [{"object": "embedding", "index": i, "embedding": hasher.embed_one(t)} for i, t in enumerate(texts)]
        if b.reverse:
            data.reverse()
        return JSONResponse({"object": "list", "data": data, "model": body.get("model")})


async def _trickle() -> AsyncIterator[bytes]:
    yield b'{"object": "list", "data": ['
    while True:
        await asyncio.sleep(0.1)
        yield b" "


@contextmanager
def running_api() -> Iterator[FakeEmbeddingAPI]:
    """Serve a :class:`FakeEmbeddingAPI` on 127.0.0.1 (a free port) for the duration of the block."""
    api = FakeEmbeddingAPI()
    app = Starlette(routes=[Route("/v1/embeddings", api._embeddings, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", timeout_graceful_shutdown=0.2
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake embedding API did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    api.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield api
    finally:
        server.should_exit = True
        thread.join(timeout=10)
