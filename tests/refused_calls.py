"""Calls a tool must refuse without writing anything, through the SDK's client: their arguments, built for fresh
ids (:class:`~tests.test_string_arguments_round_trip.Ids`), and the running session each is made on, checked to be
as it was afterwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp import Client

from tests.test_string_arguments_round_trip import Ids, ok, read

EPISODES_URI = "memory://projects/{p}/episodes"
SESSION_URI = "memory://projects/{p}/agents/{a}/sessions/{s}"

Args = Callable[[Ids], dict[str, Any]]
"""A call's arguments for the ids of one case."""


def scoped(**fields: Any) -> Args:
    """A call on the case's session, with ``fields``."""
    return lambda ids: ids.scope(**fields)


def episode(**fields: Any) -> Args:
    """``record_episode`` in the case's project and agent, with ``fields`` over a plain successful episode."""

    def args(ids: Ids) -> dict[str, Any]:
        base = {"project_id": ids.p, "agent_instance_id": ids.a, "task_type": "t", "task_description": "d"}
        return {**base, "outcome": "success", **fields}

    return args


async def running_session(c: Client, ids: Ids) -> str:
    """The session of ``ids`` spawned with working memory ``{"k": "v"}``, paused (a checkpoint labelled "before")
    and resumed; the checkpoint's id."""
    await ok(c, "spawn", **ids.scope(initial_state={"k": "v"}))
    checkpoint: str = (await ok(c, "pause", **ids.scope(label="before")))["checkpoint_id"]
    await ok(c, "resume", **ids.scope())
    return checkpoint


async def assert_as_it_was(c: Client, ids: Ids, checkpoint: str, case: str) -> None:
    """The :func:`running_session` of ``ids`` is as it was made: running, its working memory, its one checkpoint,
    and no episode in its project."""
    session = await read(c, SESSION_URI.format(p=ids.p, a=ids.a, s=ids.s))
    assert (session["status"], session["working_memory"]) == ("running", {"k": "v"}), case
    listed = (await ok(c, "list_checkpoints", **ids.scope()))["checkpoints"]
    assert [(cp["checkpoint_id"], cp["label"]) for cp in listed] == [(checkpoint, "before")], case
    assert (await read(c, EPISODES_URI.format(p=ids.p)))["episodes"] == [], case
