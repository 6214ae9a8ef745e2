"""Postgres keeps per session the counts retention reads (migration 0011: ``sessions.unkept_checkpoints``, the
checkpoints not kept, and ``sessions.event_count``): after every kind of writer (spawn, pause, resume, both
strategies' records, retention's pruning by count and by age, delete_checkpoint, keep, events, terminate, episode
edits, delete_session, erase, import, concurrent writers of one session) the stored counts equal a ``COUNT(*)`` of
the rows, and the migration backfills them from a 0010 database's rows. (Every other Postgres test is checked the
same way after it ends: the autouse fixture ``postgres_retention_counts_stay_exact`` of tests/conftest.py.)"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from mcp_memory.config import Settings
from mcp_memory.errors import NotFound
from mcp_memory.models import CheckpointInfo, Item, Scope, to_datetime
from mcp_memory.services.runtime import MemoryRuntime
from mcp_memory.stores.ports import EpisodeChanges, EpisodeSelector, EventRecord, Limits, Retention
from mcp_memory.stores.postgres.schema import head_revision, migrate
from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.transfer import Selection
from tests import pg_servers
from tests.conftest import FakeClock, new_scope
from tests.contract.test_durable_store import episode
from tests.transfer_helpers import export_to

pytestmark = pytest.mark.anyio
T0 = 1_700_000_000.0
LIMITS = Limits(max_keys=100)
ROWS = (
    "SELECT s.unkept_checkpoints, s.event_count, "
    "(SELECT count(*) FROM checkpoints WHERE session_pk = s.id AND NOT keep) AS unkept_rows, "
    "(SELECT count(*) FROM events WHERE session_pk = s.id) AS event_rows "
    "FROM sessions s WHERE project_id = :p AND agent_instance_id = :a AND session_id = :s"
)


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    async with pg_servers.open_postgres_store() as opened:
        yield opened


def ev(kind: str, at: float, outcome: str = "ok") -> EventRecord:
    return EventRecord(kind, at, 0.0, outcome, {})


def checkpoint(checkpoint_id: str, at: float, keep: bool = False) -> CheckpointInfo:
    return CheckpointInfo(
        checkpoint_id=checkpoint_id, created_at=to_datetime(at), keys_count=1, bytes=3, content_hash="sha256:0",
        keep=keep,
    )  # fmt: skip


async def exact(store: PostgresStore, scope: Scope) -> tuple[int, int]:
    """The session's stored counts (checkpoints not kept, events), checked against a count of its rows."""
    async with store._read() as conn:
        row = (
            await conn.execute(text(ROWS), {"p": scope.project_id, "a": scope.agent_instance_id, "s": scope.session_id})
        ).one()
    assert (row.unkept_checkpoints, row.event_count) == (row.unkept_rows, row.event_rows), row
    return int(row.unkept_checkpoints), int(row.event_count)


async def no_drift(store: PostgresStore) -> None:
    """Every session of the store's database counts its rows exactly."""
    assert await pg_servers.count_drift(store._url.database or "") == []


async def test_records_of_the_two_step_strategy_count_every_row(store: PostgresStore) -> None:
    scope = new_scope()
    await store.create_session(scope, None, {}, T0, ev("spawn", T0))
    assert await exact(store, scope) == (0, 1)
    items = {"k": Item('"v"')}
    await store.record_pause(scope, checkpoint("kept", T0 + 1, keep=True), items, ev("pause", T0 + 1))
    assert await exact(store, scope) == (0, 2)
    by_count = Retention(keep_last=2, events_keep_last=4)
    for i in range(2, 7):
        await store.record_pause(scope, checkpoint(f"c{i}", T0 + i), items, ev("pause", T0 + i), by_count)
        await exact(store, scope)
    # Two not kept (and the kept one); the newest four events and the spawn.
    assert await exact(store, scope) == (2, 5)
    await store.record_resume(scope, ev("resume", T0 + 7), by_count)
    assert await exact(store, scope) == (2, 5)
    await store.record_resume(scope, ev("resume", T0 + 8))  # no bound: one more
    assert await exact(store, scope) == (2, 6)
    await store.record_event(scope, ev("pause", T0 + 9, "conflict"))
    assert await exact(store, scope) == (2, 7)
    # By age: every checkpoint not kept but the newest, every event older than the cutoff but the spawn.
    by_age = Retention(max_age_seconds=0.5, events_max_age_seconds=0.5)
    await store.record_pause(scope, checkpoint("c10", T0 + 10), items, ev("pause", T0 + 10), by_age)
    assert await exact(store, scope) == (1, 2)
    # delete_checkpoint of a kept one, of one not kept, and of an unknown one (nothing written).
    assert await store.delete_checkpoint(scope, "kept", ev("delete_checkpoint", T0 + 11))
    assert await exact(store, scope) == (1, 3)
    assert await store.delete_checkpoint(scope, "c10", ev("delete_checkpoint", T0 + 12))
    assert await exact(store, scope) == (0, 4)
    assert not await store.delete_checkpoint(scope, "c10", ev("delete_checkpoint", T0 + 13))
    assert await exact(store, scope) == (0, 4)
    await store.record_terminate(scope, None, None, {"ok": True}, ev("terminate", T0 + 14))
    assert await exact(store, scope) == (0, 5)
    await no_drift(store)


async def test_the_one_transaction_lifecycle_counts_every_row(store: PostgresStore) -> None:
    scope = new_scope()
    await store.spawn_session(scope, None, {}, T0, ev("spawn", T0), {"k": Item('"v"')}, LIMITS)
    assert await exact(store, scope) == (0, 1)
    retention = Retention(keep_last=3, events_keep_last=6)
    for i in range(1, 9):
        info = checkpoint(f"c{i}", T0 + i, keep=i == 1)
        await store.pause_session(scope, info, T0 + i, ev("pause", T0 + i), retention)
        assert await store.resume_session(scope, None, i % 2 == 0, T0 + i, LIMITS, ev("resume", T0 + i), retention)
        await exact(store, scope)
    assert await exact(store, scope) == (3, 7)  # the kept one aside; the newest six events and the spawn
    # A resume that writes nothing (over the key limit) counts nothing.
    with pytest.raises(Exception):  # noqa: B017 - TooLarge; what matters is that nothing was counted
        await store.resume_session(scope, None, True, T0 + 9, Limits(max_keys=0), ev("resume", T0 + 9), retention)
    assert await exact(store, scope) == (3, 7)


async def test_spawns_episode_edits_and_deletions_keep_every_session_exact(store: PostgresStore) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    scopes = [Scope(project, agent, f"s{i}") for i in range(3)]
    token = "spawn-token"
    await store.begin_spawn(scopes[0], None, {}, T0, ev("spawn", T0), token, 60)
    await store.complete_spawn(scopes[0], token, T0)
    for scope in scopes[1:]:
        await store.create_session(scope, None, {}, T0, ev("spawn", T0))
    for scope in scopes:
        await store.record_pause(scope, checkpoint("c", T0 + 1), {}, ev("pause", T0 + 1))
    # Episode edits write an event on the episode's session.
    ep = episode(project, "a task", agent_instance_id=agent, session_id="s1")
    await store.add_episode(ep, None)
    await store.update_episode(project, ep.episode_id, EpisodeChanges(importance_score=0.9), ev("update", T0 + 2))
    assert await exact(store, scopes[1]) == (1, 3)
    await store.forget_episodes(project, EpisodeSelector(episode_ids=(ep.episode_id,)), ev("forget", T0 + 3))
    assert await exact(store, scopes[1]) == (1, 4)
    await store.delete_session(scopes[0], keep_episodes=False, now=T0 + 4)
    await no_drift(store)
    await store.erase(project, agent, "s2", T0 + 5, dry_run=False)
    assert await exact(store, scopes[1]) == (1, 4)
    await no_drift(store)


async def test_concurrent_writers_of_one_session_keep_the_counts_exact(store: PostgresStore) -> None:
    """Pauses of both strategies, resumes, events and deletions of one session at once: each counts under the
    session's row lock, so none is lost, and retention still holds its bounds."""
    scope = new_scope()
    await store.spawn_session(scope, None, {}, T0, ev("spawn", T0), {"k": Item('"v"')}, LIMITS)
    retention = Retention(keep_last=3, events_keep_last=5)

    async def writer(i: int) -> None:
        at = T0 + 1 + i
        if i % 4 == 0:
            await store.pause_session(scope, checkpoint(f"p{i}", at), at, ev("pause", at), retention)
        elif i % 4 == 1:
            await store.record_pause(scope, checkpoint(f"r{i}", at), {}, ev("pause", at), retention)
        elif i % 4 == 2:
            # Run before the first batch's pauses commit (or once the checkpoints are deleted), it has nothing to
            # resume: not_found, and nothing counted.
            with contextlib.suppress(NotFound):
                await store.resume_session(scope, None, False, at, LIMITS, ev("resume", at), retention)
        else:
            await store.delete_checkpoint(scope, f"p{i - 3}", ev("delete_checkpoint", at))
            await store.record_event(scope, ev("pause", at, "conflict"))

    for batch in range(4):
        async with anyio.create_task_group() as tg:
            for i in range(batch * 8, batch * 8 + 8):
                tg.start_soon(writer, i)
        await exact(store, scope)
    # Deletions and events prune nothing: the next pause brings the session back within the bounds.
    at = T0 + 100
    await store.pause_session(scope, checkpoint("last", at), at, ev("pause", at), retention)
    assert await exact(store, scope) == (3, 6)  # the newest five events and the spawn


async def test_an_import_counts_the_sessions_it_writes(tmp_path: Path) -> None:
    project = uuid.uuid4()
    source = MemoryRuntime(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"), clock=FakeClock(T0))
    async with source:
        for sid in ("one", "two"):
            agent = uuid.uuid4()
            await source.lifecycle.spawn(project, agent, sid, initial_state={"k": 1})
            for i in range(3):
                await source.lifecycle.pause(project, agent, sid, keep=i == 0)
            await source.lifecycle.resume(project, agent, sid)
        exported = await export_to(source, Selection(project), tmp_path / "a.jsonl", vectors=False)
    target = MemoryRuntime(Settings(database_url=pg_servers.database_url(await pg_servers.migrated_database())))
    async with target:
        assert target.transfer is not None
        await target.transfer.import_file(exported)
        store = target.store
        assert isinstance(store, PostgresStore)
        async with store._read() as conn:
            counts = (await conn.execute(text("SELECT unkept_checkpoints, event_count FROM sessions"))).all()
        assert sorted(tuple(r) for r in counts) == [(2, 5), (2, 5)]  # spawn, 3 pauses, resume each
        await no_drift(store)


async def test_the_migration_counts_the_rows_of_a_0010_database() -> None:
    name = await pg_servers.migrated_database()
    url = pg_servers.database_url(name)
    store = PostgresStore(url)
    await store.start()
    scope = new_scope()
    try:
        await store.create_session(scope, None, {}, T0, ev("spawn", T0))
        for i in range(4):
            await store.record_pause(scope, checkpoint(f"c{i}", T0 + i, keep=i == 0), {}, ev("pause", T0 + i))
    finally:
        await store.close()
    _, down = await migrate(url, revision="0010", downgrade=True)
    assert down.revision == "0010"
    # Rows written at 0010 (no counts there): a session of its own, and more rows of the first.
    other = new_scope()
    engine = PostgresStore(url)._create_engine()
    try:
        async with engine.begin() as conn:
            pk = (
                await conn.execute(
                    text(
                        "INSERT INTO sessions (project_id, agent_instance_id, session_id, status, created_at, "
                        "updated_at) VALUES (:p, :a, :s, 'running', now(), now()) RETURNING id"
                    ),
                    {"p": other.project_id, "a": other.agent_instance_id, "s": other.session_id},
                )
            ).scalar_one()
            first = (
                await conn.execute(
                    text("SELECT id FROM sessions WHERE session_id = :s AND id <> :pk"),
                    {"s": scope.session_id, "pk": pk},
                )
            ).scalar_one()
            for session_pk, n_events, keeps in ((pk, 3, (True, False)), (first, 2, (False,))):
                for _ in range(n_events):
                    await conn.execute(
                        text(
                            "INSERT INTO events (session_pk, event_type, at, duration_ms, outcome) "
                            "VALUES (:pk, 'pause', now(), 0, 'ok')"
                        ),
                        {"pk": session_pk},
                    )
                for j, keep in enumerate(keeps):
                    await conn.execute(
                        text(
                            "INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, "
                            "content_hash, state, state_bytes, keep) VALUES (:pk, :cid, now(), 0, 0, 'sha256:0', "
                            "CAST('{}' AS jsonb), 2, :keep)"
                        ),
                        {"pk": session_pk, "cid": f"old{j}", "keep": keep},
                    )
    finally:
        await engine.dispose()
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision()
    store = PostgresStore(url)
    await store.start()
    try:
        assert await exact(store, scope) == (4, 7)  # 3 + 1 not kept; spawn, 4 pauses, 2 more
        assert await exact(store, other) == (1, 3)
        await no_drift(store)
    finally:
        await store.close()
