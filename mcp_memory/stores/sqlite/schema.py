"""The SQLite store's schema: today's tables (the DDL of :data:`SCHEMA_VERSION`), and the format of a checkpoint's
``state`` column."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from mcp_memory.models import Item
from mcp_memory.stores.sqlite.vector_index import VECTOR_DDL

SCHEMA_VERSION = 10
"""1: a checkpoint's items as rows of ``checkpoint_items``. 2: as one JSON object in ``checkpoints.state``.
3: full-text statistics per project (``episode_terms``, ``text_projects``, ``episodes.text_tokens``) instead of the
FTS5 table ``episodes_fts`` that all projects shared. 4: a seal's owner and lease (``sessions.seal_token``,
``sessions.seal_until``). 5: each term's episode count per project (``text_terms``) and the episode's length in
each of its postings (``episode_terms.episode_tokens``). 6: a two-step spawn's token and lease
(``sessions.spawn_token``, ``sessions.spawn_until``: the session exists once its spawn has completed). 7: a
checkpoint kept from retention pruning (``checkpoints.keep``). 8: the nonce of the Redis snapshot a checkpoint was
made from (``checkpoints.snapshot``), which names the pause's copy in Redis (``stores/redis/copies.py``). 9: the
order of the session's last ordered transition recorded (``sessions.status_order``: a late record of an older one
does not set the status back, ``stores/redis/copies.py``). 10: whether a terminated session's terminate finished its
job after the record (``sessions.terminate_unfinished``, ``services/terminate_lease.py``)."""

EPISODE_TERMS_DDL = """CREATE TABLE IF NOT EXISTS {name} (
        project_pk INTEGER NOT NULL,
        term TEXT NOT NULL,
        episode_pk INTEGER NOT NULL,
        freq REAL NOT NULL,
        episode_tokens INTEGER NOT NULL,
        PRIMARY KEY (project_pk, term, episode_pk)
    ) WITHOUT ROWID"""
SCHEMA = [
    # A new file's tables (a file made by an older release gets them through the revisions of versions/sqlite/),
    # each table's columns on a line per concern: identity, state, times, payload.
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS sessions (
        id INTEGER PRIMARY KEY,
        project_id TEXT NOT NULL, agent_instance_id TEXT NOT NULL, session_id TEXT NOT NULL, agent_type_id TEXT,
        status TEXT NOT NULL, sealed INTEGER NOT NULL DEFAULT 0, seal_token TEXT, seal_until REAL,
        spawn_token TEXT, spawn_until REAL,
        created_at REAL NOT NULL, updated_at REAL NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',
        episode_id TEXT, terminated_at REAL, terminate_result TEXT, status_order INTEGER,
        terminate_unfinished INTEGER NOT NULL DEFAULT 0,
        UNIQUE (project_id, agent_instance_id, session_id)
    )""",
    """CREATE TABLE IF NOT EXISTS working_items (
        session_pk INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        key TEXT NOT NULL, value TEXT NOT NULL, expires_at REAL,
        PRIMARY KEY (session_pk, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        session_pk INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        event_type TEXT NOT NULL, at REAL NOT NULL, duration_ms REAL NOT NULL, outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX IF NOT EXISTS working_expiry ON working_items (expires_at) WHERE expires_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS events_session ON events (session_pk, id)",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_pk INTEGER NOT NULL REFERENCES sessions(id),
        checkpoint_id TEXT NOT NULL, created_at REAL NOT NULL, label TEXT, metadata TEXT NOT NULL DEFAULT '{}',
        keys_count INTEGER NOT NULL, bytes INTEGER NOT NULL, content_hash TEXT NOT NULL, snapshot TEXT,
        state TEXT NOT NULL DEFAULT '{}', keep INTEGER NOT NULL DEFAULT 0,
        UNIQUE (session_pk, checkpoint_id)
    )""",
    "CREATE INDEX IF NOT EXISTS checkpoints_session_created ON checkpoints (session_pk, created_at, id)",
    """CREATE TABLE IF NOT EXISTS episodes (
        id INTEGER PRIMARY KEY,
        episode_id TEXT NOT NULL UNIQUE,
        project_id TEXT NOT NULL, agent_instance_id TEXT NOT NULL, session_id TEXT,
        task_type TEXT NOT NULL, task_description TEXT NOT NULL,
        outcome TEXT NOT NULL, outcome_details TEXT NOT NULL DEFAULT '', lessons_learned TEXT NOT NULL DEFAULT '[]',
        importance_score REAL NOT NULL, context_summary TEXT NOT NULL DEFAULT '', metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        embedding BLOB, embedding_model TEXT,
        text_tokens INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS episodes_project_created ON episodes (project_id, created_at)",
    # An agent's episodes: the look-up of a repeated episode, and forgets by agent (no version bump, as below).
    "CREATE INDEX IF NOT EXISTS episodes_project_agent ON episodes (project_id, agent_instance_id, created_at)",
    # list_sessions: newest activity first, per project or per agent, paged by (updated_at, id). Created at every
    # start like the rest (IF NOT EXISTS), so files of schema 5 get them without a version bump: an index changes
    # nothing a release that does not know it reads or writes.
    "CREATE INDEX IF NOT EXISTS sessions_project_activity ON sessions (project_id, updated_at, id)",
    "CREATE INDEX IF NOT EXISTS sessions_agent_activity ON sessions (project_id, agent_instance_id, updated_at, id)",
    # The periodic age sweep's candidates by date (stores/sql/retention.py: AGED_CHECKPOINTS, AGED_EVENTS), so
    # that a pass reads the rows past the cutoff, not both tables. Partial, on the rows a sweep may delete only: a
    # pass does not read the kept checkpoints, nor the successful spawns and terminates, again and again (SQLite
    # uses such an index only for a query that repeats its predicate as written). Created at every start, as above.
    "CREATE INDEX IF NOT EXISTS checkpoints_aged ON checkpoints (created_at) WHERE NOT keep",
    "CREATE INDEX IF NOT EXISTS events_aged ON events (at) "
    "WHERE NOT (event_type IN ('spawn', 'terminate') AND outcome = 'ok')",
    # The spawn sweep's listing of lapsed spawns (stores/sql/lapsed_spawns.py: LAPSED_SPAWNS), in its order, so that
    # a pass reads the incomplete sessions, not the whole table. Partial: spawn_until is NULL once a spawn has
    # completed, so it holds the spawns under way or cut off only (the sweep's spawn_until <= ? implies its
    # predicate). Created at every start, as above.
    "CREATE INDEX IF NOT EXISTS sessions_spawning ON sessions (spawn_until, id) WHERE spawn_until IS NOT NULL",
    # The work list of the sweep of terminates cut off after their record (few rows: each leaves it once finished).
    "CREATE INDEX IF NOT EXISTS sessions_unfinished_terminates ON sessions (id) WHERE terminate_unfinished",
    # The work list of the embedding retry (few rows, looked up every retry interval).
    "CREATE INDEX IF NOT EXISTS episodes_unembedded ON episodes (created_at, id) WHERE embedding IS NULL",
    # Full text, per project (see fulltext.py): each project's episode count and total tokens, the number of its
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
    EPISODE_TERMS_DDL.format(name="episode_terms"),
    # Vector search (vector_index.py): each project's vector version, kept by triggers, and its rows by row id.
    # Created at every start like the indexes above (IF NOT EXISTS): files of schema 6 get them without a version
    # bump, and the triggers, being in the file, keep the version for every writer, older releases included.
    *VECTOR_DDL,
]


def encode_state(items: Mapping[str, Item]) -> str:
    """A checkpoint's items as one JSON object, key -> [value's JSON text as a string, expires_at or null],
    keys sorted. The values travel as the strings they are: nothing of them is decoded or re-encoded."""
    return orjson.dumps(
        {key: (item.value, item.expires_at) for key, item in items.items()}, option=orjson.OPT_SORT_KEYS
    ).decode()


def decode_state(state: str) -> dict[str, Item]:
    """The inverse of :func:`encode_state` (the values stay JSON text)."""
    decoded: dict[str, list[Any]] = orjson.loads(state)
    return {key: Item(value, expires_at) for key, (value, expires_at) in decoded.items()}
