"""With working memory in Redis, a pause is a Redis snapshot then a durable record, and a resume a read of its
checkpoint, a Redis restore (or a take of the pause's copy), then a durable record. Between the steps another server
may delete the session and spawn its id again with other state. Nothing of the old session may then land on the new
one: not the old snapshot as a checkpoint (a resume of the new session would restore the old state), not the old
checkpoint's state into the new working memory, not the old call's record or event. The call answers ``conflict``
(the session was deleted and spawned again); the new session keeps its own state and pauses and resumes as usual.
A session whose working memory notes no durable session (one made by an earlier release) still pauses and resumes,
and so does an imported one. Two runtimes on the same stores stand for two servers; the fault points
(mcp_memory.faults) hold one call between its steps. Working memory in Redis, records on SQLite or Postgres."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from mcp_memory.config import Settings
from mcp_memory.errors import Conflict, NotFound
from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.redis.scripts import COPY_MIN_KEYS
from mcp_memory.stores.redis.store import RedisWorkingStore
from mcp_memory.stores.transfer import Selection
from tests.races import events_of, held_at, ids_of
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio

OLD = {"owner": "the deleted session", "secret": "old"}
NEW = {"owner": "the new session"}


async def deleted_and_spawned_again(rt: MemoryRuntime, scope: Scope) -> None:
    """Server ``rt`` deletes the session and spawns its id again with :data:`NEW`."""
    await rt.control.delete_session(*ids_of(scope))
    await rt.lifecycle.spawn(*ids_of(scope), initial_state=NEW)


async def test_a_pause_whose_session_was_spawned_again_before_its_record_leaves_no_checkpoint(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)
    await a.lifecycle.spawn(*ids, initial_state=OLD)
    answers: dict[str, Any] = {}

    async def pause() -> None:
        try:
            await a.lifecycle.pause(*ids, checkpoint_id="late")
        except Conflict as exc:
            answers["pause"] = exc

    await held_at("pause.snapshotted", pause, lambda: deleted_and_spawned_again(b, scope))
    assert "deleted and spawned again" in str(answers.get("pause")), answers
    # The new session has no checkpoint (none holding the old state), no pause event, and its own state.
    assert await b.store.list_checkpoints(scope, 50, None) == []
    assert await events_of(b, scope) == [("spawn", "ok")]
    assert await b.working.state(scope) == NEW
    with pytest.raises(NotFound, match="no checkpoints"):
        await b.lifecycle.resume(*ids)
    assert await b.working.state(scope) == NEW
    # It pauses and resumes as any session: its own state comes back.
    await b.lifecycle.pause(*ids, checkpoint_id="fresh")
    await b.working.set(scope, "owner", "changed")
    resumed = (await b.lifecycle.resume(*ids)).data
    assert resumed["checkpoint_id"] == "fresh" and await b.working.state(scope) == NEW


async def test_a_resume_whose_session_was_spawned_again_before_its_record_records_nothing_on_it(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)
    await a.lifecycle.spawn(*ids, initial_state=OLD)
    await a.lifecycle.pause(*ids, checkpoint_id="old-checkpoint")
    answers: dict[str, Any] = {}

    async def resume() -> None:
        try:
            await a.lifecycle.resume(*ids)
        except Conflict as exc:
            answers["resume"] = exc

    async def respawn_and_pause() -> None:
        await deleted_and_spawned_again(b, scope)
        await b.lifecycle.pause(*ids, checkpoint_id="fresh")

    await held_at("resume.restored", resume, respawn_and_pause)
    assert "deleted and spawned again" in str(answers.get("resume")), answers
    info = await b.store.get_session(scope)
    assert info is not None and info.status == "paused"
    assert await events_of(b, scope) == [("spawn", "ok"), ("pause", "ok")]
    assert await b.working.state(scope) == NEW
    assert [c.checkpoint_id for c in await b.store.list_checkpoints(scope, 50, None)] == ["fresh"]


@pytest.mark.parametrize("keys", [1, COPY_MIN_KEYS], ids=["restored", "copy-taken"])
async def test_a_resume_whose_session_was_spawned_again_after_its_read_leaves_the_new_state(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], keys: int
) -> None:
    """Held between the checkpoint's read and the restore: the old checkpoint's state must not become the new
    session's working memory (restored from its text, or, at ``COPY_MIN_KEYS`` keys, from the pause's copy)."""
    a, b = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)
    old = {**OLD, **{f"k{i}": i for i in range(keys - len(OLD))}}
    await a.lifecycle.spawn(*ids, initial_state=old)
    await a.lifecycle.pause(*ids, checkpoint_id="old-checkpoint")
    answers: dict[str, Any] = {}

    async def resume() -> None:
        try:
            await a.lifecycle.resume(*ids)
        except (Conflict, NotFound) as exc:
            answers["resume"] = exc

    await held_at("resume.read", resume, lambda: deleted_and_spawned_again(b, scope))
    assert isinstance(answers.get("resume"), Conflict), answers
    assert await b.working.state(scope) == NEW
    assert await events_of(b, scope) == [("spawn", "ok")]
    await b.working.set(scope, "written", "after")
    assert await a.working.state(scope) == {**NEW, "written": "after"}


async def test_a_session_whose_working_memory_notes_no_durable_session_still_pauses_and_resumes(
    two_servers: tuple[MemoryRuntime, MemoryRuntime],
) -> None:
    """A session spawned by a release before Redis noted the durable session it was made from (``:i``)."""
    a, _ = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)
    await a.lifecycle.spawn(*ids, initial_state=OLD)
    store = a.working_store
    assert isinstance(store, RedisWorkingStore) and a.settings.redis_url is not None
    with redis.Redis.from_url(a.settings.redis_url) as admin:
        assert admin.delete(store.keys(scope)[3]) == 1
    await a.lifecycle.pause(*ids, checkpoint_id="one")
    await a.working.set(scope, "owner", "changed")
    assert (await a.lifecycle.resume(*ids)).data["checkpoint_id"] == "one"
    assert await a.working.state(scope) == OLD
    assert await events_of(a, scope) == [("spawn", "ok"), ("pause", "ok"), ("resume", "ok")]


async def test_an_imported_session_pauses_and_resumes(
    two_servers: tuple[MemoryRuntime, MemoryRuntime], tmp_path: Path
) -> None:
    """An import's switch notes the durable session it imported (``:i``), written as the durable store keeps it: its
    pauses and resumes land on that session."""
    a, _ = two_servers
    scope = Scope(uuid.uuid4(), uuid.uuid4(), "s")
    ids = ids_of(scope)
    source = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    async with MemoryRuntime(source, embedding_retry=False) as rt:
        await rt.lifecycle.spawn(*ids, initial_state=OLD)
        await rt.lifecycle.pause(*ids, checkpoint_id="exported")
        path = await export_to(rt, Selection(scope.project_id), tmp_path / "session.jsonl")
    assert a.transfer is not None
    await a.transfer.import_file(path)
    await a.working.set(scope, "owner", "changed")
    await a.lifecycle.pause(*ids, checkpoint_id="after-import")
    await a.working.set(scope, "owner", "changed again")
    assert (await a.lifecycle.resume(*ids)).data["checkpoint_id"] == "after-import"
    assert await a.working.state(scope) == {**OLD, "owner": "changed"}
    assert (await a.lifecycle.resume(*ids, checkpoint_id="exported")).data["items_restored"] == len(OLD)
    assert await a.working.state(scope) == OLD
