"""The SQLite store's full-text ranking: FTS5's bm25, computed from each project's own statistics.

The reference is SQLite's own ``bm25()`` on a real FTS5 table of the same texts (the store's schema 2 ranked with
it): on a database of one project the store's scores equal it. With other projects present they still equal it
on a table of that project's episodes alone, and nothing another project writes moves them by a bit.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_memory.models import Episode, Outcome, to_datetime
from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.sqlite import fulltext
from mcp_memory.stores.sqlite.fulltext import bm25_ranking, load_episodes
from mcp_memory.stores.sqlite.store import SqliteStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
WEIGHTS = "1.0, 4.0, 1.5, 3.0, 0.5"  # task_type, task_description, outcome_details, lessons, context_summary

TEXTS = [
    # (task_type, description, details, lessons, context summary)
    ("bug_fix", "Fixed the flaky parser test", "pinned the random seed", ["seed every random generator"], ""),
    ("bug_fix", "Parser crashed on empty input", "guard added; the parser now returns []", [], "parser module"),
    ("deploy", "Deployed the billing service to Kubernetes", "rolled out with a canary", ["watch error rates"], ""),
    ("deploy", "Kubernetes deployment failed: missing secret", "", ["check secrets before deploying"], "k8s"),
    ("research", "Compared vector databases for similarity search", "pgvector chosen", ["measure recall"], ""),
    ("incident", "Disk full on the primary database", "log rotation was off", ["alert at 80% disk"], "on-call"),
    ("incident", "Élan café outage: the naïve retry loop hammered the API", "backoff", ["Retries need jitter"], ""),
    ("support", "Customer charged twice for an annual plan", "refund issued", ["idempotency keys"], "billing"),
    ("coding", "Running the tests runs the migrations first", "", ["run migrations once"], ""),
    ("coding", "Refactored the billing service into modules", "billing billing billing", [], "billing refactor"),
    ("data_migration", "Added a column to a huge table without locking", "lock_timeout set", ["batch backfill"], ""),
    ("deploy", "Deploy deploy deploy: a week of deploys", "every deploy green", ["deploy small"], "deploy"),
]

# Plain words (no snake_case: a word FTS5 splits in two was a phrase there, two words here; see _query_terms).
QUERIES = [
    "parser crash",
    "billing kubernetes deploy",
    "deploy",  # in more than half of nothing: a common word, but not floored
    "the",  # in more than half the episodes: FTS5 floors its IDF at 1e-6
    "running runs run",  # one stem three times: weighs three times, as FTS5's OR of three phrases did
    "ELAN CAFE naive",  # case and diacritics folded by unicode61
    "billing",  # a word repeated in one episode's columns: weighted frequencies
    "kilimanjaro zanzibar",  # no episode
    "retries jitter backoff api",
    "disk 80 alert",
]


def episode(project: uuid.UUID, i: int, text: tuple[str, str, str, list[str], str], created: float = T0) -> Episode:
    task_type, description, details, lessons, summary = text
    return Episode(
        episode_id=uuid.uuid4(),
        project_id=project,
        agent_instance_id=uuid.UUID(int=1),
        task_type=task_type,
        task_description=description,
        outcome=Outcome.SUCCESS if i % 2 else Outcome.FAILURE,
        outcome_details=details,
        lessons_learned=lessons,
        importance_score=(i % 5) / 5,
        context_summary=summary,
        created_at=to_datetime(created - i * 3600),
    )


def fts5_query(query: str) -> str:
    """The MATCH expression schema 2 searched with: each distinct word quoted, OR-ed."""
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(re.findall(r"\w+", query.lower())[:64]))


def fts5_bm25(episodes: list[Episode], query: str) -> dict[str, float]:
    """SQLite's own bm25() (negated: higher is better) on an FTS5 table of ``episodes`` as schema 2 stored them."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute(
            "CREATE VIRTUAL TABLE ref USING fts5(task_type, task_description, outcome_details, lessons, "
            "context_summary, content='', tokenize='porter unicode61')"
        )
        ids = {}
        for rowid, ep in enumerate(episodes, 1):
            ids[rowid] = str(ep.episode_id)
            db.execute(
                "INSERT INTO ref (rowid, task_type, task_description, outcome_details, lessons, context_summary) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    rowid,
                    ep.task_type.replace("_", " "),
                    ep.task_description,
                    ep.outcome_details,
                    "\n".join(ep.lessons_learned),
                    ep.context_summary,
                ),
            )
        rows = db.execute(f"SELECT rowid, -bm25(ref, {WEIGHTS}) FROM ref WHERE ref MATCH ?", (fts5_query(query),))
        return {ids[rowid]: score for rowid, score in rows}
    finally:
        db.close()


async def store_bm25(store: SqliteStore, project: uuid.UUID, query: str, pool: int = 1000) -> dict[str, float]:
    """The store's raw full-text scores (before ``relative``), on one of its own reader connections."""
    return await store._read_direct(lambda db: bm25_ranking(db, str(project), query, "", {}, pool)[0])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(f"sqlite+aiosqlite:///{tmp_path / 'fulltext.db'}")
    await s.start()
    try:
        yield s
    finally:
        await s.close()


def assert_close(ours: dict[str, float], reference: dict[str, float]) -> None:
    assert set(ours) == set(reference)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, rel=1e-9, abs=0.0), key


async def test_the_score_is_fts5_bm25_on_a_database_of_one_project(store: SqliteStore) -> None:
    project = uuid.uuid4()
    episodes = [episode(project, i, t) for i, t in enumerate(TEXTS)]
    for ep in episodes:
        await store.add_episode(ep, None)
    floored = False
    for query in QUERIES:
        reference = fts5_bm25(episodes, query)
        assert_close(await store_bm25(store, project, query), reference)
        floored |= any(0 < v < 1e-4 for v in reference.values())
    assert floored  # the IDF floor was exercised ("the")


async def test_with_other_projects_the_score_is_fts5_bm25_on_the_projects_episodes_alone(store: SqliteStore) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    mine = [episode(a, i, t) for i, t in enumerate(TEXTS[:7])]
    theirs = [episode(b, i, t) for i, t in enumerate(TEXTS)] + [episode(c, i, t) for i, t in enumerate(TEXTS[5:])]
    for ep in theirs[:6] + mine + theirs[6:]:  # interleaved
        await store.add_episode(ep, None)
    for query in QUERIES:
        assert_close(await store_bm25(store, a, query), fts5_bm25(mine, query))
        assert_close(await store_bm25(store, b, query), fts5_bm25(theirs[: len(TEXTS)], query))


async def test_project_a_scores_and_order_are_bit_identical_whatever_b_writes(store: SqliteStore) -> None:
    """B (another tenant) writes many episodes full of A's query words, in every column: A's raw scores, its
    results, their order and their final scores stay exactly what they were."""
    a, b = uuid.uuid4(), uuid.uuid4()
    for i, text in enumerate(TEXTS):
        await store.add_episode(episode(a, i, text), None)
    filters = [EpisodeFilter(), EpisodeFilter(outcome=Outcome.SUCCESS)]

    async def snapshot() -> list[object]:
        seen: list[object] = []
        for query in QUERIES:
            seen.append(await store_bm25(store, a, query))
            for flt in filters:
                for mode in ("text", "hybrid"):
                    found = await store.search_episodes(a, query, None, flt, 10, T0, mode)  # type: ignore[arg-type]
                    seen.append([(e.episode_id, e.score) for e in found])
        return seen

    before = await snapshot()
    assert any(before[1::5])  # something was found
    words = " ".join(w for q in QUERIES for w in re.findall(r"\w+", q))
    for i in range(60):
        text = ("bug_fix", f"{words} {i}", words, [words, "parser"], words) if i % 3 else TEXTS[i % len(TEXTS)]
        await store.add_episode(episode(b, i, text), None)
    after = await snapshot()
    assert after == before  # exact equality: floats compared bit for bit
    # B's own search sees B's episodes (the statistics are B's).
    assert len(await store_bm25(store, b, "parser")) >= 40


async def test_search_filters_and_pool_apply_in_the_ranking_statement(store: SqliteStore) -> None:
    project = uuid.uuid4()
    episodes = [episode(project, i, t) for i, t in enumerate(TEXTS)]
    for ep in episodes:
        await store.add_episode(ep, None)
    everything = await store_bm25(store, project, "billing deploy parser the")
    best3 = sorted(everything.items(), key=lambda kv: kv[1], reverse=True)[:3]
    assert await store_bm25(store, project, "billing deploy parser the", pool=3) == dict(best3)
    successes = {str(ep.episode_id) for ep in episodes if ep.outcome is Outcome.SUCCESS}
    filtered = await store._read_direct(
        lambda db: bm25_ranking(
            db, str(project), "billing deploy parser the", " AND e.outcome = :f_outcome", {"f_outcome": "success"}, 99
        )[0]
    )
    # Filters pick candidates; the statistics stay the project's (a filter is not another corpus).
    assert filtered == {k: v for k, v in everything.items() if k in successes}


# -- large projects: common terms do not make candidates (COMMON_TERM_SHARE, COMMON_TERM_MIN_EPISODES) --------

LARGE = 5000  # COMMON_TERM_MIN_EPISODES: the rule applies from here on
# Episode i holds a word when i fits its rule: five common words (each in 5% of the episodes or more; "alpha",
# in half of them, has its IDF floored) and two selective ones ("quokka" 4%, "zanzibar" 0.2%).
WORD_RULES = {
    "alpha": lambda i: i % 2 == 0,
    "beta": lambda i: i % 3 == 0,
    "gamma": lambda i: i % 5 == 0,
    "delta": lambda i: i % 7 == 0,
    "kappa": lambda i: i % 11 == 0,
    "quokka": lambda i: i % 25 == 4,
    "zanzibar": lambda i: i % 500 == 3,
}


def large_episode(project: uuid.UUID, i: int) -> Episode:
    words = [w for w, rule in WORD_RULES.items() if rule(i)] + [f"filler{i % 13}"] * (1 + i % 4)
    return episode(project, i, ("coding", " ".join(words), f"note {i % 17}", [], ""))


def holding(*words: str) -> set[int]:
    return {i for i in range(LARGE) if all(WORD_RULES[w](i) for w in words)}


@pytest.fixture
async def large(store: SqliteStore) -> tuple[uuid.UUID, list[Episode]]:
    """A project of LARGE episodes (one executemany and a batch indexing, as add_episode would index them), and a
    small other project with the same words."""
    project, other = uuid.uuid4(), uuid.uuid4()
    episodes = [large_episode(project, i) for i in range(LARGE)]
    theirs = [large_episode(other, i) for i in range(0, 600, 7)]
    await store._write_direct(lambda db: load_episodes(db, episodes[:2000] + theirs + episodes[2000:]))
    return project, episodes


async def test_bulk_loading_writes_what_add_episode_writes(tmp_path: Path) -> None:
    project = uuid.uuid4()
    episodes = [large_episode(project, i) for i in range(40)] + [episode(project, 99, t) for t in TEXTS]
    contents = []
    for name, bulk in (("one.db", False), ("bulk.db", True)):
        s = SqliteStore(f"sqlite+aiosqlite:///{tmp_path / name}")
        await s.start()
        try:
            if bulk:
                await s._write_direct(lambda db: load_episodes(db, episodes))
            else:
                for ep in episodes:
                    await s.add_episode(ep, None)
            contents.append(
                await s._read_direct(
                    lambda db: [
                        db.execute("SELECT project_id, episodes, tokens FROM text_projects").fetchall(),
                        db.execute("SELECT * FROM episode_terms ORDER BY 1, 2, 3").fetchall(),
                        db.execute("SELECT * FROM text_terms ORDER BY 1, 2").fetchall(),
                        db.execute("SELECT id, episode_id, text_tokens FROM episodes ORDER BY id").fetchall(),
                    ]
                )
            )
        finally:
            await s.close()
    assert contents[0] == contents[1]
    assert contents[0][2]  # term counts were written


async def test_in_a_large_project_common_words_do_not_change_the_top_results(
    store: SqliteStore, large: tuple[uuid.UUID, list[Episode]]
) -> None:
    """Only the episodes holding a selective word are ranked, each with its exact score (the common words' share
    included); here the common-word-only episodes score far below them, so the top results are the exhaustive
    ranking's (FTS5's own bm25 over every episode holding any query word)."""
    project, episodes = large
    ids = {str(ep.episode_id): i for i, ep in enumerate(episodes)}
    for query, selective in (("zanzibar beta", ("zanzibar",)), ("quokka gamma zanzibar alpha", ("quokka", "zanzibar"))):
        reference = fts5_bm25(episodes, query)  # exhaustive: thousands of episodes hold a common word
        assert len(reference) > 1500
        ours = await store_bm25(store, project, query, pool=LARGE)
        candidates = {i for i in range(LARGE) if any(WORD_RULES[w](i) for w in selective)}
        assert {ids[k] for k in ours} == candidates
        assert_close(ours, {k: v for k, v in reference.items() if ids[k] in candidates})
        best = sorted(reference.items(), key=lambda kv: (-kv[1], -ids[kv[0]]))[:10]  # equal scores: newest first
        top = await store_bm25(store, project, query, pool=10)
        assert list(top) == [k for k, _ in best]
        found = await store.search_episodes(project, query, None, EpisodeFilter(), 5, T0, "text")
        assert {str(e.episode_id) for e in found} <= {k for k, _ in best}


async def test_in_a_large_project_a_query_of_common_words_only_ranks_the_episodes_holding_all_of_them(
    store: SqliteStore, large: tuple[uuid.UUID, list[Episode]]
) -> None:
    project, episodes = large
    ids = {str(ep.episode_id): i for i, ep in enumerate(episodes)}
    # One or two words: a join of their postings; three or more: a merge of the four rarest, then look-ups.
    for words in (
        ("beta",),
        ("alpha", "beta"),
        ("beta", "gamma", "alpha"),
        ("alpha", "beta", "gamma", "delta", "kappa"),
    ):
        query = " ".join(words)
        reference = fts5_bm25(episodes, query)
        ours = await store_bm25(store, project, query, pool=LARGE)
        expected = holding(*words)
        assert {ids[k] for k in ours} == expected, query
        assert_close(ours, {k: v for k, v in reference.items() if ids[k] in expected})
        # Filters and the pool apply in the same statement.
        successes = await store._read_direct(
            lambda db, q=query: bm25_ranking(
                db, str(project), q, " AND e.outcome = :f_outcome", {"f_outcome": "success"}, LARGE
            )[0]
        )
        success = {str(ep.episode_id) for ep in episodes if ep.outcome is Outcome.SUCCESS}
        assert successes == {k: v for k, v in ours.items() if k in success}
        best3 = sorted(ours.items(), key=lambda kv: (-kv[1], -ids[kv[0]]))[:3]  # equal scores: newest first
        assert list((await store_bm25(store, project, query, pool=3)).items()) == best3
    assert len(holding("alpha", "beta", "gamma", "delta", "kappa")) == 3
    # A selective word makes the candidates again: no longer only those holding every common word.
    assert len(await store_bm25(store, project, "alpha beta quokka", pool=LARGE)) == len(holding("quokka"))


# -- the query's term cap --------------------------------------------------------------------------------------------


def test_query_term_cap_bounds_fts_terms() -> None:
    """The cap on a query's words applies to its distinct terms after tokenizing (the query's first 64): one
    "word" the tokenizer splits into hundreds of terms is capped too."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    fulltext.create_tokenizer(db)
    query = "_".join(f"w{i}x" for i in range(600))  # one Python word, 3,000 characters (MAX_QUERY is 4,000)
    terms = fulltext.query_terms(db, query)
    assert len(terms) <= fulltext.MAX_QUERY_WORDS
    assert list(terms)[:3] == ["w0x", "w1x", "w2x"]  # the first ones


async def test_the_query_ceiling_is_above_every_score(store: SqliteStore) -> None:
    """The ceiling ``bm25_ranking`` returns (the scale of a weak best hit, ranking.relative) is a bound no episode
    reaches, for every query; a query of no word the project holds has none."""
    project = uuid.uuid4()
    for i, t in enumerate(TEXTS):
        await store.add_episode(episode(project, i, t), None)
    for query in QUERIES:
        scores, ceiling = await store._read_direct(lambda db, q=query: bm25_ranking(db, str(project), q, "", {}, 1000))
        assert all(score < ceiling for score in scores.values()), query
    assert await store._read_direct(lambda db: bm25_ranking(db, str(project), "kilimanjaro", "", {}, 1000)) == ({}, 0.0)
