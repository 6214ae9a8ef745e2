"""A per-project count that reaches 0 is deleted: ``project_episode_counts`` of a project left without episodes, and
``project_lexeme_counts`` of a word no episode of its project holds any more.

Before, the triggers of 0002 left those rows at 0 ("the same as no row to the search"): a project erased by
``mcp-memory forget`` (or emptied by ``delete_session`` or ``forget_episodes``) stayed named in both tables, and the
words of forgotten or edited-away episodes stayed listed under their project. Now the delete and update triggers
delete, in the same statement, the rows their own counting brought to 0, and this revision deletes those left at 0
by earlier releases.

Concurrency is 0002's: a writer locks its projects' rows of ``project_episode_counts`` first (then the lexemes), and
a row deleted here is one this transaction holds already (it just counted it down), so an episode recorded for the
project meanwhile waits for this transaction, then inserts the row anew (``ON CONFLICT`` finds it gone); none can be
counted into a row that is then deleted. Readers treat a missing row as 0, as before.

The SQL is frozen here (0002's counting, imported from that revision, plus the deletes). The downgrade restores
0002's functions (rows at 0 are then kept again; those deleted are not brought back, which the search cannot tell).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_COUNTS = importlib.import_module("mcp_memory.stores.migrations.versions.postgres.0002_project_counts")

_DROP_ZEROS = """
    DELETE FROM project_lexeme_counts AS s USING (
        SELECT DISTINCT d.project_id, t.lexeme FROM ({rows}) AS d, unnest(d.search_text) AS t
    ) AS z WHERE s.project_id = z.project_id AND s.lexeme = z.lexeme AND s.episodes = 0;
    DELETE FROM project_episode_counts AS s
    WHERE s.project_id IN (SELECT d.project_id FROM ({rows}) AS d) AND s.episodes = 0;
"""
"""After the counting of ``rows`` (0002's ``_ADD``): the rows it brought to 0, each already locked by it."""

_ADD_OLD = _COUNTS._ADD.format(rows=_COUNTS._OLD, tokens=_COUNTS._TOKENS)
_ADD_BOTH = _COUNTS._ADD.format(rows=f"{_COUNTS._NEW} UNION ALL {_COUNTS._OLD}", tokens=_COUNTS._TOKENS)
FUNCTIONS = {
    "delete": _ADD_OLD + _DROP_ZEROS.format(rows=_COUNTS._OLD),
    # Only the old rows' projects and words can have gone down (the new ones' counted up).
    "update": f"IF EXISTS ({_COUNTS._CHANGED}) THEN {_ADD_BOTH} {_DROP_ZEROS.format(rows=_COUNTS._OLD)} END IF;",
}


def _replace(what: str, body: str) -> str:
    # search_path FROM CURRENT: the migration's (our schema first), as 0002 set it.
    return (
        f"CREATE OR REPLACE FUNCTION episode_counts_{what}() RETURNS trigger LANGUAGE plpgsql "
        f"SET search_path FROM CURRENT AS $$ BEGIN {body} RETURN NULL; END $$"
    )


def upgrade() -> None:
    # Writers wait for this transaction (they update the counts): the rows at 0 are deleted with none counting them up
    # meanwhile, and no writer holds a lexeme row this deletes while waiting for a project row it holds.
    op.execute("LOCK TABLE project_episode_counts, project_lexeme_counts IN SHARE ROW EXCLUSIVE MODE")
    for what, body in FUNCTIONS.items():
        op.execute(_replace(what, body))
    op.execute("DELETE FROM project_lexeme_counts WHERE episodes = 0")
    op.execute("DELETE FROM project_episode_counts WHERE episodes = 0")


def downgrade() -> None:
    for what in FUNCTIONS:
        op.execute(_replace(what, _COUNTS._FUNCTIONS[what]))
