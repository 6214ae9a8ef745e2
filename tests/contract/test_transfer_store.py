"""Contract of :class:`~mcp_memory.stores.transfer.TransferStore` (export pages, one-transaction import), run on
every durable adapter (SQLite, Postgres; with Redis as the working store where working memory is involved)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from mcp_memory.errors import Conflict
from mcp_memory.models import CheckpointInfo, Episode, Item, Outcome, Scope, content_hash, to_datetime
from mcp_memory.stores.ports import EpisodeFilter, EventRecord
from mcp_memory.stores.transfer import (
    Entry,
    EpisodeEntry,
    ImportPlan,
    Selection,
    SessionEntry,
    TransferStore,
)
from tests.conftest import StorePair

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


def transfer(pair: StorePair) -> TransferStore:
    assert isinstance(pair.durable, TransferStore)
    return pair.durable


def episode(project: uuid.UUID, agent: uuid.UUID, n: int, session_id: str | None = None) -> Episode:
    return Episode(
        episode_id=uuid.uuid4(),
        project_id=project,
        agent_instance_id=agent,
        session_id=session_id,
        task_type="t",
        task_description=f"deploy the service number {n}",
        outcome=Outcome.SUCCESS,
        created_at=to_datetime(T0 + n),
    )


async def populate(pair: StorePair, project: uuid.UUID, agents: Sequence[uuid.UUID]) -> list[Scope]:
    scopes = [Scope(project, a, f"s{i}") for a in agents for i in range(2)]
    for n, scope in enumerate(scopes):
        await pair.open_session(scope, T0 + n, {"k": Item('"v"', None)})
        items = {"k": Item('"v"', None)}
        digest, size = content_hash(items)
        info = CheckpointInfo(
            checkpoint_id=f"c{n}", created_at=to_datetime(T0 + n), keys_count=1, bytes=size, content_hash=digest
        )
        await pair.durable.record_pause(scope, info, items, EventRecord("pause", T0 + n, 1.0, "ok", {}))
        await pair.durable.add_episode(episode(project, scope.agent_instance_id, n, scope.session_id), None)
    return scopes


async def all_pages(pager: object, sel: Selection, limit: int) -> list[object]:
    rows: list[object] = []
    after = 0
    while True:
        page = await pager(sel, after, limit)  # type: ignore[operator]
        if not page:
            return rows
        assert len(page) <= limit
        rows.extend(r[1:] if len(r) > 2 else r[1] for r in page)
        after = page[-1][0]


async def test_export_pages_cover_the_selection_once_in_keyset_order(stores: StorePair) -> None:
    project, other = uuid.uuid4(), uuid.uuid4()
    agents = [uuid.uuid4(), uuid.uuid4()]
    scopes = await populate(stores, project, agents)
    await populate(stores, other, [uuid.uuid4()])  # never in the project's export
    store = transfer(stores)
    sessions = await all_pages(store.export_sessions, Selection(project), 1)
    assert [(s.agent_instance_id, s.session_id) for s in sessions] == [  # type: ignore[attr-defined]
        (s.agent_instance_id, s.session_id) for s in scopes
    ]
    checkpoints = await all_pages(store.export_checkpoints, Selection(project), 1)
    assert [c[1].info.checkpoint_id for c in checkpoints] == ["c0", "c1", "c2", "c3"]  # type: ignore[index]
    assert all(c[1].items == {"k": Item('"v"', None)} for c in checkpoints)  # type: ignore[index]
    events = await all_pages(store.export_events, Selection(project), 3)
    assert [e[1].event_type for e in events] == ["spawn", "pause"] * 4  # type: ignore[index]
    one_agent = Selection(project, agents[1])
    assert len(await all_pages(store.export_sessions, one_agent, 10)) == 2
    one_session = Selection(project, agents[1], "s0")
    assert len(await all_pages(store.export_checkpoints, one_session, 10)) == 1
    after, got = 0, []
    while page := await store.export_episodes(one_agent, after, 1, False):
        got.extend(e for _, e in page)
        after = page[-1][0]
    assert [e.episode.agent_instance_id for e in got] == [agents[1]] * 2
    assert await store.selection_occupied(one_session)
    assert not await store.selection_occupied(Selection(uuid.uuid4()))
    # The sessions an import into ``project`` would find there already (more than one query's worth asked).
    asked = [(agents[1], "s0"), *((uuid.uuid4(), "s0") for _ in range(300)), (agents[0], "s1"), (agents[1], "s9")]
    assert await store.held_sessions(project, asked) == {(agents[1], "s0"), (agents[0], "s1")}
    assert await store.held_sessions(uuid.uuid4(), asked) == set()
    # The counts of the export's header: what the pages hold.
    assert await store.export_counts(Selection(project)) == {"checkpoints": 4, "events": 8, "episodes": 4}
    assert await store.export_counts(one_agent) == {"checkpoints": 2, "events": 4, "episodes": 2}
    assert await store.export_counts(one_session) == {"checkpoints": 1, "events": 2, "episodes": 1}


async def test_import_is_one_transaction_a_late_conflict_leaves_nothing(stores: StorePair) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    taken = episode(uuid.uuid4(), agent, 1)
    await stores.durable.add_episode(taken, None)  # in another project: its id is taken store-wide
    source = uuid.uuid4()
    await populate(stores, source, [agent])
    store = transfer(stores)
    sessions = [info for _, info in await store.export_sessions(Selection(source), 0, 10)]

    async def entries() -> AsyncIterator[Entry]:
        for info in sessions:
            yield SessionEntry(info.model_copy(update={"project_id": project}))
        yield EpisodeEntry(episode(project, agent, 5))
        yield EpisodeEntry(taken.model_copy(update={"project_id": project}))  # last: clashes

    plan = ImportPlan(project_id=project, keep_ids=True, working=stores.working is stores.durable, vector_model=None)
    with pytest.raises(Conflict):
        await store.import_records(entries(), plan)
    assert not await store.selection_occupied(Selection(project))
    renaming = ImportPlan(project_id=project, keep_ids=False, working=plan.working, vector_model=None)
    await store.import_records(entries(), renaming)
    assert list(renaming.renamed_episodes) == [taken.episode_id]
    assert renaming.counts["sessions"] == 2 and renaming.counts["episodes"] == 2
    # Both imported episodes are searchable in the project (their postings and statistics were made).
    found = await stores.durable.search_episodes(project, "deploy service", None, EpisodeFilter(), 10, T0)
    assert len(found) == 2 and renaming.renamed_episodes[taken.episode_id] in {e.episode_id for e in found}
