"""Postgres keeps each episode's words with their weighted frequencies (``episodes.search_weights``, migration 0014),
so BM25 reads a candidate's frequencies by key instead of unnesting its tsvector. Every writer keeps the column equal
to what the tsvector says (a trigger), a row without it (written before 0014) is ranked from the tsvector, and both
ways give the same scores to the last bit."""

from __future__ import annotations

import importlib
import json
import math
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from mcp_memory.models import Episode, Outcome, to_datetime
from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.postgres import search
from mcp_memory.stores.postgres.schema import head_revision, migrate
from mcp_memory.stores.postgres.store import PostgresStore
from tests import pg_servers

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
MODEL = "m@256"
TOPICS = ("deploy", "migration", "invoice", "latency", "backup", "certificate", "payments", "search")
WORDS = ("rollback", "canary", "postgres", "redis", "timeout", "retry", "alert", "schema", "queue", "cache")
WEIGHTS_MISMATCH = (
    "SELECT e.id FROM episodes e WHERE e.search_weights IS DISTINCT FROM (SELECT COALESCE(jsonb_object_agg("
    f"u.lexeme, {search._FREQUENCY}), CAST('{{}}' AS jsonb)) FROM unnest(e.search_text) AS u)"
)
"""The rows whose stored weights are not their tsvector's (none, if every writer keeps them)."""
OBJECTS = (
    "SELECT count(*) FROM pg_class WHERE relname = 'episodes' AND 'toast_tuple_target=8160' = ANY (reloptions) "
    "UNION ALL SELECT count(*) FROM pg_trigger WHERE tgname = 'episodes_search_weights' "
    "UNION ALL SELECT count(*) FROM pg_proc "
    "WHERE proname IN ('mcpmem_search_weights', 'mcpmem_episode_search_weights') "
    "UNION ALL SELECT count(*) FROM information_schema.columns WHERE table_name = 'episodes' "
    "AND column_name = 'search_weights'"
)


@pytest.fixture
async def url() -> str:
    return pg_servers.database_url(await pg_servers.migrated_database())


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(url, embedding_dimension=256)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def _execute(url: str, sql: str, params: dict[str, object] | None = None) -> None:
    """``sql`` committed (a writer other than the store, or an earlier release's row)."""
    engine = PostgresStore(url)._create_engine()
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params or {})
    finally:
        await engine.dispose()


def _vector(i: int, dimension: int = 256) -> list[float]:
    angle = i * 0.37
    vector = [0.0] * dimension
    vector[0], vector[1] = math.cos(angle), math.sin(angle)
    return vector


async def _load(store: PostgresStore, n: int) -> uuid.UUID:
    """A project of ``n`` episodes whose fields share words in varied numbers and classes."""
    project = uuid.uuid4()
    for i in range(n):
        topic, word, other = TOPICS[i % len(TOPICS)], WORDS[i % len(WORDS)], WORDS[(i * 3 + 1) % len(WORDS)]
        ep = Episode(
            episode_id=uuid.uuid4(),
            project_id=project,
            agent_instance_id=uuid.uuid4(),
            task_type=f"{topic}_work",
            task_description=f"{topic} {word} for PAY-{1400 + i % 7} v2.{i % 5}" + f" {word}" * (i % 3),
            outcome=Outcome.SUCCESS if i % 4 else Outcome.FAILURE,
            outcome_details=f"{other} then {word}; the {topic} held" if i % 2 else "",
            lessons_learned=[f"watch the {other}", f'quote "{word}"\nnext line'] if i % 3 else [],
            importance_score=0.3 + (i % 5) / 10,
            context_summary=f"{other} {other} context" if i % 5 else "",
            created_at=to_datetime(T0 - i * 3600),
        )
        await store.add_episode(ep, _vector(i), MODEL)
    return project


async def _searches(store: PostgresStore, project: uuid.UUID) -> list[list[tuple[uuid.UUID, float]]]:
    pages = []
    for query in ("deploy rollback", "canary payments timeout", "PAY-1403 v2.1", "retry the schema cache", "quote"):
        for mode in ("text", "hybrid"):
            vector = _vector(len(query)) if mode == "hybrid" else None
            found = await store.search_episodes(project, query, vector, EpisodeFilter(), 20, T0, mode, MODEL)
            pages.append([(e.episode_id, e.score) for e in found])
    return pages


async def test_every_written_episode_keeps_the_weights_of_its_tsvector(store: PostgresStore, url: str) -> None:
    project = await _load(store, 24)
    assert await pg_servers.first_column(url, WEIGHTS_MISMATCH) == set()
    stored = await pg_servers.first_column(
        url,
        "SELECT CAST(search_weights AS text) FROM episodes "
        "WHERE project_id = :p AND task_description LIKE 'deploy rollback%'",
        {"p": project},
    )
    weights = json.loads(stored.pop())
    # "deploy" is in the description (A, 3.5) and the task type (C, 1.0); "rollback" once in the description.
    assert weights["deploy"] == 4.5 and weights["rollback"] == 3.5
    # An edit of the text (as update_episode writes it) recomputes them; the old words go.
    await _execute(
        url,
        "UPDATE episodes SET outcome_details = 'a quarantined shard', lessons_learned = '[]' WHERE project_id = :p",
        {"p": project},
    )
    assert await pg_servers.first_column(url, WEIGHTS_MISMATCH) == set()
    found = await store.search_episodes(project, "quarantined shard", None, EpisodeFilter(), 50, T0, "text", MODEL)
    assert len(found) == 24
    assert await store.search_episodes(project, "watch", None, EpisodeFilter(), 50, T0, "text", MODEL) == []


async def test_a_row_without_stored_weights_ranks_exactly_as_with_them(store: PostgresStore, url: str) -> None:
    project = await _load(store, 60)
    with_weights = await _searches(store, project)
    assert all(with_weights) and any(len(page) > 5 for page in with_weights)
    # As rows written before migration 0014 are: ranked from the tsvector.
    await _execute(url, "UPDATE episodes SET search_weights = NULL")
    without = await _searches(store, project)
    assert without == with_weights  # the same episodes in the same order, with bit-identical scores
    # Half and half: each row ranked its own way, still the same.
    await _execute(
        url, "UPDATE episodes SET search_weights = mcpmem_search_weights(task_description, lessons_learned, "
        "outcome_details, task_type, context_summary) WHERE id % 2 = 0",
    )  # fmt: skip
    assert await _searches(store, project) == with_weights


async def test_a_row_with_its_weights_keeps_its_embedding_inline() -> None:
    """Past Postgres' default TOAST target (~2 kB) the largest attribute, the embedding, would be moved out of line,
    and every exact scan would read each vector from the TOAST table: 0014 raises the target to a page."""
    url = pg_servers.database_url(await pg_servers.migrated_database(384))
    store = PostgresStore(url, embedding_dimension=384)
    await store.start()
    try:
        project = uuid.uuid4()
        for i in range(20):
            description = " ".join(f"{WORDS[(i + j) % len(WORDS)]}{j}" for j in range(60))  # ~500 bytes, 60 words
            ep = Episode(episode_id=uuid.uuid4(), project_id=project, agent_instance_id=uuid.uuid4(),
                         task_type="coding", task_description=description, outcome=Outcome.SUCCESS,
                         importance_score=0.5, created_at=to_datetime(T0))  # fmt: skip
            await store.add_episode(ep, [0.1 + i / 100] * 384, MODEL)
    finally:
        await store.close()
    rows = await pg_servers.first_column(url, "SELECT min(pg_column_size(e.*)) > 2100 FROM episodes e")
    assert rows == {"True"}  # past the default target
    toasted = "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'episodes'"
    assert await pg_servers.first_column(url, toasted) == {"0"}


def test_the_class_weights_frozen_in_0014_are_the_rankings() -> None:
    frozen = importlib.import_module("mcp_memory.stores.migrations.versions.postgres.0014_episode_search_weights")
    assert frozen.CLASS_WEIGHTS == search._CLASS_WEIGHTS


async def test_downgrade_past_0014_drops_the_column_its_trigger_and_functions(url: str) -> None:
    assert sorted(await pg_servers.first_column(url, OBJECTS)) == ["1", "2"]
    _, down = await migrate(url, revision="0013", downgrade=True)
    assert down.revision == "0013" and await pg_servers.first_column(url, OBJECTS) == {"0"}
    _, up = await migrate(url, embedding_dimension=256)
    assert up.revision == head_revision() and sorted(await pg_servers.first_column(url, OBJECTS)) == ["1", "2"]
