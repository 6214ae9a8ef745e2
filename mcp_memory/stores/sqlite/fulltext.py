"""Full-text search on SQLite: BM25 with each searched project's own statistics.

Ranks with FTS5's bm25 computed from the searched project's own statistics (:func:`bm25_ranking`): each project's
postings (``episode_terms``) and counts (``text_projects``, ``text_terms``), written in the episode's transaction
(:func:`index_episode`), with terms from SQLite's own FTS5 tokenizer (a TEMP table per connection,
:func:`create_tokenizer`). No statistic spans projects, so nothing another project records moves this project's
scores. In a large project a common term does not make an episode a candidate (Postgres' rule), so a search costs
the postings of the query's selective terms, not the project's size times its common ones.

Everything here runs on a connection's own thread with plain ``sqlite3`` (see
:meth:`~mcp_memory.stores.sqlite.connection.SqliteConnection._on_thread`).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from mcp_memory.models import Episode
from mcp_memory.stores.sql.rules import COMMON_TERM_MIN_EPISODES, COMMON_TERM_SHARE, distinct_words
from mcp_memory.stores.sqlite.vectors import vector_to_blob

_FTS_TOKEN = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_WORDS = 64
_MAX_QUERY_TERMS = MAX_QUERY_WORDS
"""The query's first 64 distinct words, then its first 64 distinct terms: unicode61 splits a word on ``_`` (and
other separators \\w does not know), so one word can be many terms; each term costs a read of its postings."""
_AND_MERGE_TERMS = 4
"""A query of common terms only (see :func:`_ranking_sql`): how many of its rarest terms are intersected by a merge
of their postings before the others are looked up per episode."""

# -- full text: BM25 with each project's own statistics ------------------------------------------------------
# SQLite's FTS5 ranks with bm25() over one FTS5 table's statistics (row count, average row length, each term's
# row count). A table shared by all projects would let one project's episodes move another's scores (and so
# reveal which words they hold), so the store keeps its own postings per project and computes FTS5's bm25 from
# them: the same formula, tokenizer, column weights and constants (ext/fts5/fts5_aux.c, fts5Bm25Function), with
# N, the average length and the term counts of the searched project alone.

_TEXT_COLUMNS = {  # FTS5 column -> bm25 weight
    "task_type": 1.0,
    "task_description": 4.0,
    "outcome_details": 1.5,
    "lessons": 3.0,
    "context_summary": 0.5,
}
_BM25_K1 = 1.2
_BM25_B = 0.75
_TOKENIZER = "temp.mcp_memory_tokenizer"
_TOKENS = "temp.mcp_memory_tokens"
_TOKENIZER_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {_TOKENIZER} USING fts5({', '.join(_TEXT_COLUMNS)}, "
    "content='', tokenize='porter unicode61')",
    # One row per token of what the tokenizer holds: (term, doc = rowid, col = column name, offset).
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {_TOKENS} USING fts5vocab(temp, mcp_memory_tokenizer, instance)",
)
_TOKENIZER_CLEAR = f"INSERT INTO {_TOKENIZER} (mcp_memory_tokenizer) VALUES ('delete-all')"
_TOKENIZER_INSERT = (
    f"INSERT INTO {_TOKENIZER} (rowid, {', '.join(_TEXT_COLUMNS)}) VALUES (?, {', '.join('?' * len(_TEXT_COLUMNS))})"
)
_TOKEN_WEIGHT = "CASE col " + " ".join(f"WHEN '{c}' THEN {w!r}" for c, w in _TEXT_COLUMNS.items()) + " END"
TEXT_BATCH = 500
INSERT_EPISODE = (
    "INSERT INTO episodes (episode_id, project_id, agent_instance_id, session_id, task_type, task_description, "
    "outcome, outcome_details, lessons_learned, importance_score, context_summary, metadata, created_at, embedding, "
    "embedding_model, text_tokens) VALUES (:id, :p, :a, :s, :tt, :td, :o, :od, :ll, :imp, :cs, :m, :at, :emb, "
    f":model, (SELECT COUNT(*) FROM {_TOKENS})) RETURNING id, text_tokens"
)


def create_tokenizer(db: Any) -> None:
    """This connection's tokenizer: a TEMP (per-connection, never stored) contentless FTS5 table with the
    episodes' columns and tokenizer, and an ``fts5vocab`` table that lists the tokens of the rows put in it. SQLite
    tokenizes, so the terms are exactly FTS5's ``porter unicode61`` terms. ``db``: a DB-API connection."""
    cur = db.cursor()
    for statement in _TOKENIZER_DDL:
        cur.execute(statement)
    cur.close()


def text_fields(
    task_type: str, description: str, details: str, lessons: Sequence[str], summary: str
) -> tuple[str, ...]:
    """An episode's full-text columns, in :data:`_TEXT_COLUMNS` order (``bug_fix`` is two words)."""
    return (task_type.replace("_", " "), description, details, "\n".join(lessons), summary)


def tokenize(db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Put ``rows`` (rowid and the :data:`_TEXT_COLUMNS`) in this connection's tokenizer, alone: its token list
    :data:`_TOKENS` then holds their tokens. Every use starts here, so nothing of an earlier one is seen (the temp
    tables take part in the transaction, so a rollback also undoes what a failed use put there)."""
    db.execute(_TOKENIZER_CLEAR)
    db.executemany(_TOKENIZER_INSERT, rows)


def index_episode(db: sqlite3.Connection, episode_pk: int, tokens: int) -> None:
    """Write the postings of one episode, whose text is the tokenizer's one row (``tokens`` tokens long), and
    count it in its project's statistics (the episode row exists, its ``text_tokens`` set)."""
    (project_pk,) = db.execute(
        "INSERT INTO text_projects (project_id, episodes, tokens) "
        "SELECT project_id, 1, text_tokens FROM episodes WHERE id = ? "
        "ON CONFLICT (project_id) DO UPDATE SET episodes = episodes + 1, tokens = tokens + excluded.tokens "
        "RETURNING id",
        (episode_pk,),
    ).fetchone()
    db.execute(
        "INSERT INTO episode_terms (project_pk, term, episode_pk, freq, episode_tokens) "
        f"SELECT ?, term, ?, SUM({_TOKEN_WEIGHT}), ? FROM {_TOKENS} GROUP BY term",
        (project_pk, episode_pk, tokens),
    )
    db.execute(
        f"INSERT INTO text_terms (project_pk, term, episodes) SELECT DISTINCT ?, term, 1 FROM {_TOKENS} WHERE true "
        "ON CONFLICT (project_pk, term) DO UPDATE SET episodes = episodes + 1",
        (project_pk,),
    )


def query_terms(db: sqlite3.Connection, query: str) -> dict[str, int]:
    """A user's words as FTS5 terms, each with the number of the query's distinct words that gave it: the query
    ``"running runs"`` weighs the term ``run`` twice, as FTS5 did for the OR of the two quoted words. Words are
    data, never FTS syntax (nothing here is a MATCH expression). At most :data:`MAX_QUERY_WORDS` words and
    :data:`_MAX_QUERY_TERMS` terms, the first ones of the query."""
    words = distinct_words(_FTS_TOKEN.findall(query))[:MAX_QUERY_WORDS]
    if not words:
        return {}
    empty = ("",) * (len(_TEXT_COLUMNS) - 1)
    tokenize(db, [(i, word, *empty) for i, word in enumerate(words, 1)])
    rows = db.execute(
        f"SELECT term, COUNT(DISTINCT doc) FROM {_TOKENS} GROUP BY term "
        f'ORDER BY MIN(doc * 1000000 + "offset") LIMIT {_MAX_QUERY_TERMS}'
    ).fetchall()
    return {term: int(n) for term, n in rows}


def bm25_ranking(
    db: sqlite3.Connection, project_id: str, query: str, extra: str, params: Mapping[str, Any], pool: int
) -> tuple[dict[str, float], float]:
    """The ``pool`` best episodes of the project for the query's words, episode_id -> BM25 (higher is better).

    FTS5's ``bm25()`` exactly (``-bm25(episodes_fts, 1.0, 4.0, 1.5, 3.0, 0.5)`` on a table of this project's
    episodes alone, the query an OR of its quoted words), every statistic from this project's episodes:
    ``score = sum_i idf_i * f_i * (k1 + 1) / (f_i + k1 * (1 - b + b * D / avgdl))``, ``f_i`` the weighted count of
    term i in the episode (column weights above), D the episode's tokens, avgdl the project's tokens per
    episode, ``idf_i = ln((N - n_i + 0.5) / (n_i + 0.5))`` (1e-6 where that is not positive), N the project's
    episodes and n_i those holding term i. ``extra``/``params``: the search filters on ``e``.

    Which episodes are ranked: as on Postgres (``COMMON_TERM_SHARE``, ``COMMON_TERM_MIN_EPISODES``), once the
    project holds 5,000 episodes a term found in 5% of them or more is *common*: it does not make an episode a
    candidate, but adds its share to the score of every candidate. Candidates are the episodes holding one of the
    query's other (*selective*) terms, or, when every term is common, the episodes holding all of them. Every
    candidate's score is its full BM25 over all the query's terms (the same number as in an exhaustive ranking),
    and the cost is bounded by the selective terms' postings (under 5% of the project each) or by the rarest
    common terms' (see :func:`_ranking_sql`), not by the project's size times the number of common terms. Below
    5,000 episodes every term is selective: every episode holding a term is ranked. Three statements (the
    tokenizer's two, and one for the statistics) before the ranking one.

    Also the query's *ceiling*: the BM25 no episode can reach, ``(k1 + 1)`` times the sum of the weights of the
    query's terms the project holds (each term's factor ``f (k1 + 1) / (f + k1 ...)`` is below ``k1 + 1``), the
    scale against which a best hit that shares only a common word with the query is a weak one."""
    terms = query_terms(db, query)
    if not terms:
        return {}, 0.0
    names = {f"t{i}": term for i, term in enumerate(terms)}
    rows = db.execute(
        "SELECT p.id, p.episodes, p.tokens, t.term, t.episodes FROM text_projects p LEFT JOIN text_terms t "
        f"ON t.project_pk = p.id AND t.term IN ({', '.join(':' + n for n in names)}) WHERE p.project_id = :p",
        {"p": project_id, **names},
    ).fetchall()
    if not rows or not rows[0][1] or not rows[0][2]:
        return {}, 0.0
    project_pk, n_rows, n_tokens = rows[0][:3]
    hits = {term: n for *_, term, n in rows if term is not None}
    bound = {**params, "pk": project_pk, "p": project_id, "avgdl": n_tokens / n_rows, "pool": pool}
    selective: list[int] = []
    common: list[tuple[int, int]] = []
    for i, (term, times) in enumerate(terms.items()):
        n_hit = hits.get(term, 0)
        if not n_hit:
            continue
        idf = math.log((n_rows - n_hit + 0.5) / (n_hit + 0.5))
        bound[f"t{i}"], bound[f"w{i}"] = term, (idf if idf > 0.0 else 1e-6) * times
        if n_rows >= COMMON_TERM_MIN_EPISODES and n_hit >= COMMON_TERM_SHARE * n_rows:
            common.append((n_hit, i))
        else:
            selective.append(i)
    if not selective and not common:
        return {}, 0.0
    ceiling = (_BM25_K1 + 1.0) * sum(bound[f"w{i}"] for i in (*selective, *(i for _, i in common)))
    sql = _ranking_sql(selective, [i for _, i in sorted(common)], extra)
    return {episode_id: score for episode_id, score in db.execute(sql, bound)}, ceiling


def _bm25_term(t: str) -> str:
    """Term ``:t<i>``'s BM25 factor in posting ``t`` (times its weight, that is the score's term), as fts5_aux.c
    computes it, operation for operation (SQLite's REAL is C's double)."""
    return (
        f"(({t}.freq * ({_BM25_K1} + 1.0)) / "
        f"({t}.freq + {_BM25_K1} * (1 - {_BM25_B} + {_BM25_B} * {t}.episode_tokens / :avgdl)))"
    )


def _ranking_sql(selective: list[int], common: list[int], extra: str) -> str:
    """The ranking statement of :func:`bm25_ranking`: ``(episode_id, score)``, the ``:pool`` best, best first,
    equal scores newest row first (the final ranking's order of ties, so that the pool's cut keeps the episodes it
    would prefer: 60 episodes of one text give the pool the newest 50, not the oldest).

    Terms are parameters ``:t<i>`` with their weights (IDF times repeats) ``:w<i>``; ``selective`` and ``common``
    (rarest first) list their ``i``. A posting holds the episode's length, so only the results' episode rows are
    read (and, with filters, ``extra``, the candidates'). One of three shapes:

    - selective terms: their postings, grouped by episode; each group's common terms looked up by key;
    - one or two terms, all common: the rarest one's postings, each joined by key to the other's (AND);
    - three or more, all common: the postings of the :data:`_AND_MERGE_TERMS` rarest, intersected by a merge
      (each term's postings are stored in episode order: one pass, no look-ups), then the others looked up by key
      for the few episodes left (AND), and each survivor's score from its postings of every term.
    """

    def values(ix: Sequence[int]) -> str:
        return "VALUES " + ", ".join(f"(:t{i}, :w{i})" for i in ix)

    def posting(t: str, i: int | str, episode: str) -> str:
        return f"{t}.project_pk = :pk AND {t}.term = {i} AND {t}.episode_pk = {episode}"

    ctes: list[str] = []
    where: list[str] = []
    group = ""
    if selective:
        ctes.append(f"s (term, w) AS ({values(selective)})")
        source, key = "s JOIN episode_terms t ON t.project_pk = :pk AND t.term = s.term", "t.episode_pk"
        score = f"SUM(s.w * {_bm25_term('t')})"
        if common:
            ctes.append(f"c (term, w) AS ({values(common)})")
            score += (
                f" + COALESCE((SELECT SUM(c.w * {_bm25_term('u')}) FROM c JOIN episode_terms u "
                f"ON {posting('u', 'c.term', key)}), 0.0)"
            )
        group = f" GROUP BY {key}"
    elif len(common) <= 2:
        first, *rest = common
        key = f"t{first}.episode_pk"
        source = f"episode_terms t{first}" + "".join(
            f" CROSS JOIN episode_terms t{i} ON {posting(f't{i}', f':t{i}', key)}" for i in rest
        )
        where.append(f"t{first}.project_pk = :pk AND t{first}.term = :t{first}")
        score = " + ".join(f":w{i} * {_bm25_term(f't{i}')}" for i in sorted(common))
    else:
        merged, rest = common[:_AND_MERGE_TERMS], common[_AND_MERGE_TERMS:]
        # A compound SELECT with ORDER BY runs as a merge; LIMIT -1 keeps its ORDER BY (and so the merge) in a
        # subquery.
        arms = " INTERSECT ".join(
            f"SELECT episode_pk FROM episode_terms WHERE project_pk = :pk AND term = :t{i}" for i in merged
        )
        ctes.append(f"q (term, w) AS ({values(sorted(common))})")
        source, key = f"({arms} ORDER BY 1 LIMIT -1) AS d", "d.episode_pk"
        where.extend(f"EXISTS (SELECT 1 FROM episode_terms x WHERE {posting('x', f':t{i}', key)})" for i in rest)
        score = f"(SELECT SUM(q.w * {_bm25_term('t')}) FROM q JOIN episode_terms t ON {posting('t', 'q.term', key)})"
    if extra:
        source += f" CROSS JOIN episodes e ON e.id = {key}"
        where.append(f"e.project_id = :p{extra}")
    inner = (
        f"SELECT {key} AS id, {score} AS score FROM {source}{' WHERE ' + ' AND '.join(where) if where else ''}"
        f"{group} ORDER BY score DESC, id DESC LIMIT :pool"
    )
    return (
        f"{'WITH ' + ', '.join(ctes) + ' ' if ctes else ''}SELECT e.episode_id, r.score FROM ({inner}) AS r "
        "JOIN episodes e ON e.id = r.id WHERE e.project_id = :p ORDER BY r.score DESC, r.id DESC"
    )


def episode_params(ep: Episode, embedding: Sequence[float] | None, model: str | None) -> dict[str, Any]:
    """The parameters of :data:`INSERT_EPISODE` for one episode."""
    return {
        "id": str(ep.episode_id),
        "p": str(ep.project_id),
        "a": str(ep.agent_instance_id),
        "s": ep.session_id,
        "tt": ep.task_type,
        "td": ep.task_description,
        "o": ep.outcome.value,
        "od": ep.outcome_details,
        "ll": json.dumps(ep.lessons_learned),
        "imp": ep.importance_score,
        "cs": ep.context_summary,
        "m": json.dumps(ep.metadata),
        "at": ep.created_at.timestamp(),
        "emb": vector_to_blob(embedding) if embedding is not None else None,
        "model": model if embedding is not None else None,
    }


def index_episodes(db: sqlite3.Connection, after: int) -> None:
    """Index the episodes whose primary key is above ``after`` (rows with no postings yet): their lengths, their
    postings and their projects' counts, tokenized by SQLite as :func:`index_episode` does, :data:`TEXT_BATCH`
    at a time. The schema-2 conversion's path, and a bulk load's (rows inserted with ``text_tokens`` 0)."""
    db.execute(
        "INSERT INTO text_projects (project_id) SELECT DISTINCT project_id FROM episodes WHERE id > ? "
        "ON CONFLICT (project_id) DO NOTHING",
        (after,),
    )
    last = after
    while True:
        batch = db.execute(
            "SELECT id, task_type, task_description, outcome_details, lessons_learned, context_summary FROM episodes "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (last, TEXT_BATCH),
        ).fetchall()
        if not batch:
            break
        tokenize(db, [(pk, *text_fields(tt, td, od, json.loads(ll), cs)) for pk, tt, td, od, ll, cs in batch])
        db.execute(
            f"WITH n (doc, tokens) AS (SELECT doc, COUNT(*) FROM {_TOKENS} GROUP BY doc) "
            "UPDATE episodes SET text_tokens = n.tokens FROM n WHERE episodes.id = n.doc"
        )
        db.execute(
            "INSERT INTO episode_terms (project_pk, term, episode_pk, freq, episode_tokens) "
            f"SELECT p.id, v.term, v.doc, SUM({_TOKEN_WEIGHT}), e.text_tokens FROM {_TOKENS} v "
            "JOIN episodes e ON e.id = v.doc JOIN text_projects p ON p.project_id = e.project_id GROUP BY v.doc, v.term"
        )
        db.execute(
            "INSERT INTO text_terms (project_pk, term, episodes) "
            f"SELECT p.id, v.term, COUNT(DISTINCT v.doc) FROM {_TOKENS} v JOIN episodes e ON e.id = v.doc "
            "JOIN text_projects p ON p.project_id = e.project_id WHERE true GROUP BY p.id, v.term "
            "ON CONFLICT (project_pk, term) DO UPDATE SET episodes = episodes + excluded.episodes"
        )
        last = batch[-1][0]
    db.execute(
        "UPDATE text_projects SET (episodes, tokens) = (SELECT text_projects.episodes + COUNT(*), "
        "text_projects.tokens + COALESCE(SUM(text_tokens), 0) FROM episodes e "
        "WHERE e.project_id = text_projects.project_id AND e.id > ?) "
        "WHERE project_id IN (SELECT project_id FROM episodes WHERE id > ?)",
        (after, after),
    )
    db.execute(_TOKENIZER_CLEAR)


def load_episodes(
    db: sqlite3.Connection,
    episodes: Sequence[Episode],
    embeddings: Sequence[Sequence[float] | None] | None = None,
    model: str | None = None,
) -> None:
    """Insert ``episodes`` at once (with ``embeddings``, one per episode, of ``model``, if given): the rows by one
    ``executemany``, then indexed as a batch (:func:`index_episodes`). The same rows, postings and counts as
    ``add_episode`` one by one, in a fraction of the time: for tests and benchmarks that need a large project. In
    the caller's write transaction."""
    (after,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM episodes").fetchone()
    db.execute(_TOKENIZER_CLEAR)  # text_tokens 0 until indexed
    insert = INSERT_EPISODE.removesuffix(" RETURNING id, text_tokens")
    vectors = embeddings if embeddings is not None else [None] * len(episodes)
    db.executemany(insert, [episode_params(ep, v, model) for ep, v in zip(episodes, vectors, strict=True)])
    index_episodes(db, after)


def _tokenize_stored(db: sqlite3.Connection, episode_pks: Sequence[int]) -> None:
    """Put the stored text of these episodes in the tokenizer (rowid = the episode's key): the terms they were
    indexed with, as the tokenizer is deterministic."""
    marks = ", ".join("?" * len(episode_pks))
    rows = db.execute(
        "SELECT id, task_type, task_description, outcome_details, lessons_learned, context_summary FROM episodes "
        f"WHERE id IN ({marks})",
        list(episode_pks),
    ).fetchall()
    tokenize(db, [(pk, *text_fields(tt, td, od, json.loads(ll), cs)) for pk, tt, td, od, ll, cs in rows])


def unindex_episodes(db: sqlite3.Connection, episode_pks: Sequence[int]) -> None:
    """Take these episodes (rows still present) out of their projects' full text: their postings, their counts in
    ``text_terms`` (a term no episode holds any more loses its row) and in ``text_projects``; the inverse of
    :func:`index_episode`, so a project's statistics are then those of a store that never held them. The postings
    are found by key from the episodes' own terms (re-tokenized), not by a scan of the project's postings."""
    if not episode_pks:
        return
    _tokenize_stored(db, episode_pks)
    terms = (
        f"SELECT p.id AS project_pk, v.term AS term, COUNT(DISTINCT v.doc) AS n FROM {_TOKENS} v "
        "JOIN episodes e ON e.id = v.doc JOIN text_projects p ON p.project_id = e.project_id GROUP BY p.id, v.term"
    )
    db.execute(
        "DELETE FROM episode_terms WHERE (project_pk, term, episode_pk) IN "
        f"(SELECT DISTINCT p.id, v.term, v.doc FROM {_TOKENS} v JOIN episodes e ON e.id = v.doc "
        "JOIN text_projects p ON p.project_id = e.project_id)"
    )
    db.execute(
        f"WITH d AS ({terms}) UPDATE text_terms SET episodes = text_terms.episodes - d.n FROM d "
        "WHERE text_terms.project_pk = d.project_pk AND text_terms.term = d.term"
    )
    db.execute(
        f"WITH d AS ({terms}) DELETE FROM text_terms WHERE episodes <= 0 AND (project_pk, term) IN "
        "(SELECT project_pk, term FROM d)"
    )
    marks = ", ".join("?" * len(episode_pks))
    db.execute(
        "WITH d AS (SELECT project_id, COUNT(*) AS n, SUM(text_tokens) AS tokens FROM episodes "
        f"WHERE id IN ({marks}) GROUP BY project_id) UPDATE text_projects SET episodes = text_projects.episodes - d.n, "
        "tokens = text_projects.tokens - d.tokens FROM d WHERE text_projects.project_id = d.project_id",
        list(episode_pks),
    )
    db.execute(_TOKENIZER_CLEAR)


def drop_project_counts(db: sqlite3.Connection, project_id: str) -> None:
    """Delete the project's full-text rows (``text_projects``, and any ``text_terms`` or ``episode_terms`` left under
    its key), in the write transaction that left it without episodes: the file then names no forgotten project. A
    project recorded again gets a new row, as a new one does."""
    row = db.execute("DELETE FROM text_projects WHERE project_id = ? RETURNING id", (project_id,)).fetchone()
    if row is not None:
        db.execute("DELETE FROM text_terms WHERE project_pk = ?", (row[0],))
        db.execute("DELETE FROM episode_terms WHERE project_pk = ?", (row[0],))


def reindex_episode(db: sqlite3.Connection, episode_pk: int) -> None:
    """Index the episode's stored text again after it changed (its old text taken out by
    :func:`unindex_episodes` first): its length, postings and counts."""
    _tokenize_stored(db, [episode_pk])
    (tokens,) = db.execute(
        f"UPDATE episodes SET text_tokens = (SELECT COUNT(*) FROM {_TOKENS}) WHERE id = ? RETURNING text_tokens",
        (episode_pk,),
    ).fetchone()
    index_episode(db, episode_pk, tokens)
    db.execute(_TOKENIZER_CLEAR)
