"""Recall on Postgres: the hybrid search statement (:func:`search_sql`), full text as BM25 over the tsvector
(:data:`BM25_K1`, :data:`BM25_B`), the query's words as a tsquery (:func:`ts_query`), vectors in
pgvector's text form (:func:`vector_text`), and the sizes of the candidate pools and of the HNSW scan.

:func:`search_sql` is :func:`mcp_memory.ranking.fuse` written again in SQL (the weights and constants are
ranking.py's own, imported): keep the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from mcp_memory.ranking import (
    GOOD_COSINE,
    IMPORTANCE_WEIGHT,
    MIN_COSINE,
    RECENCY_HALF_LIFE_DAYS,
    RECENCY_WEIGHT,
    TEXT_WEIGHT,
    VECTOR_WEIGHT,
    normalize,
)
from mcp_memory.stores.ports import EpisodeFilter
from mcp_memory.stores.postgres.statements import DIALECT
from mcp_memory.stores.sql.queries import EPISODE_COLUMNS, filter_clause
from mcp_memory.stores.sql.rules import COMMON_TERM_MIN_EPISODES, COMMON_TERM_SHARE, candidate_pool

BM25_K1 = 1.2
BM25_B = 0.75
_CLASS_WEIGHTS = {"A": 3.5, "B": 1.5, "C": 1.0, "D": 0.5}
"""Weights of the tsvector's classes: A task_description and lessons, B outcome_details, C task_type, D
context_summary (see the migrations); the SQLite adapter's bm25 column weights (4.0 and 3.0 for the two in A)."""
_FREQUENCY = " + ".join(f"{w} * cardinality(array_positions(u.weights, '{c}'))" for c, w in _CLASS_WEIGHTS.items())
_TEXT_RANK = (
    "(SELECT COALESCE(sum(s.idf * s.f * "
    f"{BM25_K1 + 1} / (s.f + {BM25_K1} * ({1 - BM25_B} + {BM25_B} * length(e.search_text) / s.avgdl))), 0.0) "
    f"FROM (SELECT w.idf, w.avgdl, {_FREQUENCY} AS f "
    "FROM unnest(e.search_text) AS u JOIN weights w ON w.lexeme = u.lexeme) AS s)"
)
"""An episode's full-text rank, BM25 over the episode's tsvector: per query word its weighted frequency ``f``
(each position counts its class's weight), the episode's length (its distinct words, ``length(tsvector)``)
against the project's average, and the word's IDF in the project (``weights``); 0 for an episode without a word
of the query."""
_WORDS = "mcpmem_project_words(e.project_id, e.search_text)"
"""An episode's words prefixed with its project: the expression of the GIN index ``episodes_project_words``
(migration 0009), written here as there so that the planner takes that index."""
_KEY = "replace(CAST(CAST(:p AS uuid) AS text), '-', '') || ':' || lexeme"
"""A query word as a key of :data:`_WORDS` in the searched project (``:p`` cast first: its type is a uuid's)."""
_TS_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
HNSW_MAX_EF_SEARCH = 1000
FILTERED_EF_FACTOR = 2
MIN_EF_SEARCH = 100
"""At 100,000 384-dim episodes, ef_search 40 finds 94.7% of the exact top 10, 100 finds 98.7% (bench_pg_search)."""
COMMON_LEXEME_SHARE = COMMON_TERM_SHARE
"""A word found in at least this share of the project's episodes does not make a row a full-text candidate..."""
COMMON_LEXEME_MIN_ROWS = COMMON_TERM_MIN_EPISODES
"""...once the project holds this many episodes (below it, ranking every match costs little). Shared with SQLite."""
EXACT_SCAN_BUDGET = 768_000
"""A project of at most this many episodes x vector dimensions is searched by an exact scan of its own vectors, not
the HNSW index (2,000 episodes at 384 dimensions, 3,000 at 256, 500 at 1536: about 2 ms on the benchmark VM). The
index is one graph over every project, so its approximate answer for one project depends on the others' vectors;
an exact scan of the project's rows does not."""


def ts_query(query: str) -> str | None:
    """A user's words as an OR-ed ``to_tsquery`` text: ``'word1 | word2'`` (letters and digits only, so no
    tsquery syntax can be injected). ``websearch_to_tsquery`` would AND the words, and an episode missing one
    of them would not be found at all."""
    tokens = list(dict.fromkeys(_TS_TOKEN.findall(query.lower())))[:64]
    return " | ".join(tokens) if tokens else None


def vector_text(vector: Sequence[float]) -> str:
    """A vector in pgvector's text form, scaled to unit length (so stored vectors are comparable by dot product
    too, and a caller's unnormalised vectors do not matter)."""
    return "[" + ",".join(map(str, normalize(vector))) + "]"


def search_sql(
    filters: str, *, text_retriever: bool, vector_retriever: bool, same_model: bool = False, exact_scan_max: int = 0
) -> str:
    """The recall query: one statement that fuses full-text and vector scores, as :mod:`mcp_memory.ranking` does.

    - Full text: the words of the OR-ed tsquery (``:tsq``), found through the GIN index of each episode's words keyed by
      its project (migration 0009: a posting list holds one project's episodes, so its length is the project's, not the
      store's), ranked by BM25 (k1 1.2, b 0.75, as SQLite's FTS5) computed from the episode's tsvector
      (:data:`_TEXT_RANK`: each query word's frequency, every position weighted by its column's class, the episode's
      distinct words against the project's average) and each word's IDF, FTS5's ``ln((N - n + 0.5) / (n + 0.5))``
      floored at 1e-6, with N the project's episodes and n those holding the word; each score is a share of the best one
      (BM25 has no fixed scale). N, n and the lengths are the project's own counts (``project_episode_counts``,
      ``project_lexeme_counts``, kept exact by triggers on ``episodes``, migrations 0002 and 0003): no other project's
      episodes move a score, and no ANALYZE is needed. Ranking every row that shares one common word with the query
      ("fix", "test") would cost time in proportion to the project, so candidates are the rows matching the query's
      *selective* words: those found in fewer than ``COMMON_LEXEME_SHARE`` of the project's episodes, once it holds
      ``COMMON_LEXEME_MIN_ROWS``. Common words still count in the rank of those candidates, with their low IDF; a query
      made of common words only matches on all of them. A word no episode of the project holds is left out of both (it
      would match nothing), as on SQLite.
    - Vectors: a project of at most ``exact_scan_max`` episodes (see :data:`EXACT_SCAN_BUDGET`) is searched by
      an exact scan of its own vectors: the ``:vpool`` nearest, whatever the other projects hold (the HNSW scan,
      in the plan, is gated off and never runs). A larger project: the ``:vpool`` nearest by cosine distance
      through the HNSW index (ef_search sized to it), one graph over every project, so approximate and not
      independent of the others' vectors. pgvector 0.6 filters *after* the index scan (no iterative scans): with
      filters the scan is widened (ef_search twice the pool), and the rows that survive the filters are the
      nearest matching ones. A selective filter (one agent, a recent ``since``) can leave fewer than ``:limit``:
      then, and only then, an exact scan of the filtered rows replaces them (cheap exactly because the filter is
      selective; B-trees on project with agent, task type or time find the rows). Cosines below
      ``MIN_COSINE`` are dropped; each kept cosine is divided by the best one of the query, or by ``GOOD_COSINE``
      if the best is lower (ranking.py's ``similarities``). ``same_model``: only vectors stored under the model
      ``:model`` count (those of another model are on another scale, even at the same dimension).
    - Fusion: ranking.py's ``fuse``: the weighted average (``TEXT_WEIGHT``, ``VECTOR_WEIGHT``) of the two scores
      over the retrievers that found anything (a retriever with no hit for the query has no say, so its weight
      leaves the denominator), then scaled by ``1 + 0.15 importance + 0.10 recency`` (30-day half-life), best
      first. Each candidate of either retriever is scored by *both*: its text share and its cosine are computed
      for it, so an episode just outside one list's cut-off (the HNSW pool, or the selective-word candidates) is
      scored as what it is there, not as a zero. An episode the retriever would not find at all still scores 0
      there, as in ``fuse``: no word of the query (its BM25 is 0), no vector of the query's model, or a
      cosine below ``MIN_COSINE``. The scales are the retrievers' own: the best rank among the text hits, the best
      cosine among the vector hits.
    Filters (``filters``, conditions on ``e``) apply inside each retriever, so the pool is of matching rows.
    """
    where = f"e.project_id = :p{filters}"
    model = " AND e.embedding_model = :model" if same_model else ""
    ctes: list[str] = []
    parts: list[str] = []
    if text_retriever:
        ctes.append(
            "terms AS (SELECT lexeme FROM unnest(tsvector_to_array(to_tsvector('english', "
            "replace(:tsq, ' | ', ' ')))) AS lexeme)"
        )
        # The project's own counts (kept exact by triggers, see migration 0002): N episodes, and per query word
        # the number n of them holding it. Nothing here depends on another project's episodes or on ANALYZE.
        ctes.append(
            "term_stats AS MATERIALIZED (SELECT t.lexeme, CAST(COALESCE((SELECT l.episodes "
            "FROM project_lexeme_counts l WHERE l.project_id = :p AND l.lexeme = t.lexeme), 0) AS float8) AS n, "
            "CAST(COALESCE(c.episodes, 0) AS float8) AS total, CAST(COALESCE(c.tokens, 0) AS float8) AS tokens "
            "FROM terms t LEFT JOIN project_episode_counts c ON c.project_id = :p)"
        )
        # Candidate words as keys of the project's word index (migration 0009: '<project hex>:<lexeme>'), so a
        # posting list read is this project's, never the store's. NULL (no key) matches nothing.
        ctes.append(
            f"selective AS (SELECT array_agg({_KEY}) AS q FROM term_stats "
            f"WHERE n > 0 AND NOT (total >= {COMMON_LEXEME_MIN_ROWS} AND n >= {COMMON_LEXEME_SHARE} * total))"
        )
        # No selective word: the episodes holding every word of the query that the project has (as SQLite). One
        # indexed condition (any candidate key), then, with no selective word only, the test of holding them all:
        # an OR of the two would not be planned as one scan of the index.
        ctes.append(
            f"all_words AS (SELECT CASE WHEN (SELECT q FROM selective) IS NULL THEN array_agg({_KEY}) END AS q "
            "FROM term_stats WHERE n > 0)"
        )
        # Per query word its inverse document frequency in the project (BM25's, always positive), and the project's
        # average episode length.
        ctes.append(
            "weights AS MATERIALIZED (SELECT lexeme, GREATEST(ln((total - n + 0.5) / (n + 0.5)), 1e-6) AS idf, "
            "GREATEST(tokens / GREATEST(total, 1.0), 1.0) AS avgdl FROM term_stats)"
        )
        # The text hits: no "project_id = :p" (each key holds the project's full id, so a row matching one is the
        # project's), as with it the planner ANDs the few rows of the keys with a bitmap of all the project's rows
        # from a B-tree on project_id, the cost that grew with the project (2 ms of 2.7 for 23,428 rows). The test
        # of holding every word comes after its IS NULL (the OR stops there): the word array of each row is an SQL
        # function's call, about 6 us, not worth paying when there are selective words.
        ctes.append(
            f"text_hits AS (SELECT e.id, {_TEXT_RANK} AS r FROM episodes e "
            f"WHERE {_WORDS} && COALESCE((SELECT q FROM selective), (SELECT q FROM all_words)) "
            f"AND ((SELECT q FROM all_words) IS NULL OR {_WORDS} @> (SELECT q FROM all_words)){filters} "
            "ORDER BY r DESC LIMIT :pool)"
        )
        ctes.append("t AS (SELECT id, r / max(r) OVER () AS s FROM text_hits WHERE r > 0)")
        parts.append("t")
    if vector_retriever:
        distance = "(e.embedding <=> CAST(:qv AS vector))"
        ctes.append(
            f"approx AS MATERIALIZED (SELECT e.id, {distance} AS d FROM episodes e "
            "WHERE (SELECT episodes FROM project_episode_counts WHERE project_id = :p) > "
            f"{int(exact_scan_max)} AND {where}{model} AND e.embedding IS NOT NULL "
            "ORDER BY e.embedding <=> CAST(:qv AS vector) "
            "LIMIT :vpool)"
        )
        ctes.append(
            f"exact AS MATERIALIZED (SELECT e.id, {distance} AS d FROM episodes e "
            f"WHERE (SELECT count(*) FROM approx) < :limit AND {where}{model} AND e.embedding IS NOT NULL "
            f"ORDER BY {distance} + 0 LIMIT :vpool)"
        )
        ctes.append(
            "vector_hits AS (SELECT id, d FROM exact UNION ALL "
            "SELECT id, d FROM approx WHERE NOT EXISTS (SELECT 1 FROM exact))"
        )
        ctes.append(f"kept AS (SELECT id, 1.0 - d AS cos FROM vector_hits WHERE 1.0 - d >= {MIN_COSINE})")
        ctes.append(f"v AS (SELECT id, LEAST(cos / GREATEST(max(cos) OVER (), {GOOD_COSINE}), 1.0) AS s FROM kept)")
        parts.append("v")
    if len(parts) == 1:
        # One retriever: the weighted average over it alone is its own score.
        ctes.append(f"fused AS (SELECT id, s AS rel FROM {parts[0]})")
    else:
        # Every candidate of either retriever gets both scores, computed for it: a text hit just outside the
        # vector pool still has its cosine, and the reverse (not a zero for being missed by the other list).
        cosine = "(1.0 - (e.embedding <=> CAST(:qv AS vector)))"
        same = "e.embedding_model = :model AND " if same_model else ""
        ctes.append(
            "scored AS (SELECT e.id, "
            f"COALESCE(LEAST({_TEXT_RANK} "
            "/ NULLIF((SELECT max(r) FROM text_hits), 0), 1.0), 0.0) AS ts, "
            f"CASE WHEN {same}{cosine} >= {MIN_COSINE} THEN "
            f"LEAST({cosine} / GREATEST((SELECT max(cos) FROM kept), {GOOD_COSINE}), 1.0) ELSE 0.0 END AS vs "
            "FROM (SELECT id FROM t UNION SELECT id FROM v) AS cand JOIN episodes e ON e.id = cand.id)"
        )
        # Weights of the retrievers that found anything (0 for one that found nothing: it has no say).
        wt = f"(CASE WHEN EXISTS (SELECT 1 FROM t) THEN {TEXT_WEIGHT} ELSE 0.0 END)"
        wv = f"(CASE WHEN EXISTS (SELECT 1 FROM v) THEN {VECTOR_WEIGHT} ELSE 0.0 END)"
        ctes.append(f"fused AS (SELECT id, (ts * {wt} + vs * {wv}) / GREATEST({wt} + {wv}, 1e-9) AS rel FROM scored)")
    recency = (
        "power(0.5, GREATEST(0.0, CAST(:now AS float8) - extract(epoch FROM e.created_at)::float8) "
        f"/ 86400.0 / {RECENCY_HALF_LIFE_DAYS})"
    )
    return (
        f"WITH {', '.join(ctes)} "
        f"SELECT {EPISODE_COLUMNS}, f.rel * (1.0 + {IMPORTANCE_WEIGHT} * e.importance_score "
        f"+ {RECENCY_WEIGHT} * {recency}) AS score "
        "FROM fused f JOIN episodes e ON e.id = f.id WHERE f.rel > 0 "
        "ORDER BY score DESC, e.id DESC LIMIT :limit"
    )


def search_statement(
    project_id: UUID,
    tsq: str | None,
    qv: str | None,
    flt: EpisodeFilter,
    limit: int,
    now: float,
    embedding_model: str | None,
    *,
    exact_scan_max: int,
) -> tuple[str, dict[str, Any], int]:
    """The recall statement (:func:`search_sql`) for the tsquery ``tsq`` and the query vector ``qv`` (pgvector
    text; either may be None, not both), its parameters, and the ``hnsw.ef_search`` to set before it when ``qv``
    is given."""
    pool = candidate_pool(limit)
    extra, params = filter_clause(DIALECT, flt, prefix="e.")
    # Vector candidates: fewer than text ones, as each costs HNSW work; every candidate of either list is
    # scored by both retrievers anyway (see search_sql).
    vector_pool = max(limit * 4, 40)
    params.update(p=project_id, pool=pool, limit=limit, now=now)
    if qv is not None:
        params["vpool"] = vector_pool
    if tsq is not None:
        params["tsq"] = tsq
    if qv is not None:
        params["qv"] = qv
        if embedding_model is not None:
            params["model"] = embedding_model
    sql = search_sql(
        extra,
        text_retriever=tsq is not None,
        vector_retriever=qv is not None,
        same_model=qv is not None and embedding_model is not None,
        exact_scan_max=exact_scan_max,
    )
    # The HNSW scan yields at most ef_search rows before the filters drop some: size it to the candidate pool,
    # and widen it when filters will drop rows (if too few survive, the query falls back to an exact scan).
    ef_search = min(HNSW_MAX_EF_SEARCH, max(vector_pool, MIN_EF_SEARCH) * (FILTERED_EF_FACTOR if extra else 1))
    return sql, params, ef_search


__all__ = [
    "BM25_B",
    "BM25_K1",
    "COMMON_LEXEME_MIN_ROWS",
    "COMMON_LEXEME_SHARE",
    "EXACT_SCAN_BUDGET",
    "FILTERED_EF_FACTOR",
    "HNSW_MAX_EF_SEARCH",
    "MIN_EF_SEARCH",
    "search_sql",
    "search_statement",
    "ts_query",
    "vector_text",
]
