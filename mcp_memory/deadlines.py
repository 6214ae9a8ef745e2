"""One deadline per tool call, shared by every store step of the call.

A tool call (``MemoryServer.call_tool``) runs inside :func:`call_deadline`: a context-local budget of
``call_timeout_seconds``; so do the other requests that read a store (a resource read, a ``resources/list`` page,
a prompt, a completion). Each network store step (a Redis script, a Postgres transaction: connect, pool checkout
and statements included) is bounded by what is left of it (:func:`step_limit`), so a stalled store makes the call
answer ``unavailable: ... retry later`` once the budget is spent, however many steps the call has (spawn on Redis:
durable create, Redis open, and on failure the compensation), instead of one full timeout per step.

Why a budget the adapters read, rather than one cancel scope around the whole call: a step is then cut off only
inside the adapter, which knows how to leave its connection clean (redis-py drops a connection cancelled
mid-request; the Postgres adapter invalidates one), and the caller sees a step that failed with ``Unavailable``,
never a cancellation landing between two steps of a lifecycle call (where compensation would be skipped).

Compensation steps of a failed call (a failed spawn's discard, a failed terminate's unseal, failure events) run
under :func:`compensation`: shielded from cancellation, with a short budget of their own
(``call_cleanup_seconds``, one window shared by all compensation of the call, starting when the first begins), so
they are attempted even after the call's budget is spent, and a call answers within ``call_timeout_seconds +
call_cleanup_seconds`` at worst.

Time spent outside the stores is not charged to the budget (:func:`not_counted`): embedding requests (they have
their own deadline, ``embedding_deadline_seconds``, and a slow provider degrades to "stored without a vector",
never a failure) and lifecycle hooks (``hook_timeout_seconds``).

SQLite is not bounded by the budget: it is a local file, its waits are lock waits (``busy_timeout``), and
cancelling a statement in flight in aiosqlite's worker thread would leave its connection mid-transaction.

Outside a tool call (the library API, ``doctor``, migrations) no budget is in force and each store keeps its own
per-step timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import anyio


@dataclass(slots=True)
class _Budget:
    ends: float
    """time.monotonic() at which the call's store steps stop."""
    seconds: float
    """The configured budget, for messages."""
    cleanup_seconds: float
    cleanup_ends: float | None = None
    """End of the compensation window, once the first compensation step has begun."""


_budget: ContextVar[_Budget | None] = ContextVar("mcp_memory_call_budget", default=None)
_compensating: ContextVar[bool] = ContextVar("mcp_memory_compensating", default=False)


@contextmanager
def call_deadline(seconds: float, cleanup_seconds: float) -> Iterator[None]:
    """Run a tool call with a budget of ``seconds`` for its store steps (and ``cleanup_seconds`` for its
    compensation). Nested calls keep the outer budget."""
    if _budget.get() is not None:
        yield
        return
    token = _budget.set(_Budget(time.monotonic() + seconds, seconds, cleanup_seconds))
    try:
        yield
    finally:
        _budget.reset(token)


def remaining() -> float | None:
    """Seconds left to the current step's deadline (negative once spent); None outside a tool call."""
    budget = _budget.get()
    if budget is None:
        return None
    ends = budget.cleanup_ends if _compensating.get() and budget.cleanup_ends is not None else budget.ends
    return ends - time.monotonic()


def step_limit(own: float) -> float:
    """How long a store step may take: its own timeout, or what is left of the call's budget if less (zero or
    less: the budget is spent, do not start the step)."""
    left = remaining()
    return own if left is None else min(own, left)


def budget_seconds() -> float | None:
    """The configured budget of the current call (for messages); None outside a tool call."""
    budget = _budget.get()
    return None if budget is None else budget.seconds


def spent() -> bool:
    """Whether the current step's deadline has passed (a timeout then is the call's budget, not the store's)."""
    left = remaining()
    return left is not None and left <= 0


def deadline_message(store: str) -> str:
    """What the caller reads when the call's budget ran out while ``store`` had not answered."""
    seconds = budget_seconds()
    within = f"within the call's deadline ({seconds:g} s)" if seconds is not None else "in time"
    return f"{store} did not answer {within}; retry later"


@contextmanager
def compensation() -> Iterator[None]:
    """Run compensation (undo, failure records) shielded from cancellation, bounded by the call's compensation
    window (see the module docstring); outside a tool call only shielded."""
    budget = _budget.get()
    if budget is not None and budget.cleanup_ends is None:
        budget.cleanup_ends = max(budget.ends, time.monotonic() + budget.cleanup_seconds)
    token = _compensating.set(True)
    try:
        with anyio.CancelScope(shield=True):
            yield
    finally:
        _compensating.reset(token)


@contextmanager
def not_counted() -> Iterator[None]:
    """Work that is not a store step (an embedding request, a hook): the time it takes is given back to the
    call's budget (and to its compensation window), since it has its own deadline."""
    budget = _budget.get()
    started = time.monotonic()
    try:
        yield
    finally:
        if budget is not None:
            took = time.monotonic() - started
            budget.ends += took
            if budget.cleanup_ends is not None:
                budget.cleanup_ends += took


__all__ = [
    "budget_seconds",
    "call_deadline",
    "compensation",
    "deadline_message",
    "not_counted",
    "remaining",
    "spent",
    "step_limit",
]
