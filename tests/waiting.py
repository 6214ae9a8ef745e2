"""Waiting on a condition with a deadline, instead of sleeping a fixed time and hoping it was long enough.

A fixed sleep before an assertion is either too short on a busy machine (a flaky failure) or longer than needed
everywhere else (a slow suite); polling a condition ends as soon as it holds and fails with a message when it
does not hold in time.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
INTERVAL = 0.02


def wait_until(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, *, what: str = "") -> T:
    """Call ``predicate`` until it returns something truthy, and return that; fail after ``timeout`` seconds.
    For synchronous tests (it blocks the thread between polls)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {what or _name(predicate)}")
        time.sleep(INTERVAL)


async def until(predicate: Callable[[], T | Awaitable[T]], within: float = DEFAULT_TIMEOUT, *, what: str = "") -> T:
    """As :func:`wait_until`, for async tests: ``predicate`` may be a coroutine function (e.g. a store read), and
    the event loop runs between polls (so the background work being waited for can make progress). ``within``:
    the timeout, in seconds."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s: {what or _name(predicate)}")
        await anyio.sleep(INTERVAL)


def _name(predicate: Callable[..., object]) -> str:
    return getattr(predicate, "__qualname__", repr(predicate))
