"""Forget and edit episodes, on each durable store: a forgotten episode leaves nothing behind (row, vector,
postings, its share of the project's full-text statistics), so every other score is the one a store that never
held it gives; another project is untouched; an edit re-indexes the text; a repeated episode is stored once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from mcp_memory.models import Episode, Outcome, Scope
from mcp_memory.stores.ports import DurableStore, EpisodeChanges, EpisodeFilter, EpisodeSelector, EventRecord
from mcp_memory.stores.sqlite.store import SqliteStore
from tests.conftest import make_store
from tests.contract.test_durable_store import T0, embed, episode

pytestmark = pytest.mark.anyio

NOW = T0 + 3600.0
QUERIES = ("deploy the web service", "zebra quantum migration", "database index rebuild", "flaky test retry")
TEXTS = (
    "deploy the web service behind a load balancer",
    "rebuild the database index after a bulk import",
    "retry the flaky test with a fixed seed",
    "deploy a database migration with zero downtime",
    "web service timeout fixed by a retry budget",
)
FORGOTTEN = "zebra quantum migration of the web service database"


@pytest.fixture(params=["sqlite", "postgres"])
async def durable_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def fresh(name: str, tmp_path: Path, tag: str) -> DurableStore:
    where = tmp_path / tag
    where.mkdir()
    store: DurableStore = await make_store(name, where)
    return store


@pytest.fixture
async def store(durable_name: str, tmp_path: Path) -> AsyncIterator[DurableStore]:
    s = await fresh(durable_name, tmp_path, "main")
    try:
        yield s
    finally:
        await s.close()


def others(project: uuid.UUID, agent: uuid.UUID) -> list[Episode]:
    return [
        episode(project, t, created=T0 + i * 60, agent_instance_id=agent, importance=0.3 + 0.1 * i, lessons=[f"l{i}"])
        for i, t in enumerate(TEXTS)
    ]


async def add_all(store: DurableStore, episodes: list[Episode]) -> None:
    for ep in episodes:
        await store.add_episode(ep, embed(f"{ep.task_type} {ep.task_description}"), "hash-test")


async def scores(store: DurableStore, project: uuid.UUID, mode: Any = "hybrid") -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for q in QUERIES:
        hits = await store.search_episodes(project, q, embed(q), EpisodeFilter(), 20, NOW, mode, "hash-test")
        out[q] = {h.task_description: h.score for h in hits}
    return out


async def text_statistics(store: DurableStore, project: uuid.UUID) -> tuple[Any, ...]:
    """The project's full-text statistics as stored (rows with a zero count read as absent)."""
    async with store._read() as conn:  # type: ignore[attr-defined]
        if isinstance(store, SqliteStore):
            p = str(project)
            counts = (
                await conn.execute(text("SELECT episodes, tokens FROM text_projects WHERE project_id = :p"), {"p": p})
            ).all()
            terms = (
                await conn.execute(
                    text(
                        "SELECT t.term, t.episodes FROM text_terms t JOIN text_projects p ON p.id = t.project_pk "
                        "WHERE p.project_id = :p AND t.episodes > 0 ORDER BY t.term"
                    ),
                    {"p": p},
                )
            ).all()
            postings = (
                await conn.execute(
                    text(
                        "SELECT x.term, e.task_description, x.freq, x.episode_tokens FROM episode_terms x "
                        "JOIN text_projects p ON p.id = x.project_pk JOIN episodes e ON e.id = x.episode_pk "
                        "WHERE p.project_id = :p ORDER BY 1, 2"
                    ),
                    {"p": p},
                )
            ).all()
            orphans = (
                await conn.execute(
                    text(
                        "SELECT COUNT(*) FROM episode_terms x "
                        "WHERE NOT EXISTS (SELECT 1 FROM episodes e WHERE e.id = x.episode_pk)"
                    )
                )
            ).scalar_one()
            return (counts, terms, postings, orphans)
        counts = (
            await conn.execute(
                text("SELECT episodes, tokens FROM project_episode_counts WHERE project_id = :p"), {"p": project}
            )
        ).all()
        terms = (
            await conn.execute(
                text(
                    "SELECT lexeme, episodes FROM project_lexeme_counts WHERE project_id = :p AND episodes > 0 "
                    "ORDER BY lexeme"
                ),
                {"p": project},
            )
        ).all()
        return (counts, terms)


def ids(episodes: list[Episode]) -> list[uuid.UUID]:
    return [e.episode_id for e in episodes]


async def test_a_forgotten_episode_leaves_scores_as_if_never_stored(
    store: DurableStore, durable_name: str, tmp_path: Path
) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    kept = others(project, agent)
    gone = episode(project, FORGOTTEN, created=T0 + 30, agent_instance_id=agent, lessons=["zebra lessons"])
    await add_all(store, [kept[0], kept[1], gone, *kept[2:]])
    before = await scores(store, project)
    assert FORGOTTEN in before["zebra quantum migration"]

    forgotten = await store.forget_episodes(
        project, EpisodeSelector(episode_ids=(gone.episode_id,)), EventRecord("forget_episodes", NOW, 0.0, "ok")
    )
    assert [f.episode_id for f in forgotten] == [gone.episode_id]
    assert await store.get_episode(project, gone.episode_id) is None
    assert gone.episode_id not in ids(await store.recent_episodes([project], 100))
    for mode in ("hybrid", "text", "vector"):
        after = await scores(store, project, mode)
        assert all(FORGOTTEN not in hits for hits in after.values())
    # Nothing of it is left to be found by its own words, nor by its vector.
    assert not (await store.search_episodes(project, "zebra", None, EpisodeFilter(), 10, NOW, "text"))

    never = await fresh(durable_name, tmp_path, "never")
    try:
        await add_all(never, kept)
        for mode in ("hybrid", "text", "vector"):
            assert await scores(store, project, mode) == await scores(never, project, mode), mode
        assert await text_statistics(store, project) == await text_statistics(never, project)
    finally:
        await never.close()


async def test_a_forget_in_one_project_leaves_another_identical(store: DurableStore) -> None:
    a, b, agent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await add_all(store, others(a, agent) + others(b, agent))
    before = (await scores(store, b), await text_statistics(store, b), await store.recent_episodes([b], 100))
    n = await store.count_episodes(a, EpisodeSelector())
    assert n == len(TEXTS)
    gone = await store.forget_episodes(a, EpisodeSelector(), EventRecord("forget_episodes", NOW, 0.0, "ok"))
    assert len(gone) == len(TEXTS)
    assert await store.recent_episodes([a], 100) == []
    assert await scores(store, a) == {q: {} for q in QUERIES}
    after = (await scores(store, b), await text_statistics(store, b), await store.recent_episodes([b], 100))
    assert after == before


async def test_a_filter_forgets_only_what_it_matches(store: DurableStore) -> None:
    project, agent, other_agent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    mine = others(project, agent)
    theirs = [
        episode(
            project,
            "failed deploy of the web service",
            created=T0,
            agent_instance_id=other_agent,
            outcome=Outcome.FAILURE,
            session_id="s1",
        ),
        episode(
            project,
            "failed database index rebuild",
            created=T0 + 7200,
            agent_instance_id=other_agent,
            outcome=Outcome.FAILURE,
            session_id="s1",
        ),
    ]
    await add_all(store, mine + theirs)
    sel = EpisodeSelector(agent_instance_id=other_agent, outcome=Outcome.FAILURE, before=T0 + 3600)
    assert await store.count_episodes(project, sel) == 1
    # An episode id of another project is not this project's: nothing matches, nothing goes.
    other_project = EpisodeSelector(episode_ids=(uuid.uuid4(), mine[0].episode_id))
    assert await store.count_episodes(uuid.uuid4(), other_project) == 0
    gone = await store.forget_episodes(project, sel, EventRecord("forget_episodes", NOW, 0.0, "ok"))
    assert [g.episode_id for g in gone] == [theirs[0].episode_id]
    left = {e.episode_id for e in await store.recent_episodes([project], 100)}
    assert left == set(ids(mine)) | {theirs[1].episode_id}
    by_session = EpisodeSelector(session_id="s1", task_type="coding")
    assert await store.count_episodes(project, by_session) == 1


async def test_a_forget_is_recorded_on_the_episodes_session(store: DurableStore) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    scope = Scope(project, agent, "sess-1")
    await store.create_session(scope, None, {}, T0, EventRecord("spawn", T0, 0.0, "ok"))
    ep = episode(project, "task of a session", agent_instance_id=agent, session_id="sess-1")
    lone = episode(project, "task of no session", agent_instance_id=agent)
    await add_all(store, [ep, lone])
    await store.forget_episodes(
        project, EpisodeSelector(agent_instance_id=agent), EventRecord("forget_episodes", NOW, 0.0, "ok")
    )
    events = await store.list_events(scope, 10)
    assert [e.event_type for e in events] == ["spawn", "forget_episodes"]
    assert events[-1].detail == {"forgotten": 1, "episode_ids": [str(ep.episode_id)]}


async def test_an_edit_reindexes_the_text_as_if_recorded_so(
    store: DurableStore, durable_name: str, tmp_path: Path
) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    kept = others(project, agent)
    target = kept[1]
    await add_all(store, kept)
    new_lessons = ["zebra quantum lesson about the index"]
    vector = embed("edited")
    updated = await store.update_episode(
        project,
        target.episode_id,
        EpisodeChanges(
            lessons_learned=new_lessons,
            outcome_details="rebuilt twice",
            importance_score=0.9,
            metadata={"edited": True},
            reembed=True,
            embedding=vector,
            embedding_model="hash-test",
        ),
        EventRecord("update_episode", NOW, 0.0, "ok"),
    )
    assert updated is not None
    assert (updated.lessons_learned, updated.outcome_details, updated.importance_score, updated.metadata) == (
        new_lessons,
        "rebuilt twice",
        0.9,
        {"edited": True},
    )
    assert updated.created_at == target.created_at
    hits = await store.search_episodes(project, "zebra", None, EpisodeFilter(), 10, NOW, "text")
    assert [h.episode_id for h in hits] == [target.episode_id]
    assert not await store.search_episodes(project, "l1", None, EpisodeFilter(), 10, NOW, "text")

    never = await fresh(durable_name, tmp_path, "never")
    try:
        as_edited = target.model_copy(
            update={
                "lessons_learned": new_lessons,
                "outcome_details": "rebuilt twice",
                "importance_score": 0.9,
                "metadata": {"edited": True},
            }
        )
        for ep in kept:
            chosen = as_edited if ep is target else ep
            await never.add_episode(
                chosen, vector if ep is target else embed(f"{ep.task_type} {ep.task_description}"), "hash-test"
            )
        assert await scores(store, project, "text") == await scores(never, project, "text")
        assert await scores(store, project) == await scores(never, project)
        assert await text_statistics(store, project) == await text_statistics(never, project)
    finally:
        await never.close()
    assert (
        await store.update_episode(
            uuid.uuid4(), target.episode_id, EpisodeChanges(importance_score=0.1), EventRecord("u", NOW, 0.0, "ok")
        )
        is None
    )


async def test_the_same_episode_twice_is_stored_once(store: DurableStore) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    first = episode(project, "write the report", agent_instance_id=agent, session_id="s", lessons=["a", "b"])
    again = first.model_copy(
        update={"episode_id": uuid.uuid4(), "created_at": first.created_at, "importance_score": 0.9}
    )
    assert await store.add_episode(first, embed("x"), "hash-test") == first.episode_id
    assert await store.same_episode(again) == first.episode_id
    assert await store.add_episode(again, embed("x"), "hash-test") == first.episode_id
    assert ids(await store.recent_episodes([project], 10)) == [first.episode_id]
    # Any difference in agent, session, text or outcome is another episode.
    for change in (
        {"session_id": None},
        {"agent_instance_id": uuid.uuid4()},
        {"lessons_learned": ["a"]},
        {"outcome": Outcome.FAILURE},
        {"task_description": "write the report!"},
    ):
        other = first.model_copy(update={"episode_id": uuid.uuid4(), **change})
        assert await store.add_episode(other, None) == other.episode_id, change
    assert len(await store.recent_episodes([project], 10)) == 6


async def test_the_nearest_episode_is_of_the_same_task_type_and_outcome(store: DurableStore) -> None:
    project, agent = uuid.uuid4(), uuid.uuid4()
    a = episode(project, "deploy the web service", agent_instance_id=agent)
    b = episode(project, "deploy the web service", agent_instance_id=agent, outcome=Outcome.FAILURE)
    await add_all(store, [a, b])
    found = await store.nearest_episode(
        project, embed("coding deploy the web service"), "hash-test", "coding", Outcome.SUCCESS
    )
    assert found is not None and found[0] == a.episode_id and found[1] == pytest.approx(1.0, abs=1e-5)
    assert await store.nearest_episode(project, embed("x"), "hash-test", "other", Outcome.SUCCESS) is None
    assert await store.nearest_episode(uuid.uuid4(), embed("x"), "hash-test", "coding", Outcome.SUCCESS) is None


async def test_the_nearest_episode_of_an_agent_is_among_its_own(store: DurableStore) -> None:
    """What a merge looks for (it never crosses agents): the agent's own nearest episode, though another agent's is
    nearer, and none when the agent has none."""
    project, mine, theirs = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    nearest = episode(project, "deploy the web service", agent_instance_id=theirs)
    own = episode(project, "deploy the web service twice", agent_instance_id=mine)
    await add_all(store, [nearest, own])
    query = embed("coding deploy the web service")
    for model in ("hash-test", None):
        anyone = await store.nearest_episode(project, query, model, "coding", Outcome.SUCCESS)
        assert anyone is not None and anyone[0] == nearest.episode_id
        found = await store.nearest_episode(project, query, model, "coding", Outcome.SUCCESS, agent_instance_id=mine)
        assert found is not None and found[0] == own.episode_id and found[1] < anyone[1]
        nobody = uuid.uuid4()
        assert await store.nearest_episode(project, query, model, "coding", Outcome.SUCCESS, nobody) is None
