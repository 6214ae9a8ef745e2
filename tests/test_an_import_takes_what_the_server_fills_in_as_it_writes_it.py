"""The fields the server fills in itself are imported only as it writes them. A hand-edited file brought in a
running session with a terminate result, or a terminated one without (a repeated terminate answers that result), a
terminate result of any shape, an event of any type and outcome, its detail nested or sized past anything the
server records (the call's metadata past ``max_value_bytes``), a negative duration, an episode's context summary
longer than terminate writes: data no call could have written. Each is refused naming the line, with the tools'
code (``too_large`` past a limit, ``invalid_argument`` otherwise), and nothing is written; a terminated session,
an event and a summary at those limits still import as they were. On every store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import InvalidArgument, MemoryServiceError, TooLarge
from mcp_memory.services.import_checks import MAX_DETAIL_BYTES
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from mcp_memory.summary import DEFAULT_BUDGET
from tests.conftest import FakeClock
from tests.transfer_helpers import Records, comparable, export_to, first, line_of, nested, refused, resealed

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

MAX_VALUE_BYTES = 100
"""The importing server's max_value_bytes: the exported metadata keeps to it."""


@pytest.fixture
async def importer(make_settings: Callable[..., Settings], clock: FakeClock) -> AsyncIterator[MemoryRuntime]:
    async with MemoryRuntime(make_settings(max_value_bytes=MAX_VALUE_BYTES), clock=clock) as rt:
        yield rt


def terminated(recs: Records, **result: Any) -> dict[str, Any]:
    """The file's session made terminated as terminate leaves one (consolidated into the file's episode, keys
    kept), with ``result`` changed in its terminate result; the session."""
    session, episode_id = first(recs, "session"), first(recs, "episode")["episode_id"]
    session.update(
        status="terminated",
        sealed=True,
        terminated_at=session["updated_at"],
        episode_id=episode_id,
        terminate_result={
            "episode_id": episode_id,
            "state_items_consolidated": 2,
            "items_cleared": 0,
            "outcome": "success",
            **result,
        },
    )
    return session


def spawn_detail(recs: Records) -> dict[str, Any]:
    detail: dict[str, Any] = first(recs, "event")["detail"]
    assert detail == {"initial_items": 1, "metadata": {"x": "y"}}
    return detail


def padded_error(size: int) -> str:
    """An error sentence that makes the spawn event's detail, without its metadata, ``size`` bytes serialised."""
    return "e" * (size - len(orjson.dumps({"initial_items": 1, "error": ""})))


OTHER = uuid.uuid4()
"""An episode id that no terminate of the file's session recorded."""
RESULT = {"episode_id": None, "state_items_consolidated": 0, "items_cleared": 2, "outcome": "failure"}
"""A terminate result as terminate answers it (no episode, working memory cleared)."""

ERROR_CODES = "invalid_argument, not_found, conflict, too_large, forbidden, unavailable, internal"

CASES: list[tuple[str, type[MemoryServiceError], str, Callable[[Records], object]]] = [
    (
        "session",
        InvalidArgument,
        ": session: session 's1' is paused, yet its terminate_result is set: only terminate sets it",
        lambda recs: first(recs, "session").update(terminate_result=RESULT),
    ),
    (
        "session",
        InvalidArgument,
        ": session: session 's1' is paused, yet its episode_id is set: only terminate sets it",
        lambda recs: first(recs, "session").update(episode_id=first(recs, "episode")["episode_id"]),
    ),
    (
        "session",
        InvalidArgument,
        ": session: session 's1' is running, yet its terminated_at is set: only terminate sets it",
        lambda recs: first(recs, "session").update(status="running", terminated_at="2026-01-01T00:00:00.000000Z"),
    ),
    (
        "session",
        InvalidArgument,
        ": session: session 's1' is terminated, yet its terminate_result is null: its terminate set it",
        lambda recs: terminated(recs).update(terminate_result=None),
    ),
    (
        "session",
        InvalidArgument,
        ": session: session 's1' is terminated, yet its terminated_at is null: its terminate set it",
        lambda recs: terminated(recs).update(terminated_at=None),
    ),
    (
        "session",
        InvalidArgument,
        f": session: session 's1' has episode_id {OTHER}, but its terminate_result names episode ",
        lambda recs: terminated(recs).update(episode_id=str(OTHER)),
    ),
    (
        "session",
        InvalidArgument,
        " is not a valid record: session.terminate_result.",
        lambda recs: terminated(recs).update(terminate_result={"answer": "anything"}),
    ),
    (
        "session",
        InvalidArgument,
        " is not a valid record: session.terminate_result.outcome: Input should be 'success', 'failure' or 'partial'",
        lambda recs: terminated(recs, outcome="done"),
    ),
    (
        "session",
        InvalidArgument,
        " is not a valid record: session.terminate_result.items_cleared: Input should be greater than or equal to 0",
        lambda recs: terminated(recs, items_cleared=-1),
    ),
    (
        "session",
        InvalidArgument,
        " is not a valid record: session.terminate_result.state_items_consolidated: Input should be a valid integer",
        lambda recs: terminated(recs, state_items_consolidated=2.0),
    ),
    (
        "event",
        InvalidArgument,
        ": event: detail: value is nested deeper than 100 levels",
        lambda recs: spawn_detail(recs).update(error=nested(150)),
    ),
    (
        "event",
        TooLarge,
        f": event: detail: it is {MAX_DETAIL_BYTES + 1} bytes serialised without the call's metadata; the server "
        f"adds at most {MAX_DETAIL_BYTES}",
        lambda recs: spawn_detail(recs).update(error=padded_error(MAX_DETAIL_BYTES + 1)),
    ),
    (
        "event",
        TooLarge,
        f": event: detail: metadata is 111 bytes serialised; the limit is {MAX_VALUE_BYTES}",
        lambda recs: spawn_detail(recs).update(metadata={"note": "x" * MAX_VALUE_BYTES}),
    ),
    (
        "event",
        InvalidArgument,
        ": event: detail: metadata must be a JSON object",
        lambda recs: spawn_detail(recs).update(metadata=["x"]),
    ),
    (
        "event",
        InvalidArgument,
        ": event: event_type must not be empty",
        lambda recs: first(recs, "event").update(event_type=""),
    ),
    (
        "event",
        TooLarge,
        ": event: event_type is 101 characters; the limit is 100",
        lambda recs: first(recs, "event").update(event_type="s" * 101),
    ),
    (
        "event",
        InvalidArgument,
        f": event: outcome 'fine' is neither ok nor an error code ({ERROR_CODES})",
        lambda recs: first(recs, "event").update(outcome="fine"),
    ),
    (
        "event",
        InvalidArgument,
        " is not a valid record: event.duration_ms: Input should be greater than or equal to 0",
        lambda recs: first(recs, "event").update(duration_ms=-1.5),
    ),
    (
        "episode",
        TooLarge,
        f": episode: context_summary is {DEFAULT_BUDGET + 2} bytes; the limit is {DEFAULT_BUDGET}",
        lambda recs: first(recs, "episode").update(context_summary="é" * (DEFAULT_BUDGET // 2 + 1)),
    ),
]


async def test_a_field_the_server_fills_in_otherwise_than_it_writes_it_is_refused_naming_the_line(
    importer: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    _, path = exported
    for kind, error, expected, edit in CASES:
        crafted = resealed(path, tmp_path / "filled.jsonl", edit)
        message = await refused(importer, crafted, error)
        assert message.startswith(f"line {line_of(crafted, kind)} of the export file{expected}"), (expected, message)


async def test_a_terminated_session_whose_episode_was_forgotten_imports_keeping_its_result(
    importer: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """forget_episodes drops a session's link to its episode and leaves its terminate result naming it: the
    session's episode_id is null, the result's is not."""
    project, path = exported

    def forgotten(recs: Records) -> None:
        terminated(recs).update(episode_id=None)
        recs.remove(first(recs, "episode"))

    crafted = resealed(path, tmp_path / "forgotten.jsonl", forgotten)
    assert importer.transfer is not None
    await importer.transfer.import_file(crafted)
    again = await export_to(importer, Selection(project), tmp_path / "again.jsonl")
    assert comparable(again)[0][1:] == comparable(crafted)[0][1:]  # the header's counts were the file's before


async def test_a_terminated_session_an_event_and_a_summary_at_the_limits_import_as_they_were(
    importer: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    project, path = exported

    def at_the_limits(recs: Records) -> None:
        terminated(recs)
        spawn_detail(recs).update(error=padded_error(MAX_DETAIL_BYTES))
        first(recs, "event").update(outcome="conflict")
        first(recs, "episode").update(context_summary="é" * (DEFAULT_BUDGET // 2))

    crafted = resealed(path, tmp_path / "limits.jsonl", at_the_limits)
    assert importer.transfer is not None
    await importer.transfer.import_file(crafted)
    again = await export_to(importer, Selection(project), tmp_path / "again.jsonl")
    assert comparable(again)[0] == comparable(crafted)[0]
