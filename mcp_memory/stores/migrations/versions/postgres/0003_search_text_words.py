"""The full-text column split into words as a query is: ASCII punctuation between letters and digits separates
words in the episode text too.

Queries are split into runs of letters and digits (``ts_query`` in postgres/search.py: no tsquery syntax can get in),
but Postgres' parser keeps some punctuated tokens whole in the text: ``v2.16`` is one lexeme ``v2.16``,
``PAY-1603`` gives ``pay-1603``, ``pay`` and ``-1603`` (a signed number), ``10.0.3.7`` is one host token. A query
for "payments-api v2.16" or "PAY-1603" then matched none of the episode's version or ticket number, which is what
tells apart recurring work recorded many times (a weekly release, a ticket, a region). Replacing ASCII punctuation
by spaces before ``to_tsvector`` gives the text the same words as the query (``v2``, ``16``; ``pay``, ``1603``);
letters of other scripts and their punctuation are left to the parser as before. The lessons are a JSON array: its
text form's escapes (``\\n``, ``\\"``, ``\\u00e9``) are removed first, so that ``\\n`` does not glue an ``n`` to
the next word.

The column is generated, and Postgres 16 cannot change a generated column's expression: it is dropped and added
again (a rewrite of ``episodes``; its GIN index rebuilt), and every project's word counts (migration 0002) are
counted again from the new column, and their lengths.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TOKENS = "length({})"
"""An episode's length in words, as migration 0002 counts it."""
_PUNCTUATION = r"'[!-/:-@\[-`{-~]+'"
_JSON_ESCAPE = r"""'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})'"""


def _words(expr: str) -> str:
    return f"regexp_replace({expr}, {_PUNCTUATION}, ' ', 'g')"


SEARCH_TEXT = f"""
    setweight(to_tsvector('english'::regconfig, {_words("task_description")}), 'A')
    || setweight(to_tsvector('english'::regconfig,
        {_words(f"regexp_replace(lessons_learned::text, {_JSON_ESCAPE}, ' ', 'g')")}), 'A')
    || setweight(to_tsvector('english'::regconfig, {_words("outcome_details")}), 'B')
    || setweight(to_tsvector('english'::regconfig, {_words("task_type")}), 'C')
    || setweight(to_tsvector('english'::regconfig, {_words("context_summary")}), 'D')
"""

SEARCH_TEXT_0001 = """
    setweight(to_tsvector('english'::regconfig, task_description), 'A')
    || setweight(jsonb_to_tsvector('english'::regconfig, lessons_learned, '["string"]'), 'A')
    || setweight(to_tsvector('english'::regconfig, outcome_details), 'B')
    || setweight(to_tsvector('english'::regconfig, replace(task_type, '_', ' ')), 'C')
    || setweight(to_tsvector('english'::regconfig, context_summary), 'D')
"""


def _replace_search_text(expression: str) -> None:
    op.execute("DROP INDEX IF EXISTS episodes_search_text")
    op.execute("ALTER TABLE episodes DROP COLUMN search_text")
    op.execute(f"ALTER TABLE episodes ADD COLUMN search_text tsvector GENERATED ALWAYS AS ({expression}) STORED")
    op.execute("CREATE INDEX episodes_search_text ON episodes USING gin (search_text)")
    # The rewrite fires no row trigger: count every project's words again, from the new column. The ALTER TABLE's
    # lock keeps writers out until this transaction commits.
    op.execute(
        "UPDATE project_episode_counts c SET tokens = COALESCE((SELECT "
        f"sum({TOKENS.format('e.search_text')}) FROM episodes e WHERE e.project_id = c.project_id), 0)"
    )
    op.execute("DELETE FROM project_lexeme_counts")
    op.execute(
        "INSERT INTO project_lexeme_counts (project_id, lexeme, episodes) SELECT e.project_id, t.lexeme, count(*) "
        "FROM episodes e, unnest(e.search_text) AS t GROUP BY e.project_id, t.lexeme"
    )


def upgrade() -> None:
    _replace_search_text(SEARCH_TEXT)


def downgrade() -> None:
    _replace_search_text(SEARCH_TEXT_0001)
