"""An import takes a record only within the limits the tools apply on the importing server: texts, labels, lessons
and importance as ``record_episode`` and ``pause`` take them, metadata within its ``max_value_bytes``, a checkpoint's
state within its ``max_keys_per_session``. A hand-edited file (or one from a server with larger limits) brought in
an episode of 20,001 characters, an empty label, 101 lessons, importance 1.5, metadata of any size: data no call
could have written. Each is refused with the tools' code (``too_large`` / ``invalid_argument``) naming the line, and
nothing is written; an episode as terminate wrote it (its list of the session's keys on top of the caller's
metadata) still imports. On every store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.errors import InvalidArgument, MemoryServiceError, TooLarge
from mcp_memory.models import Item, content_hash
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.transfer import Selection
from tests.conftest import FakeClock
from tests.transfer_helpers import Records, comparable, export_to, first, line_of, nested, refused, resealed

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite", "redis", "postgres")]

MAX_VALUE_BYTES = 100
MAX_KEYS = 2
"""The importing server's settings: the exported session's metadata and its checkpoint's two keys keep to them."""


@pytest.fixture
async def importer(make_settings: Callable[..., Settings], clock: FakeClock) -> AsyncIterator[MemoryRuntime]:
    async with MemoryRuntime(
        make_settings(max_value_bytes=MAX_VALUE_BYTES, max_keys_per_session=MAX_KEYS), clock=clock
    ) as rt:
        yield rt


def big_metadata() -> dict[str, str]:
    return {"note": "x" * MAX_VALUE_BYTES}


CASES: list[tuple[str, type[MemoryServiceError], str, Callable[[Records], None]]] = [
    (
        "episode",
        TooLarge,
        "task_description is 20001 characters; the limit is 20000",
        lambda recs: first(recs, "episode").update(task_description="x" * 20_001),
    ),
    (
        "episode",
        InvalidArgument,
        "task_description must not be empty",
        lambda recs: first(recs, "episode").update(task_description=" "),
    ),
    (
        "episode",
        TooLarge,
        "task_type is 101 characters; the limit is 100",
        lambda recs: first(recs, "episode").update(task_type="t" * 101),
    ),
    (
        "episode",
        TooLarge,
        "outcome_details is 20001 characters",
        lambda recs: first(recs, "episode").update(outcome_details="d" * 20_001),
    ),
    (
        "episode",
        TooLarge,
        "lessons_learned has 101 entries; the limit is 100",
        lambda recs: first(recs, "episode").update(lessons_learned=["a lesson"] * 101),
    ),
    (
        "episode",
        TooLarge,
        "a lesson is 4001 characters; the limit is 4000",
        lambda recs: first(recs, "episode").update(lessons_learned=["l" * 4_001]),
    ),
    (
        "episode",
        InvalidArgument,
        "a lesson must not be empty",
        lambda recs: first(recs, "episode").update(lessons_learned=[""]),
    ),
    (
        "episode",
        InvalidArgument,
        "importance_score must be between 0 and 1, got 1.5",
        lambda recs: first(recs, "episode").update(importance_score=1.5),
    ),
    (
        "episode",
        TooLarge,
        f"metadata is 111 bytes serialised; the limit is {MAX_VALUE_BYTES}",
        lambda recs: first(recs, "episode").update(metadata=big_metadata()),
    ),
    (
        "episode",
        TooLarge,
        f"metadata is 117 bytes serialised; the limit is {MAX_VALUE_BYTES}",
        # Not a list of keys as terminate makes it: counted as any metadata.
        lambda recs: first(recs, "episode").update(metadata={"state_keys": "k" * MAX_VALUE_BYTES}),
    ),
    (
        "checkpoint",
        TooLarge,
        "label is 257 characters; the limit is 256",
        lambda recs: first(recs, "checkpoint").update(label="l" * 257),
    ),
    (
        "checkpoint",
        InvalidArgument,
        "label must not be empty",
        lambda recs: first(recs, "checkpoint").update(label=""),
    ),
    (
        "checkpoint",
        TooLarge,
        f"metadata is 111 bytes serialised; the limit is {MAX_VALUE_BYTES}",
        lambda recs: first(recs, "checkpoint").update(metadata=big_metadata()),
    ),
    (
        "session",
        TooLarge,
        f"metadata is 111 bytes serialised; the limit is {MAX_VALUE_BYTES}",
        lambda recs: first(recs, "session").update(metadata=big_metadata()),
    ),
    (
        "session",
        InvalidArgument,
        "value is nested deeper than 100 levels",
        lambda recs: first(recs, "session").update(metadata=nested(151)),
    ),
]


async def test_a_field_past_the_limit_a_call_keeps_to_is_refused_with_the_calls_code_naming_the_line(
    importer: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    _, path = exported
    for kind, error, expected, edit in CASES:
        crafted = resealed(path, tmp_path / "limits.jsonl", edit)
        message = await refused(importer, crafted, error)
        assert message.startswith(f"line {line_of(crafted, kind)} of the export file: {kind}: {expected}"), message
        assert message.endswith("; nothing was imported"), message


async def test_a_checkpoint_holding_more_keys_than_a_session_may_is_too_large(
    importer: MemoryRuntime, exported: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    """A resume of it would be refused: ``max_keys_per_session`` bounds what a pause takes too."""
    _, path = exported

    def one_key_more(recs: Records) -> None:
        checkpoint = first(recs, "checkpoint")
        checkpoint["state"]["c"] = ["3", None]
        digest, size = content_hash({k: Item(v, exp) for k, (v, exp) in checkpoint["state"].items()})
        checkpoint.update(keys_count=3, bytes=size, content_hash=digest)  # as a pause of three keys computes them

    crafted = resealed(path, tmp_path / "keys.jsonl", one_key_more)
    message = await refused(importer, crafted, TooLarge)
    assert message.startswith(
        f"line {line_of(crafted, 'checkpoint')} (checkpoint 'c1'): its state holds 3 keys; this server's limit is "
        f"{MAX_KEYS} per session (max_keys_per_session)"
    ), message


async def test_an_episode_terminate_wrote_imports_under_the_limits_it_was_written_under(
    make_settings: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    """Terminate adds its list of the session's keys to metadata that was within ``max_value_bytes``: the episode's
    metadata is larger than the limit, and the file still imports on a server with the same limits."""
    project, agent = uuid.uuid4(), uuid.uuid4()
    limits = {"max_value_bytes": MAX_VALUE_BYTES, "max_keys_per_session": 10}
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}", **limits)
    meta = {"note": "n" * (MAX_VALUE_BYTES - 20)}
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(project, agent, "s1", initial_state={f"key-number-{i}": i for i in range(8)})
        await rt.lifecycle.terminate(project, agent, "s1", metadata=meta)
        path = await export_to(rt, Selection(project), tmp_path / "export.jsonl")
    episode = first(comparable(path)[0], "episode")
    assert len(str(episode["metadata"])) > MAX_VALUE_BYTES and episode["metadata"]["state_keys"]

    async with MemoryRuntime(make_settings(**limits), clock=clock) as rt:
        assert rt.transfer is not None
        await rt.transfer.import_file(path)
        again = await export_to(rt, Selection(project), tmp_path / "again.jsonl")
        assert first(comparable(again)[0], "episode") == episode
