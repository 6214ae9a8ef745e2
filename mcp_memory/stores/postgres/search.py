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

import orjson

from mcp_memory.ranking import (
    GOOD_COSINE,
    GOOD_TEXT_SHARE,
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
from mcp_memory.stores.sql.rules import COMMON_TERM_MIN_EPISODES, COMMON_TERM_SHARE, candidate_pool, distinct_words

BM25_K1 = 1.2
BM25_B = 0.75
_CLASS_WEIGHTS = {"A": 3.5, "B": 1.5, "C": 1.0, "D": 0.5}
"""Weights of the tsvector's classes: A task_description and lessons, B outcome_details, C task_type, D
context_summary (see the migrations); the SQLite adapter's bm25 column weights (4.0 and 3.0 for the two in A)."""
_FREQUENCY = " + ".join(f"{w} * cardinality(array_positions(u.weights, '{c}'))" for c, w in _CLASS_WEIGHTS.items())
_BM25_TERM = (
    f"s.idf * s.f * {BM25_K1 + 1} / (s.f + {BM25_K1} * ({1 - BM25_B} + {BM25_B} * length(e.search_text) / s.avgdl))"
)
_TSVECTOR_RANK = (
    f"(SELECT COALESCE(sum({_BM25_TERM}), 0.0) "
    f"FROM (SELECT w.idf, w.avgdl, {_FREQUENCY} AS f "
    "FROM unnest(e.search_text) AS u JOIN weights w ON w.lexeme = u.lexeme) AS s)"
)
_STORED_RANK = (
    f"(SELECT COALESCE(sum({_BM25_TERM}), 0.0) "
    "FROM (SELECT w.idf, w.avgdl, CAST(e.search_weights ->> w.lexeme AS float8) AS f FROM weights w) AS s "
    "WHERE s.f IS NOT NULL)"
)
_TEXT_RANK = f"(CASE WHEN e.search_weights IS NULL THEN {_TSVECTOR_RANK} ELSE {_STORED_RANK} END)"
"""An episode's full-text rank, BM25 over the episode's tsvector: per query word its weighted frequency ``f``
(each position counts its class's weight), the episode's length (its distinct words, ``length(tsvector)``)
against the project's average, and the word's IDF in the project (``weights``); 0 for an episode without a word
of the query. The frequencies are read from ``search_weights`` (migration 0014: a key lookup per query word, ~2 us
a candidate), or, for a row written before that revision (NULL there), from the tsvector itself (an ``unnest`` of
all its words joined with the query's, ~8 us): the same numbers either way, to the last bit."""
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
DEFAULT_EF_SEARCH = MIN_EF_SEARCH
"""``hnsw.ef_search`` of every connection of the store (schema.connect_args): a search needing no more (no filters,
limit up to 25) runs as one autocommit statement, with no transaction to set it in (BEGIN, SET, COMMIT: three
more round trips)."""
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
    tokens = distinct_words(_TS_TOKEN.findall(query))[:64]
    return " | ".join(tokens) if tokens else None


def vector_text(vector: Sequence[float]) -> str:
    """A vector in pgvector's text form, scaled to unit length (so stored vectors are comparable by dot product
    too, and a caller's unnormalised vectors do not matter).

    orjson writes the same shortest round-trip numbers as ``str`` (0.0000519 where str writes 5.19e-05: the same
    float4s) in a seventh of the time (~40 against ~270 us for 384 dimensions). What it cannot write as a JSON
    number (NaN and infinity, which it writes as null; a numpy scalar, which it refuses) is written as ``str``
    writes it, for pgvector to read or refuse as before."""
    unit = normalize(vector)
    try:
        packed = orjson.dumps(unit)
    except orjson.JSONEncodeError:
        packed = b"null"
    if b"null" not in packed:
        return packed.decode()
    return "[" + ",".join(map(str, unit)) + "]"


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
      an exact scan of its own vectors: the ``:vpool`` nearest (equal distances newest row first, as in the text
      pool and the HNSW one), whatever the other projects hold (the HNSW scan,
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
      first. Each candidate of either retriever is scored by *both*, each score computed once: a candidate both
      found has both from the legs; for one found by a single leg the other score is computed for its row alone
      (see :func:`_scored_sql`), so an episode just outside one list's cut-off (the HNSW pool, or the
      selective-word candidates) is scored as what it is there, not as a zero. An episode the retriever would not
      find at all still scores 0 there, as in ``fuse``: no word of the query (its BM25 is 0), no vector of the
      query's model, or a cosine below ``MIN_COSINE``. The scales are the retrievers' own: the best rank among
      the text hits, the best cosine among the vector hits.
    - The page: the legs carry each candidate's importance and age (read with the rows they read anyway), the
      final scores are ranked on ids, and the episodes' columns are read for the ``:limit`` returned rows only.
    Filters (``filters``, conditions on ``e``) apply inside each retriever, so the pool is of matching rows.
    """
    where = f"e.project_id = :p{filters}"
    model = " AND e.embedding_model = :model" if same_model else ""
    # Every leg carries what the final score needs besides relevance (importance, age), read from the rows it
    # reads anyway: the payload is read for the returned page only.
    carried = "e.importance_score, e.created_at"
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
            "GREATEST(tokens / GREATEST(total, 1.0), 1.0) AS avgdl, n FROM term_stats)"
        )
        # The text hits: no "project_id = :p" (each key holds the project's full id, so a row matching one is the
        # project's), as with it the planner ANDs the few rows of the keys with a bitmap of all the project's rows
        # from a B-tree on project_id, the cost that grew with the project (2 ms of 2.7 for 23,428 rows). The test
        # of holding every word comes after its IS NULL (the OR stops there): the word array of each row is an SQL
        # function's call, about 6 us, not worth paying when there are selective words.
        ctes.append(
            f"text_hits AS (SELECT e.id, {_TEXT_RANK} AS r, {carried} FROM episodes e "
            f"WHERE {_WORDS} && COALESCE((SELECT q FROM selective), (SELECT q FROM all_words)) "
            f"AND ((SELECT q FROM all_words) IS NULL OR {_WORDS} @> (SELECT q FROM all_words)){filters} "
            "ORDER BY r DESC, e.id DESC LIMIT :pool)"
        )
        # The scale of the text shares (ranking.relative): the best rank, or GOOD_TEXT_SHARE of the query's ceiling
        # (k1 + 1 times the IDFs of its words the project holds: no episode reaches it) if the best is lower.
        ctes.append(
            f"text_scale AS MATERIALIZED (SELECT GREATEST((SELECT max(r) FROM text_hits), {GOOD_TEXT_SHARE} * "
            f"{BM25_K1 + 1} * (SELECT COALESCE(sum(idf), 0.0) FROM weights WHERE n > 0)) AS m)"
        )
        ctes.append(
            "t AS (SELECT id, LEAST(r / (SELECT m FROM text_scale), 1.0) AS s, importance_score, created_at "
            "FROM text_hits WHERE r > 0)"
        )
        parts.append("t")
    if vector_retriever:
        distance = "(e.embedding <=> CAST(:qv AS vector))"
        # Equal distances, newest row first, in both scans (the final ranking's order of ties, so that a pool's
        # cut keeps the episodes it would prefer). The HNSW scan orders by the distance alone (a second key would
        # leave the index unused); an incremental sort orders its rows after, reading past :vpool only as far as
        # the ties at the cut go (:vscan, the ef_search rows the scan can yield, bounds it).
        ctes.append(
            f"approx AS MATERIALIZED (SELECT * FROM (SELECT e.id, {distance} AS d, {carried} FROM episodes e "
            "WHERE (SELECT episodes FROM project_episode_counts WHERE project_id = :p) > "
            f"{int(exact_scan_max)} AND {where}{model} AND e.embedding IS NOT NULL "
            "ORDER BY e.embedding <=> CAST(:qv AS vector) "
            "LIMIT :vscan) AS scan ORDER BY d, id DESC LIMIT :vpool)"
        )
        ctes.append(
            f"exact AS MATERIALIZED (SELECT e.id, {distance} AS d, {carried} FROM episodes e "
            f"WHERE (SELECT count(*) FROM approx) < :limit AND {where}{model} AND e.embedding IS NOT NULL "
            f"ORDER BY {distance} + 0, e.id DESC LIMIT :vpool)"
        )
        ctes.append(
            "vector_hits AS (SELECT * FROM exact UNION ALL SELECT * FROM approx WHERE NOT EXISTS (SELECT 1 FROM exact))"
        )
        # Compared as a distance: a zero vector's distance is NaN, which Postgres sorts above every number, so
        # "1 - d >= MIN_COSINE" held for it (a perfect match); "d <= 1 - MIN_COSINE" does not.
        ctes.append(
            "kept AS (SELECT id, 1.0 - d AS cos, importance_score, created_at FROM vector_hits "
            f"WHERE d <= {1.0 - MIN_COSINE})"
        )
        ctes.append(
            f"v AS (SELECT id, LEAST(cos / GREATEST(max(cos) OVER (), {GOOD_COSINE}), 1.0) AS s, importance_score, "
            "created_at FROM kept)"
        )
        parts.append("v")
    if len(parts) == 1:
        # One retriever: the weighted average over it alone is its own score.
        ctes.append(f"fused AS (SELECT id, s AS rel, importance_score, created_at FROM {parts[0]})")
    else:
        ctes.append(_scored_sql(same_model))
        # Weights of the retrievers that found anything (0 for one that found nothing: it has no say).
        wt = f"(CASE WHEN EXISTS (SELECT 1 FROM t) THEN {TEXT_WEIGHT} ELSE 0.0 END)"
        wv = f"(CASE WHEN EXISTS (SELECT 1 FROM v) THEN {VECTOR_WEIGHT} ELSE 0.0 END)"
        # The fusion itself (ranking.fuse): the weighted average of the two scores.
        ctes.append(
            f"fused AS (SELECT id, (ts * {wt} + vs * {wv}) / GREATEST({wt} + {wv}, 1e-9) AS rel, "
            "importance_score, created_at FROM scored)"
        )
    recency = (
        "power(0.5, GREATEST(0.0, CAST(:now AS float8) - extract(epoch FROM f.created_at)::float8) "
        f"/ 86400.0 / {RECENCY_HALF_LIFE_DAYS})"
    )
    # The page first, by id: only its rows are then read for the payload.
    ctes.append(
        f"page AS (SELECT f.id, f.rel * (1.0 + {IMPORTANCE_WEIGHT} * f.importance_score "
        f"+ {RECENCY_WEIGHT} * {recency}) AS score "
        "FROM fused f WHERE f.rel > 0 ORDER BY score DESC, f.id DESC LIMIT :limit)"
    )
    return (
        f"WITH {', '.join(ctes)} "
        f"SELECT {EPISODE_COLUMNS}, p.score FROM page p JOIN episodes e ON e.id = p.id "
        "ORDER BY p.score DESC, p.id DESC"
    )


def _scored_sql(same_model: bool) -> str:
    """``scored``: every candidate of either retriever (``t``, ``v``) with both its scores, each computed once.

    A candidate both found has both already. Only the score a retriever did not give is computed, for that
    candidate's row alone (a CASE runs its subquery only then): the text share of a vector hit just outside the
    text candidates, the cosine of a text hit just outside the vector pool (not a zero for being missed by the
    other list). Importance and age come from the leg that found it. MATERIALIZED: inlined, the two CASEs would be
    computed again wherever the relevance is used (the filter on it and the sort), their subqueries with them."""
    text_share = (
        f"SELECT COALESCE(LEAST({_TEXT_RANK} / NULLIF((SELECT m FROM text_scale), 0), 1.0), 0.0) "
        "FROM episodes e WHERE e.id = v.id"
    )
    same = " AND e.embedding_model = :model" if same_model else ""
    # OFFSET 0 keeps the subquery whole, so the cosine is computed once, not once per use in the CASE.
    distance = f"SELECT e.embedding <=> CAST(:qv AS vector) AS d FROM episodes e WHERE e.id = t.id{same} OFFSET 0"
    # As ``kept``: the test on the distance leaves out a zero vector's NaN.
    vector_share = (
        f"SELECT CASE WHEN x.d <= {1.0 - MIN_COSINE} THEN "
        f"LEAST((1.0 - x.d) / GREATEST((SELECT max(cos) FROM kept), {GOOD_COSINE}), 1.0) ELSE 0.0 END "
        f"FROM ({distance}) AS x"
    )
    return (
        "scored AS MATERIALIZED (SELECT COALESCE(t.id, v.id) AS id, "
        # The text leg found nothing: every text share is 0 (and its weight too), not worth a BM25 per candidate.
        "CASE WHEN t.id IS NOT NULL THEN t.s WHEN NOT EXISTS (SELECT 1 FROM t) THEN 0.0 "
        f"ELSE ({text_share}) END AS ts, "
        f"CASE WHEN v.id IS NOT NULL THEN v.s ELSE COALESCE(({vector_share}), 0.0) END AS vs, "
        "COALESCE(t.importance_score, v.importance_score) AS importance_score, "
        "COALESCE(t.created_at, v.created_at) AS created_at "
        "FROM t FULL JOIN v ON v.id = t.id)"
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
    text; either may be None, not both), its parameters, and the ``hnsw.ef_search`` the statement needs when ``qv``
    is given (to set before it unless it is the connections' own, :data:`DEFAULT_EF_SEARCH`)."""
    pool = candidate_pool(limit)
    extra, params = filter_clause(DIALECT, flt, prefix="e.")
    # Vector candidates: fewer than text ones, as each costs HNSW work; every candidate of either list is
    # scored by both retrievers anyway (see search_sql).
    vector_pool = max(limit * 4, 40)
    params.update(p=project_id, pool=pool, limit=limit, now=now)
    # The HNSW scan yields at most ef_search rows before the filters drop some: size it to the candidate pool,
    # and widen it when filters will drop rows (if too few survive, the query falls back to an exact scan).
    ef_search = min(HNSW_MAX_EF_SEARCH, max(vector_pool, MIN_EF_SEARCH) * (FILTERED_EF_FACTOR if extra else 1))
    if qv is not None:
        # ``vscan``: the HNSW scan may be read as far as it yields, to order the ties at the pool's cut newest first.
        params.update(vpool=vector_pool, vscan=max(ef_search, vector_pool))
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
    return sql, params, ef_search


__all__ = [
    "BM25_B",
    "BM25_K1",
    "COMMON_LEXEME_MIN_ROWS",
    "COMMON_LEXEME_SHARE",
    "DEFAULT_EF_SEARCH",
    "EXACT_SCAN_BUDGET",
    "FILTERED_EF_FACTOR",
    "HNSW_MAX_EF_SEARCH",
    "MIN_EF_SEARCH",
    "search_sql",
    "search_statement",
    "ts_query",
    "vector_text",
]
