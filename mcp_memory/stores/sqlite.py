"""The embedded store: SQLite through SQLAlchemy async (aiosqlite), one file, both ports.

One :class:`SqliteStore` is the working store and the durable store at once. Every method is one
transaction; write transactions start with ``BEGIN IMMEDIATE`` so that two writers (also in two processes
sharing the file) queue on SQLite's lock instead of failing a read-to-write upgrade. The file runs in WAL
mode: readers never block the writer, and each statement reads one consistent snapshot, which is what makes
``snapshot`` atomic against concurrent writes.

The calls on pause's and resume's path (``spawn_session``, ``pause_session``, ``resume_session``: the
lifecycle's one-transaction calls when this store holds working memory too; and ``snapshot``, ``record_pause``,
``get_checkpoint``, ``restore``, ``record_resume``, ``open``) skip SQLAlchemy's per-statement hand-overs: each
sends its whole transaction to the aiosqlite connection's thread once (``_write_direct`` / ``_read_direct``), same
SQL, plain ``sqlite3``. A checkpoint is one row: its state is one JSON text in ``checkpoints.state``. WAL
checkpoints run on a thread of their own (``_WalCheckpointer``), never inside a caller's commit.

Full-text search ranks with FTS5's bm25 computed from the searched project's own statistics (``_bm25_scores``):
each project's postings (``episode_terms``) and counts (``text_projects``, ``text_terms``), written in the
episode's transaction, with terms from SQLite's own FTS5 tokenizer (a TEMP table per connection). No statistic
spans projects, so nothing another project records moves this project's scores. In a large project a common term
does not make an episode a candidate (Postgres' rule), so a search costs the postings of the query's selective
terms, not the project's size times its common ones.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import threading
from array import array
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, TypeVar
from uuid import UUID

import anyio
import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from mcp_memory.errors import Internal, MemoryServiceError, Unavailable
from mcp_memory.models import (
    CheckpointData,
    CheckpointInfo,
    Episode,
    Item,
    Scope,
    ScoredEpisode,
    SessionInfo,
    SessionStatus,
    content_hash,
    to_datetime,
)
from mcp_memory.ranking import TEXT_WEIGHT, VECTOR_WEIGHT, blend, fuse, normalize, relative, similarities
from mcp_memory.stores._sql import (
    CHECKPOINT_FIELDS,
    COMMON_TERM_MIN_EPISODES,
    COMMON_TERM_SHARE,
    COMPLETE,
    LIVE,
    SCOPE,
    SESSION_PK,
    Dialect,
    SqlStore,
    as_is,
    candidate_pool,
    check_fits,
    check_writable,
    checkpoint_exists,
    checkpoint_selector,
    keys_full,
    restore_overflows,
    session_exists,
)
from mcp_memory.stores._sql_sessions import FIRST_KEYS, SessionQueries
from mcp_memory.stores.ports import EpisodeFilter, EventRecord, Limits, SearchMode

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

SCHEMA_VERSION = 6
"""1: a checkpoint's items as rows of ``checkpoint_items``. 2: as one JSON object in ``checkpoints.state``.
3: full-text statistics per project (``episode_terms``, ``text_projects``, ``episodes.text_tokens``) instead of the
FTS5 table ``episodes_fts`` that all projects shared. 4: a seal's owner and lease (``sessions.seal_token``,
``sessions.seal_until``). 5: each term's episode count per project (``text_terms``) and the episode's length in
each of its postings (``episode_terms.episode_tokens``). 6: a two-step spawn's token and lease
(``sessions.spawn_token``, ``sessions.spawn_until``: the session exists once its spawn has completed)."""

_EPISODE_TERMS_DDL = """CREATE TABLE IF NOT EXISTS {name} (
        project_pk INTEGER NOT NULL,
        term TEXT NOT NULL,
        episode_pk INTEGER NOT NULL,
        freq REAL NOT NULL,
        episode_tokens INTEGER NOT NULL,
        PRIMARY KEY (project_pk, term, episode_pk)
    ) WITHOUT ROWID"""
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS sessions (
        id INTEGER PRIMARY KEY,
        project_id TEXT NOT NULL,
        agent_instance_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        agent_type_id TEXT,
        status TEXT NOT NULL,
        sealed INTEGER NOT NULL DEFAULT 0,
        seal_token TEXT,
        seal_until REAL,
        spawn_token TEXT,
        spawn_until REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        episode_id TEXT,
        terminated_at REAL,
        terminate_result TEXT,
        UNIQUE (project_id, agent_instance_id, session_id)
    )""",
    """CREATE TABLE IF NOT EXISTS working_items (
        session_pk INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at REAL,
        PRIMARY KEY (session_pk, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        session_pk INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        event_type TEXT NOT NULL,
        at REAL NOT NULL,
        duration_ms REAL NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX IF NOT EXISTS working_expiry ON working_items (expires_at) WHERE expires_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS events_session ON events (session_pk, id)",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_pk INTEGER NOT NULL REFERENCES sessions(id),
        checkpoint_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        keys_count INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        label TEXT,
        content_hash TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT '{}',
        UNIQUE (session_pk, checkpoint_id)
    )""",
    "CREATE INDEX IF NOT EXISTS checkpoints_session_created ON checkpoints (session_pk, created_at, id)",
    """CREATE TABLE IF NOT EXISTS episodes (
        id INTEGER PRIMARY KEY,
        episode_id TEXT NOT NULL UNIQUE,
        project_id TEXT NOT NULL,
        agent_instance_id TEXT NOT NULL,
        session_id TEXT,
        task_type TEXT NOT NULL,
        task_description TEXT NOT NULL,
        outcome TEXT NOT NULL,
        outcome_details TEXT NOT NULL DEFAULT '',
        lessons_learned TEXT NOT NULL DEFAULT '[]',
        importance_score REAL NOT NULL,
        context_summary TEXT NOT NULL DEFAULT '',
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        embedding BLOB,
        embedding_model TEXT,
        text_tokens INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS episodes_project_created ON episodes (project_id, created_at)",
    # list_sessions: newest activity first, per project or per agent, paged by (updated_at, id). Created at every
    # start like the rest (IF NOT EXISTS), so files of schema 5 get them without a version bump: an index changes
    # nothing a release that does not know it reads or writes.
    "CREATE INDEX IF NOT EXISTS sessions_project_activity ON sessions (project_id, updated_at, id)",
    "CREATE INDEX IF NOT EXISTS sessions_agent_activity ON sessions (project_id, agent_instance_id, updated_at, id)",
    # The work list of the embedding retry (few rows, looked up every retry interval).
    "CREATE INDEX IF NOT EXISTS episodes_unembedded ON episodes (created_at, id) WHERE embedding IS NULL",
    # Full text, per project (see _bm25_scores): each project's episode count and total tokens, the number of its
    # episodes holding each term, and the postings of its episodes' terms (each with the episode's length, so that
    # ranking reads no episode row but the results'). ``text_projects.id`` keys the rest (a small integer, not a
    # 36-character UUID).
    """CREATE TABLE IF NOT EXISTS text_projects (
        id INTEGER PRIMARY KEY,
        project_id TEXT NOT NULL UNIQUE,
        episodes INTEGER NOT NULL DEFAULT 0,
        tokens INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS text_terms (
        project_pk INTEGER NOT NULL,
        term TEXT NOT NULL,
        episodes INTEGER NOT NULL,
        PRIMARY KEY (project_pk, term)
    ) WITHOUT ROWID""",
    _EPISODE_TERMS_DDL.format(name="episode_terms"),
]

# A checkpoint's description and its key (the paging bound): every column but its state.
_CHECKPOINT_FIELDS = ("id", *CHECKPOINT_FIELDS)
_CheckpointRow = namedtuple("_CheckpointRow", _CHECKPOINT_FIELDS)  # type: ignore[misc]
_CHECKPOINT_COLUMNS = ", ".join(_CHECKPOINT_FIELDS)
_CHECKPOINT_COLUMNS_C = ", ".join(f"c.{f}" for f in _CHECKPOINT_FIELDS)
_WRITABLE_SESSION = (
    "s.project_id = :p AND s.agent_instance_id = :a AND s.session_id = :s AND s.sealed = 0 AND s.status != 'terminated'"
    " AND s.spawn_until IS NULL"
)
_INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (session_pk, checkpoint_id, created_at, keys_count, bytes, label, content_hash, "
    "metadata, state) SELECT s.id, :cid, :at, :n, :b, :label, :h, :m, :state "
    f"FROM sessions s WHERE {_WRITABLE_SESSION} "
    "ON CONFLICT (session_pk, checkpoint_id) DO NOTHING RETURNING session_pk"
)
_SET_SQL = f"""
INSERT INTO working_items (session_pk, key, value, expires_at)
SELECT s.id, :k, :v, :e FROM sessions s
WHERE {_WRITABLE_SESSION}
  AND (EXISTS (SELECT 1 FROM working_items WHERE session_pk = s.id AND key = :k AND {LIVE})
       OR (SELECT COUNT(*) FROM working_items WHERE session_pk = s.id AND {LIVE}) < :max)
ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
RETURNING 1
"""
_FTS_TOKEN = re.compile(r"\w+", re.UNICODE)
_MAX_QUERY_WORDS = 64
_MAX_QUERY_TERMS = _MAX_QUERY_WORDS
"""The query's first 64 distinct words, then its first 64 distinct terms: unicode61 splits a word on ``_`` (and
other separators \\w does not know), so one word can be many terms; each term costs a read of its postings."""
_AND_MERGE_TERMS = 4
"""A query of common terms only (see :func:`_ranking_sql`): how many of its rarest terms are intersected by a merge
of their postings before the others are looked up per episode."""
_VECTOR_SCAN_LIMIT = 20_000
_DIALECT = Dialect(
    read_json=json.loads,
    read_time=to_datetime,
    read_epoch=as_is,
    write_uuid=str,
    write_time=as_is,
    before_bound="AND (created_at < :b_at OR (created_at = :b_at AND id < :b_id))",
)


_scope_params = _DIALECT.scope_params


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
_TEXT_BATCH = 500
_INSERT_EPISODE = (
    "INSERT INTO episodes (episode_id, project_id, agent_instance_id, session_id, task_type, task_description, "
    "outcome, outcome_details, lessons_learned, importance_score, context_summary, metadata, created_at, embedding, "
    "embedding_model, text_tokens) VALUES (:id, :p, :a, :s, :tt, :td, :o, :od, :ll, :imp, :cs, :m, :at, :emb, "
    f":model, (SELECT COUNT(*) FROM {_TOKENS})) RETURNING id, text_tokens"
)


def _create_tokenizer(db: Any) -> None:
    """This connection's tokenizer: a TEMP (per-connection, never stored) contentless FTS5 table with the
    episodes' columns and tokenizer, and an ``fts5vocab`` table that lists the tokens of the rows put in it. SQLite
    tokenizes, so the terms are exactly FTS5's ``porter unicode61`` terms. ``db``: a DB-API connection."""
    cur = db.cursor()
    for statement in _TOKENIZER_DDL:
        cur.execute(statement)
    cur.close()


def _text_fields(
    task_type: str, description: str, details: str, lessons: Sequence[str], summary: str
) -> tuple[str, ...]:
    """An episode's full-text columns, in :data:`_TEXT_COLUMNS` order (``bug_fix`` is two words)."""
    return (task_type.replace("_", " "), description, details, "\n".join(lessons), summary)


def _tokenize(db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Put ``rows`` (rowid and the :data:`_TEXT_COLUMNS`) in this connection's tokenizer, alone: its token list
    :data:`_TOKENS` then holds their tokens. Every use starts here, so nothing of an earlier one is seen (the temp
    tables take part in the transaction, so a rollback also undoes what a failed use put there)."""
    db.execute(_TOKENIZER_CLEAR)
    db.executemany(_TOKENIZER_INSERT, rows)


def _index_episode(db: sqlite3.Connection, episode_pk: int, tokens: int) -> None:
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


def _query_terms(db: sqlite3.Connection, query: str) -> dict[str, int]:
    """A user's words as FTS5 terms, each with the number of the query's distinct words that gave it: the query
    ``"running runs"`` weighs the term ``run`` twice, as FTS5 did for the OR of the two quoted words. Words are
    data, never FTS syntax (nothing here is a MATCH expression). At most :data:`_MAX_QUERY_WORDS` words and
    :data:`_MAX_QUERY_TERMS` terms, the first ones of the query."""
    words = list(dict.fromkeys(_FTS_TOKEN.findall(query.lower())))[:_MAX_QUERY_WORDS]
    if not words:
        return {}
    empty = ("",) * (len(_TEXT_COLUMNS) - 1)
    _tokenize(db, [(i, word, *empty) for i, word in enumerate(words, 1)])
    rows = db.execute(
        f"SELECT term, COUNT(DISTINCT doc) FROM {_TOKENS} GROUP BY term "
        f'ORDER BY MIN(doc * 1000000 + "offset") LIMIT {_MAX_QUERY_TERMS}'
    ).fetchall()
    return {term: int(n) for term, n in rows}


def _bm25_scores(
    db: sqlite3.Connection, project_id: str, query: str, extra: str, params: Mapping[str, Any], pool: int
) -> dict[str, float]:
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
    tokenizer's two, and one for the statistics) before the ranking one."""
    terms = _query_terms(db, query)
    if not terms:
        return {}
    names = {f"t{i}": term for i, term in enumerate(terms)}
    rows = db.execute(
        "SELECT p.id, p.episodes, p.tokens, t.term, t.episodes FROM text_projects p LEFT JOIN text_terms t "
        f"ON t.project_pk = p.id AND t.term IN ({', '.join(':' + n for n in names)}) WHERE p.project_id = :p",
        {"p": project_id, **names},
    ).fetchall()
    if not rows or not rows[0][1] or not rows[0][2]:
        return {}
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
        return {}
    sql = _ranking_sql(selective, [i for _, i in sorted(common)], extra)
    return {episode_id: score for episode_id, score in db.execute(sql, bound)}


def _bm25_term(t: str) -> str:
    """Term ``:t<i>``'s BM25 factor in posting ``t`` (times its weight, that is the score's term), as fts5_aux.c
    computes it, operation for operation (SQLite's REAL is C's double)."""
    return (
        f"(({t}.freq * ({_BM25_K1} + 1.0)) / "
        f"({t}.freq + {_BM25_K1} * (1 - {_BM25_B} + {_BM25_B} * {t}.episode_tokens / :avgdl)))"
    )


def _ranking_sql(selective: list[int], common: list[int], extra: str) -> str:
    """The ranking statement of :func:`_bm25_scores`: ``(episode_id, score)``, the ``:pool`` best, best first.

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
        f"{group} ORDER BY score DESC, id LIMIT :pool"
    )
    return (
        f"{'WITH ' + ', '.join(ctes) + ' ' if ctes else ''}SELECT e.episode_id, r.score FROM ({inner}) AS r "
        "JOIN episodes e ON e.id = r.id WHERE e.project_id = :p ORDER BY r.score DESC, r.id"
    )


def _episode_params(ep: Episode, embedding: Sequence[float] | None, model: str | None) -> dict[str, Any]:
    """The parameters of :data:`_INSERT_EPISODE` for one episode."""
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
        "emb": _vector_to_blob(embedding) if embedding is not None else None,
        "model": model if embedding is not None else None,
    }


def _top_cosines(rows: list[tuple[str, bytes]], query: list[float], top: int) -> dict[str, float]:
    """The ``top`` best cosines of stored (unit-length) vectors against a unit-length query."""
    q = array("f", query)
    scored = []
    for episode_id, blob in rows:
        vec = _blob_to_vector(blob)
        if len(vec) == len(q):
            scored.append((sum(a * b for a, b in zip(vec, q, strict=True)), episode_id))
    scored.sort(reverse=True)
    return {episode_id: cos for cos, episode_id in scored[:top]}


def _vector_to_blob(vector: Sequence[float]) -> bytes:
    return array("f", normalize(vector)).tobytes()


def _blob_to_vector(blob: bytes) -> array[float]:
    vec = array("f")
    vec.frombytes(blob)
    return vec


def _encode_state(items: Mapping[str, Item]) -> str:
    """A checkpoint's items as one JSON object, key -> [value's JSON text as a string, expires_at or null],
    keys sorted. The values travel as the strings they are: nothing of them is decoded or re-encoded."""
    return orjson.dumps(
        {key: (item.value, item.expires_at) for key, item in items.items()}, option=orjson.OPT_SORT_KEYS
    ).decode()


def _decode_state(state: str) -> dict[str, Item]:
    """The inverse of :func:`_encode_state` (the values stay JSON text)."""
    decoded: dict[str, list[Any]] = orjson.loads(state)
    return {key: Item(value, expires_at) for key, (value, expires_at) in decoded.items()}


async def _migrate_1_to_2(conn: AsyncConnection) -> None:
    """Schema 1 -> 2: each checkpoint's ``checkpoint_items`` rows become its ``state`` column, then the table
    goes. Runs inside the start-up transaction, so a file is either wholly converted or untouched."""
    await conn.exec_driver_sql("ALTER TABLE checkpoints ADD COLUMN state TEXT NOT NULL DEFAULT '{}'")
    checkpoint_pks = (await conn.exec_driver_sql("SELECT id FROM checkpoints ORDER BY id")).scalars().all()
    for pk in checkpoint_pks:
        result = await conn.execute(
            text("SELECT key, value, expires_at FROM checkpoint_items WHERE checkpoint_pk = :c ORDER BY key"),
            {"c": pk},
        )
        items = {r.key: Item(r.value, r.expires_at) for r in result}
        if items:
            await conn.execute(
                text("UPDATE checkpoints SET state = :state WHERE id = :c"), {"state": _encode_state(items), "c": pk}
            )
    await conn.exec_driver_sql("DROP TABLE checkpoint_items")


async def _migrate_3_to_4(conn: AsyncConnection) -> None:
    """Schema 3 -> 4: a seal's owner (the terminate that made it) and lease. A seal made before has neither: any
    terminate may take it over."""
    columns = {r.name for r in await conn.exec_driver_sql("PRAGMA table_info(sessions)")}
    for column, kind in (("seal_token", "TEXT"), ("seal_until", "REAL")):
        if column not in columns:  # (a file built with the newer table has them)
            await conn.exec_driver_sql(f"ALTER TABLE sessions ADD COLUMN {column} {kind}")


async def _migrate_5_to_6(conn: AsyncConnection) -> None:
    """Schema 5 -> 6: a two-step spawn's token and lease. A session made before has neither: it is complete."""
    columns = {r.name for r in await conn.exec_driver_sql("PRAGMA table_info(sessions)")}
    for column, kind in (("spawn_token", "TEXT"), ("spawn_until", "REAL")):
        if column not in columns:  # (a file built with the newer table has them)
            await conn.exec_driver_sql(f"ALTER TABLE sessions ADD COLUMN {column} {kind}")


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """Schema 2 -> 3: postings and per-project statistics for the existing episodes (:func:`_index_episodes`, in
    schema 5's tables: :func:`_migrate_4_to_5` then has nothing to do), then the shared ``episodes_fts`` goes. On
    the start-up transaction's connection, so a file is either wholly converted or untouched."""
    if "text_tokens" not in {r[1] for r in db.execute("PRAGMA table_info(episodes)")}:
        db.execute("ALTER TABLE episodes ADD COLUMN text_tokens INTEGER NOT NULL DEFAULT 0")
    _index_episodes(db, 0)
    db.execute("DROP TABLE IF EXISTS episodes_fts")


def _index_episodes(db: sqlite3.Connection, after: int) -> None:
    """Index the episodes whose primary key is above ``after`` (rows with no postings yet): their lengths, their
    postings and their projects' counts, tokenized by SQLite as :func:`_index_episode` does, :data:`_TEXT_BATCH`
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
            (last, _TEXT_BATCH),
        ).fetchall()
        if not batch:
            break
        _tokenize(db, [(pk, *_text_fields(tt, td, od, json.loads(ll), cs)) for pk, tt, td, od, ll, cs in batch])
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


def _migrate_4_to_5(db: sqlite3.Connection) -> None:
    """Schema 4 -> 5: each posting gets its episode's length (the table is rebuilt with the new column) and each
    project its terms' episode counts, from the postings. In the start-up transaction, as the others. Nothing to do
    for postings written in schema 5's table (a file of schema 2 converted on the way)."""
    if "episode_tokens" in {r[1] for r in db.execute("PRAGMA table_info(episode_terms)")}:
        return
    db.execute(_EPISODE_TERMS_DDL.format(name="episode_terms_5"))
    db.execute(
        "INSERT INTO episode_terms_5 (project_pk, term, episode_pk, freq, episode_tokens) "
        "SELECT t.project_pk, t.term, t.episode_pk, t.freq, e.text_tokens FROM episode_terms t "
        "JOIN episodes e ON e.id = t.episode_pk ORDER BY t.project_pk, t.term, t.episode_pk"
    )
    db.execute("DROP TABLE episode_terms")
    db.execute("ALTER TABLE episode_terms_5 RENAME TO episode_terms")
    db.execute(
        "INSERT INTO text_terms (project_pk, term, episodes) "
        "SELECT project_pk, term, COUNT(*) FROM episode_terms GROUP BY project_pk, term"
    )


def _load_episodes(db: sqlite3.Connection, episodes: Sequence[Episode]) -> None:
    """Insert ``episodes`` (no embeddings) at once: the rows by one ``executemany``, then indexed as a batch
    (:func:`_index_episodes`). The same rows, postings and counts as ``add_episode`` one by one, in a fraction of
    the time: for tests and benchmarks that need a large project. In the caller's write transaction."""
    (after,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM episodes").fetchone()
    db.execute(_TOKENIZER_CLEAR)  # text_tokens 0 until indexed
    insert = _INSERT_EPISODE.removesuffix(" RETURNING id, text_tokens")
    db.executemany(insert, [_episode_params(ep, None, None) for ep in episodes])
    _index_episodes(db, after)


def _writable_pk(scope: Scope, row: tuple[Any, ...] | None) -> int:
    """A session's primary key from its ``(id, status, sealed)`` row, or the error that says why it takes no
    writes."""
    check_writable(scope, None if row is None else (row[1], row[2]))
    assert row is not None
    return int(row[0])


def _writable_pk_sync(db: sqlite3.Connection, scope: Scope) -> int:
    row = db.execute(
        f"SELECT id, status, sealed FROM sessions WHERE {SCOPE} AND {COMPLETE}", _scope_params(scope)
    ).fetchone()
    return _writable_pk(scope, row)


_INSERT_EVENT = (
    "INSERT INTO events (session_pk, event_type, at, duration_ms, outcome, detail) "
    "VALUES (:pk, :t, :at, :d, :o, :detail)"
)
_INSERT_SESSION = (
    "INSERT INTO sessions (project_id, agent_instance_id, session_id, agent_type_id, status, created_at, updated_at, "
    "metadata) VALUES (:p, :a, :s, :t, 'running', :now, :now, :m) ON CONFLICT DO NOTHING RETURNING *"
)
_INSERT_SPAWNING = (
    "INSERT INTO sessions (project_id, agent_instance_id, session_id, agent_type_id, status, created_at, updated_at, "
    "metadata, spawn_token, spawn_until) VALUES (:p, :a, :s, :t, 'running', :now, :now, :m, :tok, :until) "
    "ON CONFLICT DO NOTHING RETURNING *"
)
_SET_STATUS = "UPDATE sessions SET status = :status, updated_at = :now WHERE id = :pk"


def _event_params(session_pk: int, ev: EventRecord) -> dict[str, Any]:
    # Built as the event is written: its measured duration counts the store's own work.
    return {
        "pk": session_pk,
        "t": ev.event_type,
        "at": ev.at,
        "d": ev.measured_ms(),
        "o": ev.outcome,
        "detail": json.dumps(dict(ev.detail), default=str),
    }


def _set_status_sync(db: sqlite3.Connection, session_pk: int, status: SessionStatus, event: EventRecord) -> None:
    db.execute(_SET_STATUS, {"status": status.value, "now": event.at, "pk": session_pk})
    db.execute(_INSERT_EVENT, _event_params(session_pk, event))


_UPSERT_ITEM = (
    "INSERT INTO working_items (session_pk, key, value, expires_at) VALUES (:pk, :k, :v, :e) "
    "ON CONFLICT (session_pk, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)


def _item_rows(session_pk: int, items: Mapping[str, Item], now: float) -> list[dict[str, Any]]:
    """The rows of the items still live at ``now`` (expired ones are skipped)."""
    return [
        {"pk": session_pk, "k": key, "v": item.value, "e": item.expires_at}
        for key, item in items.items()
        if item.expires_at is None or item.expires_at > now
    ]


def _restore_sync(
    db: sqlite3.Connection, pk: int, items: Mapping[str, Item], clear: bool, now: float, limits: Limits
) -> int:
    """``restore``'s writes in the caller's transaction (which rolls back on ``TooLarge``)."""
    if clear:
        check_fits(items, now, limits)
        db.execute("DELETE FROM working_items WHERE session_pk = :pk", {"pk": pk})
    rows = _item_rows(pk, items, now)
    db.executemany(_UPSERT_ITEM, rows)
    if not clear:
        (live,) = db.execute(
            f"SELECT COUNT(*) FROM working_items WHERE session_pk = :pk AND {LIVE}", {"pk": pk, "now": now}
        ).fetchone()
        if live > limits.max_keys:
            raise restore_overflows(limits)
    return len(rows)


def _checkpoint_params(scope: Scope, info: CheckpointInfo, items: Mapping[str, Item]) -> dict[str, Any]:
    """The parameters of :data:`_INSERT_CHECKPOINT`."""
    return {
        **_scope_params(scope),
        "cid": info.checkpoint_id,
        "at": info.created_at.timestamp(),
        "n": info.keys_count,
        "b": info.bytes,
        "label": info.label,
        "h": info.content_hash,
        "m": json.dumps(info.metadata),
        "state": _encode_state(items),
    }


def _in_autocommit(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``fn`` outside a transaction, each statement atomic on its own (on the connection's own thread)."""
    return fn(db)


def _in_open_transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``fn`` inside the transaction the connection has open (on the connection's own thread)."""
    return fn(db)


def _in_transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``fn`` as one write transaction (on the connection's own thread)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


class _WalCheckpointer:
    """Copies the WAL back into the database file on a thread and connection of its own.

    SQLite's automatic checkpoint runs inside the commit that crosses its threshold (1,000 pages), so about one
    pause in 30 at 1,000 keys paid for copying ~4 MB and syncing the database file: ~8 ms, the whole p99 of
    pause. Here our connections turn that off and this thread runs a PASSIVE checkpoint (it never blocks
    readers or the writer) after every ``every`` write transactions or ``interval`` seconds, whichever comes
    first, and once more at close."""

    def __init__(self, path: str, every: int = 32, interval: float = 1.0) -> None:
        self._path = path
        self._every = every
        self._interval = interval
        self._writes = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mcp-memory-wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def note_write(self) -> None:
        """Called after each committed write transaction (on the event loop; cheap)."""
        self._writes += 1
        if self._writes >= self._every:
            self._wake.set()

    def stop(self) -> None:
        """Finish: one last checkpoint, then the thread ends (blocking; call it off the event loop)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=True)
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                if self._writes or self._stopping:
                    self._writes = 0
                    try:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error as exc:  # busy or gone: the next round tries again
                        logger.debug("WAL checkpoint of %s failed: %s", self._path, exc)
                if self._stopping:
                    return
        except sqlite3.Error:
            logger.warning("the WAL checkpoint thread of %s stopped", self._path, exc_info=True)
        finally:
            if db is not None:
                db.close()


class SqliteStore(SessionQueries, SqlStore):
    """Working store and durable store on one SQLite file (see the module docstring)."""

    _dialect = _DIALECT
    # Session discovery (_sql_sessions): a listed session's first live keys, as a JSON array.
    _FIRST_KEYS = (
        "(SELECT json_group_array(key) FROM (SELECT w.key FROM working_items w WHERE w.session_pk = s.id "
        f"AND (w.expires_at IS NULL OR w.expires_at > :now) ORDER BY w.key LIMIT {FIRST_KEYS}))"
    )

    @staticmethod
    def _read_keys(value: Any) -> tuple[str, ...]:
        return tuple(json.loads(value)) if value else ()

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        """``synchronous``: SQLite's durability level. FULL (the default) makes every commit, so every
        acknowledged pause, survive a power loss; NORMAL is about twice as fast per write and survives a crash
        of this process but may lose the last commits on power loss."""
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self._url = make_url(url)
        self._synchronous = synchronous
        self._engine: AsyncEngine | None = None
        self._writer: AsyncConnection | None = None
        # Writers in this process queue here instead of spinning on SQLite's busy handler.
        self._write_lock = anyio.Lock()
        self._checkpointer: _WalCheckpointer | None = None

    # -- plumbing --------------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The database file (``:memory:`` for an in-memory database)."""
        return self._url.database or ":memory:"

    async def start(self) -> None:
        """Open the engine and create the schema if the file is new."""
        if self._engine is not None:
            return
        if self.path != ":memory:":
            await (await anyio.Path(self.path).expanduser()).parent.mkdir(parents=True, exist_ok=True)
        # Every transaction here ends explicitly, so the pool's reset-on-return ROLLBACK is a wasted hop.
        engine = create_async_engine(self._url, connect_args={"timeout": 30}, pool_reset_on_return=None)
        synchronous = self._synchronous
        in_file = self.path != ":memory:"

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let us issue BEGIN ourselves (pysqlite's implicit transactions are wrong for this).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            for pragma in (
                "PRAGMA journal_mode=WAL",
                f"PRAGMA synchronous={synchronous}",
                "PRAGMA foreign_keys=ON",
                "PRAGMA busy_timeout=30000",
                # Checkpoints run on a thread of their own (see _WalCheckpointer), not inside a user's commit.
                f"PRAGMA wal_autocheckpoint={0 if in_file else 1000}",
            ):
                cur.execute(pragma)
            cur.close()
            _create_tokenizer(dbapi_conn)

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            if options.get("mcp_memory_autocommit"):
                return  # one statement: atomic on its own, no transaction needed
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("mcp_memory_write") else "BEGIN")

        self._engine = engine
        try:
            async with self._write() as conn:
                for statement in _SCHEMA:
                    await conn.exec_driver_sql(statement)
                row = (await conn.execute(text("SELECT version FROM schema_version"))).first()
                if row is None:
                    await conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": SCHEMA_VERSION})
                elif row[0] > SCHEMA_VERSION:
                    raise Unavailable(
                        f"the database {self.path} has schema version {row[0]}, newer than this "
                        f"mcp-memory understands ({SCHEMA_VERSION}); upgrade mcp-memory"
                    )
                elif row[0] < SCHEMA_VERSION:
                    await self._migrate(conn, row[0])
        except BaseException:
            await self._drop_writer()
            self._engine = None
            await engine.dispose()
            raise
        if in_file:
            self._checkpointer = _WalCheckpointer(str(await anyio.Path(self.path).expanduser()))
            self._checkpointer.start()

    async def _migrate(self, conn: AsyncConnection, version: int) -> None:
        """Bring a file of an older schema up to ``SCHEMA_VERSION`` (inside start-up's one transaction)."""
        if version == 1:
            await _migrate_1_to_2(conn)
            version = 2
        if version == 2:
            await self._on_thread(conn, _migrate_2_to_3)
            version = 3
        if version == 3:
            await _migrate_3_to_4(conn)
            version = 4
        if version == 4:
            await self._on_thread(conn, _migrate_4_to_5)
            version = 5
        if version == 5:
            await _migrate_5_to_6(conn)
            version = 6
        await conn.execute(text("UPDATE schema_version SET version = :v"), {"v": version})
        logger.info("migrated the SQLite store %s to schema version %d", self.path, version)

    async def close(self) -> None:
        async with self._write_lock:
            await self._drop_writer()
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await anyio.to_thread.run_sync(checkpointer.stop)
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def ping(self) -> dict[str, Any]:
        """Check the store answers; returns facts for ``mcp-memory doctor``."""
        async with self._read(statements=2) as conn:
            version = (await conn.execute(text("SELECT sqlite_version()"))).scalar_one()
            schema = (await conn.execute(text("SELECT version FROM schema_version"))).scalar_one()
            sessions = (await conn.execute(text("SELECT COUNT(*) FROM sessions"))).scalar_one()
            episodes = (await conn.execute(text("SELECT COUNT(*) FROM episodes"))).scalar_one()
        return {
            "sqlite_version": version,
            "schema_version": schema,
            "sessions": sessions,
            "episodes": episodes,
            "path": self.path,
        }

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise Unavailable("the SQLite store is not started")
        return self._engine

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except MemoryServiceError:
            raise
        except (OperationalError, sqlite3.OperationalError) as exc:
            logger.warning("SQLite operational error: %s", exc)
            raise Unavailable("the SQLite store is busy or unreachable; retry later") from exc
        except (DBAPIError, sqlite3.DatabaseError) as exc:
            logger.exception("SQLite error")
            raise Internal("the store failed unexpectedly; see the server log") from exc

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """The single writer: one kept-open connection, one transaction at a time (SQLite has one writer
        anyway). Commit and rollback are shielded from cancellation so the connection is never left
        inside a transaction; if either fails, the connection is dropped and reopened next time."""
        engine = self._require_engine()
        async with self._guard(), self._write_lock:
            if self._writer is None:
                conn = await engine.connect()
                self._writer = await conn.execution_options(mcp_memory_write=True)
            conn = self._writer
            txn = await conn.begin()
            try:
                yield conn
            except BaseException:
                with anyio.CancelScope(shield=True):
                    try:
                        await txn.rollback()
                    except Exception:
                        await self._drop_writer()
                raise
            with anyio.CancelScope(shield=True):
                try:
                    await txn.commit()
                except BaseException:
                    await self._drop_writer()
                    raise
            if self._checkpointer is not None:
                self._checkpointer.note_write()

    async def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                await writer.invalidate()
                await writer.close()
            except Exception:
                logger.debug("closing a broken writer connection failed", exc_info=True)

    @asynccontextmanager
    async def _read(self, *, statements: int = 1) -> AsyncIterator[AsyncConnection]:
        """A read-only connection. One statement reads one consistent snapshot by itself; several
        (``statements > 1``) share a transaction so that they see the same snapshot."""
        engine = self._require_engine()
        async with self._guard(), engine.connect() as conn:
            if statements > 1:
                async with conn.begin():
                    yield conn
            else:
                yield await conn.execution_options(mcp_memory_autocommit=True)

    async def _driver(self, conn: AsyncConnection) -> Any:
        """The aiosqlite connection under a SQLAlchemy one."""
        raw = await conn.get_raw_connection()
        return raw.driver_connection

    async def _write_direct(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """A write transaction run whole on the writer connection's own thread: one hand-over to that thread
        instead of three or four per statement through SQLAlchemy's aiosqlite adapter (each one a thread wake-up
        on both sides, ~0.1-0.2 ms; a pause's five statements spent more there than in SQLite itself). For the
        hot lifecycle calls; ``fn`` speaks plain ``sqlite3`` with the same SQL text and named parameters.

        The call is shielded from cancellation: the thread finishes the transaction (commit or rollback)
        whatever happens to the caller, and the caller learns which."""
        engine = self._require_engine()
        async with self._guard(), self._write_lock:
            if self._writer is None:
                conn = await engine.connect()
                self._writer = await conn.execution_options(mcp_memory_write=True)
            driver = await self._driver(self._writer)
            try:
                with anyio.CancelScope(shield=True):
                    # aiosqlite's one way to run a function on its thread (stable since 0.17).
                    result: _T = await driver._execute(_in_transaction, driver._conn, fn)
            except MemoryServiceError:
                raise  # raised by fn, after its rollback: the connection is clean
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._drop_writer()
                raise
            if self._checkpointer is not None:
                self._checkpointer.note_write()
            return result

    async def _read_direct(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """One read (a single statement, so one consistent snapshot) run on a reader's own thread in one
        hand-over; see :meth:`_write_direct`."""
        engine = self._require_engine()
        async with self._guard(), engine.connect() as conn:
            driver = await self._driver(conn)
            result: _T = await driver._execute(_in_autocommit, driver._conn, fn)
            return result

    async def _on_thread(self, conn: AsyncConnection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn`` run on ``conn``'s own thread in one hand-over, inside the transaction ``conn`` has open (see
        :meth:`_write_direct`); for several statements between SQLAlchemy ones of the same transaction."""
        driver = await self._driver(conn)
        result: _T = await driver._execute(_in_open_transaction, driver._conn, fn)
        return result

    async def _writable_session(self, conn: AsyncConnection, scope: Scope) -> int:
        row = (
            await conn.execute(
                text(f"SELECT id, status, sealed FROM sessions WHERE {SCOPE} AND {COMPLETE}"),
                _scope_params(scope),
            )
        ).first()
        return _writable_pk(scope, None if row is None else tuple(row))

    @staticmethod
    async def _live_count(conn: AsyncConnection, session_pk: int, now: float) -> int:
        return int(
            (
                await conn.execute(
                    text(f"SELECT COUNT(*) FROM working_items WHERE session_pk = :pk AND {LIVE}"),
                    {"pk": session_pk, "now": now},
                )
            ).scalar_one()
        )

    # -- working store ---------------------------------------------------------------------------------
    async def open(self, scope: Scope, items: Mapping[str, Item], now: float, limits: Limits) -> int:
        check_fits(items, now, limits)

        def open_(db: sqlite3.Connection) -> int:
            rows = _item_rows(_writable_pk_sync(db, scope), items, now)
            db.executemany(_UPSERT_ITEM, rows)
            return len(rows)

        return await self._write_direct(open_)

    async def set(self, scope: Scope, key: str, item: Item, now: float, limits: Limits) -> None:
        # The hot path: one statement checks the session is writable and the key fits, and upserts.
        params = {
            **_scope_params(scope),
            "k": key,
            "v": item.value,
            "e": item.expires_at,
            "now": now,
            "max": limits.max_keys,
        }
        async with self._write() as conn:
            if (await conn.execute(text(_SET_SQL), params)).first() is not None:
                await self._maybe_purge(conn, now)
                return
            await self._writable_session(conn, scope)  # raises NotFound / Conflict if that is why
            raise keys_full(scope, limits)

    async def delete(self, scope: Scope, key: str, now: float) -> bool:
        async with self._write() as conn:
            pk = await self._writable_session(conn, scope)
            row = (
                await conn.execute(
                    text("DELETE FROM working_items WHERE session_pk = :pk AND key = :k RETURNING expires_at"),
                    {"pk": pk, "k": key},
                )
            ).first()
        return row is not None and (row.expires_at is None or row.expires_at > now)

    async def list_keys(self, scope: Scope, prefix: str, now: float) -> list[str]:
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT key FROM working_items WHERE session_pk = {SESSION_PK} AND {LIVE} "
                    "AND substr(key, 1, :n) = :prefix ORDER BY key"
                ),
                {**_scope_params(scope), "now": now, "n": len(prefix), "prefix": prefix},
            )
            return [row.key for row in result]

    async def snapshot(self, scope: Scope, now: float) -> dict[str, Item]:
        sql = (
            f"SELECT key, value, expires_at FROM working_items WHERE session_pk = {SESSION_PK} AND {LIVE} ORDER BY key"
        )
        params = {**_scope_params(scope), "now": now}

        def read(db: sqlite3.Connection) -> dict[str, Item]:
            # One statement, so one consistent snapshot; the items are built on the reader's thread.
            return {key: Item(value, expires_at) for key, value, expires_at in db.execute(sql, params)}

        return await self._read_direct(read)

    async def restore(self, scope: Scope, items: Mapping[str, Item], clear: bool, now: float, limits: Limits) -> int:
        if clear:
            check_fits(items, now, limits)

        def restore(db: sqlite3.Connection) -> int:
            return _restore_sync(db, _writable_pk_sync(db, scope), items, clear, now, limits)

        return await self._write_direct(restore)

    async def clear(self, scope: Scope, now: float) -> int:
        async with self._write() as conn:
            pk = (await conn.execute(text(f"SELECT {SESSION_PK}"), _scope_params(scope))).scalar()
            if pk is None:
                return 0
            live = await self._live_count(conn, pk, now)
            await conn.execute(text("DELETE FROM working_items WHERE session_pk = :pk"), {"pk": pk})
            return live

    # -- sessions and events ---------------------------------------------------------------------------
    @staticmethod
    async def _insert_event(conn: AsyncConnection, session_pk: int, ev: EventRecord) -> None:
        await conn.execute(text(_INSERT_EVENT), _event_params(session_pk, ev))

    async def create_session(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
    ) -> SessionInfo:
        async with self._write() as conn:
            pk = (
                await conn.execute(
                    text(_INSERT_SESSION),
                    {
                        **_scope_params(scope),
                        "t": str(agent_type_id) if agent_type_id else None,
                        "now": now,
                        "m": json.dumps(dict(metadata)),
                    },
                )
            ).scalar()
            if pk is None:
                status = (
                    await conn.execute(
                        text("SELECT status FROM sessions WHERE id = " + SESSION_PK), _scope_params(scope)
                    )
                ).scalar()
                raise session_exists(scope, status)
            await self._insert_event(conn, pk, event)
        session = await self.get_session(scope)
        assert session is not None
        return session

    async def begin_spawn(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
        token: str,
        lease_seconds: float,
    ) -> SessionInfo:
        params = {
            **_scope_params(scope),
            "t": str(agent_type_id) if agent_type_id else None,
            "now": now,
            "m": json.dumps(dict(metadata)),
            "tok": token,
            "until": now + lease_seconds,
        }
        async with self._write() as conn:
            await self._take_over_lapsed_spawn(conn, params)
            row = (await conn.execute(text(_INSERT_SPAWNING), params)).first()
            if row is None:
                raise await self._refuse_spawn(conn, scope, params)
            await self._insert_event(conn, row.id, event)
        return _DIALECT.session(row)

    async def discard_session(self, scope: Scope) -> None:
        async with self._write() as conn:
            await conn.execute(
                text(
                    f"DELETE FROM sessions WHERE {SCOPE} AND status = 'running' AND sealed = 0 "
                    "AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE session_pk = sessions.id)"
                ),
                _scope_params(scope),
            )

    async def get_session(self, scope: Scope) -> SessionInfo | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    text(f"SELECT * FROM sessions WHERE {SCOPE} AND {COMPLETE}"),
                    _scope_params(scope),
                )
            ).first()
        return None if row is None else _DIALECT.session(row)

    async def record_event(self, scope: Scope, event: EventRecord) -> None:
        async with self._write() as conn:
            pk = (
                await conn.execute(text(f"SELECT id FROM sessions WHERE {SCOPE} AND {COMPLETE}"), _scope_params(scope))
            ).scalar()
            if pk is not None:
                await self._insert_event(conn, pk, event)

    # -- lifecycle transitions -------------------------------------------------------------------------
    async def record_pause(
        self, scope: Scope, info: CheckpointInfo, items: Mapping[str, Item], event: EventRecord
    ) -> None:
        params = _checkpoint_params(scope, info, items)

        def pause(db: sqlite3.Connection) -> None:
            # One statement checks the session is writable and inserts the checkpoint, state included.
            row = db.execute(_INSERT_CHECKPOINT, params).fetchone()
            if row is None:
                _writable_pk_sync(db, scope)  # raises NotFound / Conflict if that is why
                raise checkpoint_exists(info.checkpoint_id)
            _set_status_sync(db, row[0], SessionStatus.PAUSED, event)

        await self._write_direct(pause)

    # -- one transaction per transition (this store is the working store too) ---------------------------
    async def spawn_session(
        self,
        scope: Scope,
        agent_type_id: UUID | None,
        metadata: Mapping[str, Any],
        now: float,
        event: EventRecord,
        items: Mapping[str, Item],
        limits: Limits,
    ) -> tuple[SessionInfo, int]:
        check_fits(items, now, limits)
        params = {
            **_scope_params(scope),
            "t": str(agent_type_id) if agent_type_id else None,
            "now": now,
            "m": json.dumps(dict(metadata)),
        }

        def spawn(db: sqlite3.Connection) -> tuple[SessionInfo, int]:
            cur = db.execute(_INSERT_SESSION, params)
            row = cur.fetchone()
            if row is None:
                (status,) = db.execute(f"SELECT status FROM sessions WHERE {SCOPE}", _scope_params(scope)).fetchone()
                raise session_exists(scope, status)
            session = _DIALECT.session(SimpleNamespace(**dict(zip([d[0] for d in cur.description], row, strict=True))))
            db.execute(_INSERT_EVENT, _event_params(row[0], event))
            rows = _item_rows(row[0], items, now)
            if rows:
                db.executemany(_UPSERT_ITEM, rows)
            return session, len(rows)

        return await self._write_direct(spawn)

    async def pause_session(self, scope: Scope, info: CheckpointInfo, now: float, event: EventRecord) -> CheckpointInfo:
        snapshot = (
            f"SELECT key, value, expires_at FROM working_items WHERE session_pk = {SESSION_PK} AND {LIVE} ORDER BY key"
        )
        read_params = {**_scope_params(scope), "now": now}

        def pause(db: sqlite3.Connection) -> CheckpointInfo:
            items = {key: Item(value, expires_at) for key, value, expires_at in db.execute(snapshot, read_params)}
            digest, size = content_hash(items)
            saved = info.model_copy(update={"keys_count": len(items), "bytes": size, "content_hash": digest})
            row = db.execute(_INSERT_CHECKPOINT, _checkpoint_params(scope, saved, items)).fetchone()
            if row is None:
                _writable_pk_sync(db, scope)  # raises NotFound / Conflict if that is why
                raise checkpoint_exists(info.checkpoint_id)
            _set_status_sync(db, row[0], SessionStatus.PAUSED, event.with_detail({"items": len(items)}))
            return saved

        return await self._write_direct(pause)

    async def resume_session(
        self,
        scope: Scope,
        checkpoint_id: str | None,
        clear: bool,
        now: float,
        limits: Limits,
        event: EventRecord,
    ) -> tuple[CheckpointInfo, int] | None:
        params = _scope_params(scope)
        where = checkpoint_selector(params, checkpoint_id)
        sql = f"SELECT {_CHECKPOINT_COLUMNS}, state FROM checkpoints WHERE session_pk = {SESSION_PK} {where}"

        def resume(db: sqlite3.Connection) -> tuple[CheckpointInfo, int] | None:
            found = db.execute(sql, params).fetchone()
            if found is None:
                return None
            info = self._checkpoint_info(_CheckpointRow(*found[:-1]))
            items = _decode_state(found[-1])
            pk = _writable_pk_sync(db, scope)
            restored = _restore_sync(db, pk, items, clear, now, limits)
            _set_status_sync(
                db,
                pk,
                SessionStatus.RUNNING,
                event.with_detail({"checkpoint_id": info.checkpoint_id, "items": restored}),
            )
            return info, restored

        return await self._write_direct(resume)

    async def record_resume(self, scope: Scope, event: EventRecord) -> None:
        def resume(db: sqlite3.Connection) -> None:
            _set_status_sync(db, _writable_pk_sync(db, scope), SessionStatus.RUNNING, event)

        await self._write_direct(resume)

    async def record_terminate(
        self,
        scope: Scope,
        episode: Episode | None,
        embedding: Sequence[float] | None,
        result: Mapping[str, Any],
        event: EventRecord,
        embedding_model: str | None = None,
        seal_token: str | None = None,
    ) -> dict[str, Any]:
        async with self._write() as conn:
            row = (
                await conn.execute(
                    text(f"SELECT id, status, terminate_result, sealed, seal_token FROM sessions WHERE {SCOPE}"),
                    _scope_params(scope),
                )
            ).first()
            stored = _DIALECT.terminated_result(scope, row, seal_token)
            if stored is not None:
                return stored
            assert row is not None
            if episode is not None:
                await self._insert_episode(conn, episode, embedding, embedding_model)
            await conn.execute(
                text(
                    "UPDATE sessions SET status = 'terminated', sealed = 1, updated_at = :now, "
                    "terminated_at = :now, episode_id = :e, terminate_result = :r WHERE id = :pk"
                ),
                {
                    "now": event.at,
                    "e": str(episode.episode_id) if episode else None,
                    "r": json.dumps(dict(result)),
                    "pk": row.id,
                },
            )
            await self._insert_event(conn, row.id, event)
            return dict(result)

    # -- checkpoints -----------------------------------------------------------------------------------
    _checkpoint_info = staticmethod(_DIALECT.checkpoint_info)

    async def get_checkpoint(self, scope: Scope, checkpoint_id: str | None) -> CheckpointData | None:
        params = _scope_params(scope)
        where = checkpoint_selector(params, checkpoint_id)
        sealed = f"(SELECT sealed != 0 OR status = 'terminated' FROM sessions WHERE {SCOPE})"
        sql = f"SELECT {_CHECKPOINT_COLUMNS}, state, {sealed} FROM checkpoints WHERE session_pk = {SESSION_PK} {where}"

        def read(db: sqlite3.Connection) -> CheckpointData | None:
            # One statement: description, state and the session's seal from one snapshot. Decoded on the reader's
            # thread, off the loop.
            row = db.execute(sql, params).fetchone()
            if row is None:
                return None
            info = self._checkpoint_info(_CheckpointRow(*row[:-2]))
            return CheckpointData(info, _decode_state(row[-2]), bool(row[-1]))

        return await self._read_direct(read)

    async def list_checkpoints(self, scope: Scope, limit: int, before: str | None) -> list[CheckpointInfo]:
        # One transaction: the bound and the list read one snapshot.
        async with self._read(statements=2) as conn:
            return await _DIALECT.list_checkpoints(conn, _scope_params(scope), _CHECKPOINT_COLUMNS, limit, before)

    async def recent_checkpoints(
        self, projects: Sequence[UUID] | None, limit: int
    ) -> list[tuple[Scope, CheckpointInfo]]:
        where, params = self._projects_clause("s.project_id", projects)
        params["limit"] = limit
        async with self._read() as conn:
            result = await conn.execute(
                text(
                    f"SELECT {_CHECKPOINT_COLUMNS_C}, s.project_id, s.agent_instance_id, s.session_id "
                    "FROM checkpoints c "
                    f"JOIN sessions s ON s.id = c.session_pk {where} ORDER BY c.created_at DESC, c.id DESC LIMIT :limit"
                ),
                params,
            )
            return [_DIALECT.scoped_checkpoint(r) for r in result]

    @staticmethod
    def _projects_clause(column: str, projects: Sequence[UUID] | None) -> tuple[str, dict[str, Any]]:
        if projects is None:
            return "", {}
        names = [f":proj{i}" for i in range(len(projects))]
        if not names:
            return "WHERE 0", {}
        return f"WHERE {column} IN ({', '.join(names)})", {f"proj{i}": str(p) for i, p in enumerate(projects)}

    # -- episodes --------------------------------------------------------------------------------------
    async def _insert_episode(
        self, conn: AsyncConnection, ep: Episode, embedding: Sequence[float] | None, model: str | None
    ) -> None:
        """The episode row, its postings and its project's statistics, in ``conn``'s transaction (one hand-over)."""
        params = _episode_params(ep, embedding, model)
        text_row = (
            0,
            *_text_fields(
                ep.task_type, ep.task_description, ep.outcome_details, ep.lessons_learned, ep.context_summary
            ),
        )

        def insert(db: sqlite3.Connection) -> None:
            _tokenize(db, [text_row])
            episode_pk, tokens = db.execute(_INSERT_EPISODE, params).fetchone()
            _index_episode(db, episode_pk, tokens)

        await self._on_thread(conn, insert)

    async def add_episode(
        self, episode: Episode, embedding: Sequence[float] | None, embedding_model: str | None = None
    ) -> None:
        async with self._write() as conn:
            await self._insert_episode(conn, episode, embedding, embedding_model)

    @staticmethod
    def _episode(row: Any) -> Episode:
        return _DIALECT.episode(row, embedded=row.embedding is not None)

    async def get_episode(self, project_id: UUID, episode_id: UUID) -> Episode | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    text("SELECT * FROM episodes WHERE project_id = :p AND episode_id = :e"),
                    {"p": str(project_id), "e": str(episode_id)},
                )
            ).first()
        return None if row is None else self._episode(row)

    @staticmethod
    def _filter_clause(flt: EpisodeFilter | None, prefix: str = "") -> tuple[str, dict[str, Any]]:
        return _DIALECT.filter_clause(flt, prefix)

    async def recent_episodes(
        self, projects: Sequence[UUID] | None, limit: int, flt: EpisodeFilter | None = None
    ) -> list[Episode]:
        where, params = self._projects_clause("project_id", projects)
        extra, fparams = self._filter_clause(flt)
        if not where:
            where = "WHERE 1"
        async with self._read() as conn:
            result = await conn.execute(
                text(f"SELECT * FROM episodes {where}{extra} ORDER BY created_at DESC, id DESC LIMIT :limit"),
                {**params, **fparams, "limit": limit},
            )
            return [self._episode(r) for r in result]

    async def search_episodes(
        self,
        project_id: UUID,
        query: str,
        query_embedding: Sequence[float] | None,
        flt: EpisodeFilter,
        limit: int,
        now: float,
        mode: SearchMode = "hybrid",
        embedding_model: str | None = None,
    ) -> list[ScoredEpisode]:
        pool = candidate_pool(limit)
        extra, fparams = self._filter_clause(flt, prefix="e.")
        base = {"p": str(project_id), **fparams}
        text_scores: dict[str, float] = {}
        vector_scores: dict[str, float] = {}
        async with self._read(statements=2) as conn:
            if mode != "vector":
                project = str(project_id)
                bm25 = await self._on_thread(conn, lambda db: _bm25_scores(db, project, query, extra, fparams, pool))
                text_scores = relative(bm25)
            if query_embedding is not None and mode != "text":
                same_model = "" if embedding_model is None else " AND e.embedding_model = :model"
                result = await conn.execute(
                    text(
                        "SELECT e.episode_id, e.embedding FROM episodes e WHERE e.project_id = :p "
                        f"AND e.embedding IS NOT NULL{same_model}{extra} ORDER BY e.created_at DESC LIMIT :scan"
                    ),
                    {**base, "scan": _VECTOR_SCAN_LIMIT, "model": embedding_model},
                )
                rows = [(r.episode_id, r.embedding) for r in result]
                # A linear scan in Python: off the event loop, so other calls go on meanwhile.
                cosines = await anyio.to_thread.run_sync(_top_cosines, rows, normalize(query_embedding), pool)
                vector_scores = similarities(cosines)
            fused = fuse([text_scores, vector_scores], [TEXT_WEIGHT, VECTOR_WEIGHT])
            if not fused:
                return []
            ids = list(fused)
            names = ", ".join(f":id{i}" for i in range(len(ids)))
            result = await conn.execute(
                text(f"SELECT * FROM episodes WHERE episode_id IN ({names})"),
                {f"id{i}": eid for i, eid in enumerate(ids)},
            )
            episodes = {r.episode_id: self._episode(r) for r in result}
        ranked = sorted(
            (
                ScoredEpisode(
                    **ep.model_dump(),
                    score=round(blend(fused[eid], ep.importance_score, ep.created_at.timestamp(), now), 6),
                )
                for eid, ep in episodes.items()
            ),
            key=lambda s: s.score,
            reverse=True,
        )
        return ranked[:limit]

    async def episodes_missing_embedding(self, limit: int, model: str | None = None) -> list[Episode]:
        stale = "" if model is None else " OR embedding_model IS NULL OR embedding_model != :model"
        async with self._read() as conn:
            result = await conn.execute(
                text(f"SELECT * FROM episodes WHERE embedding IS NULL{stale} ORDER BY created_at, id LIMIT :limit"),
                {"limit": limit, "model": model},
            )
            return [self._episode(r) for r in result]

    async def set_episode_embedding(
        self, project_id: UUID, episode_id: UUID, embedding: Sequence[float], model: str
    ) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                text(
                    "UPDATE episodes SET embedding = :emb, embedding_model = :model WHERE project_id = :p AND "
                    "episode_id = :e AND (embedding IS NULL OR embedding_model IS NULL OR embedding_model != :model)"
                ),
                {"emb": _vector_to_blob(embedding), "model": model, "p": str(project_id), "e": str(episode_id)},
            )
            return bool(result.rowcount)


__all__ = ["SCHEMA_VERSION", "SqliteStore"]
