"""Full-text candidates per project: a GIN index on each episode's words *prefixed with its project*
(``mcpmem_project_words(project_id, search_text)``, a ``text[]`` of ``'<project hex>:<lexeme>'``) replaces the GIN
index on ``search_text`` alone.

With one index over every project's tsvector, a posting list is the whole store's: a word common in the store but
selective in a small project read 163,000 rows at a million episodes to find a few hundred, and in the largest
project the planner ANDed the small GIN bitmap with a bitmap of all its 233,805 rows. Here each key is one
project's word, so its posting list holds that project's episodes only and a search reads no other project's
entries: its cost grows with the project, not the store. ``btree_gin`` (a composite ``(project_id, search_text)``
GIN) would do the same, but pgserver's Postgres does not ship it; this needs no extension.

The function is IMMUTABLE (an index expression) with an SQL-standard body (bound at creation, so the search path
at index time does not matter). The search (``stores/postgres/search.py``) writes the same expression, with the
keys of the query's words, matched by ``&&`` (any of them) or ``@>`` (all of them).

The SQL is frozen here (a copy, not imported from live code): a later change is a new revision.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE FUNCTION mcpmem_project_words(p_project uuid, p_words tsvector) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ARRAY(
    SELECT pg_catalog.replace(CAST(p_project AS text), '-', '') || ':' || w
    FROM pg_catalog.unnest(pg_catalog.tsvector_to_array(p_words)) AS w
)
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute("DROP INDEX IF EXISTS episodes_search_text")
    op.execute(
        "CREATE INDEX episodes_project_words ON episodes USING gin (mcpmem_project_words(project_id, search_text))"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS episodes_project_words")
    op.execute("DROP FUNCTION IF EXISTS mcpmem_project_words(uuid, tsvector)")
    op.execute("CREATE INDEX episodes_search_text ON episodes USING gin (search_text)")
