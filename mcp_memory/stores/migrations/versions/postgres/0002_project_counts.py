"""Per-project full-text statistics: each project's number of episodes and of words in them (BM25's average
length), and per lexeme the number of its episodes that hold it, kept exact by triggers on ``episodes`` and
backfilled here.

Recall ranks a project's episodes with these only (the IDF of each query word, and which words are too common to
pick candidates by; see ``search_sql`` in postgres/search.py). ANALYZE's statistics, used before, cover every project
(another tenant's episodes moved this project's scores, a side channel) and exist only once ANALYZE has run.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Every writer locks its projects' rows of project_episode_counts first (in project order), then the lexemes (in
# lexeme order): concurrent writes to one project queue on its row for the rest of their transaction, and no two
# can deadlock on lexemes. ``unnest(tsvector)`` yields each lexeme of an episode once, so count(*) is the number
# of episodes holding it. A lexeme's row may stay at 0 after deletes: the same as no row to the search.
_ADD = """
    INSERT INTO project_episode_counts AS s (project_id, episodes, tokens)
    SELECT project_id, sum(n), sum(n * {tokens}) FROM ({rows}) AS d GROUP BY project_id ORDER BY project_id
    ON CONFLICT (project_id) DO UPDATE SET episodes = s.episodes + excluded.episodes,
        tokens = s.tokens + excluded.tokens;
    INSERT INTO project_lexeme_counts AS s (project_id, lexeme, episodes)
    SELECT d.project_id, t.lexeme, sum(d.n) FROM ({rows}) AS d, unnest(d.search_text) AS t
    GROUP BY d.project_id, t.lexeme HAVING sum(d.n) <> 0 ORDER BY d.project_id, t.lexeme
    ON CONFLICT (project_id, lexeme) DO UPDATE SET episodes = s.episodes + excluded.episodes;
"""
TOKENS = "length({})"
"""An episode's length for BM25: its distinct words (stop words aside), ``length(tsvector)``."""
_NEW = "SELECT project_id, search_text, 1 AS n FROM new_episodes"
_OLD = "SELECT project_id, search_text, -1 AS n FROM old_episodes"
_CHANGED = (
    "SELECT 1 FROM old_episodes o JOIN new_episodes n ON n.id = o.id "
    "WHERE o.project_id <> n.project_id OR o.search_text <> n.search_text"
)
_TOKENS = TOKENS.format("d.search_text")
_FUNCTIONS = {
    "insert": _ADD.format(rows=_NEW, tokens=_TOKENS),
    "delete": _ADD.format(rows=_OLD, tokens=_TOKENS),
    # Most updates change the embedding only (the background retry, reembed): nothing to count, nothing locked.
    "update": f"IF EXISTS ({_CHANGED}) THEN {_ADD.format(rows=f'{_NEW} UNION ALL {_OLD}', tokens=_TOKENS)} END IF;",
}
_TRANSITIONS = {
    "insert": "NEW TABLE AS new_episodes",
    "delete": "OLD TABLE AS old_episodes",
    "update": "OLD TABLE AS old_episodes NEW TABLE AS new_episodes",
}


def upgrade() -> None:
    op.execute(
        """CREATE TABLE project_episode_counts (
            project_id uuid PRIMARY KEY,
            episodes bigint NOT NULL,
            tokens bigint NOT NULL
        )"""
    )
    op.execute(
        """CREATE TABLE project_lexeme_counts (
            project_id uuid NOT NULL,
            lexeme text COLLATE "C" NOT NULL,
            episodes bigint NOT NULL,
            PRIMARY KEY (project_id, lexeme)
        )"""
    )
    for what, body in _FUNCTIONS.items():
        # search_path FROM CURRENT: the migration's (our schema first), whatever the writer's connection uses.
        op.execute(
            f"CREATE FUNCTION episode_counts_{what}() RETURNS trigger LANGUAGE plpgsql "
            f"SET search_path FROM CURRENT AS $$ BEGIN {body} RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER episode_counts_{what} AFTER {what.upper()} ON episodes "
            f"REFERENCING {_TRANSITIONS[what]} FOR EACH STATEMENT EXECUTE FUNCTION episode_counts_{what}()"
        )
    op.execute(
        "CREATE FUNCTION episode_counts_truncate() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT "
        "AS $$ BEGIN DELETE FROM project_lexeme_counts; DELETE FROM project_episode_counts; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER episode_counts_truncate AFTER TRUNCATE ON episodes "
        "FOR EACH STATEMENT EXECUTE FUNCTION episode_counts_truncate()"
    )
    # The triggers hold a lock on episodes that keeps writers out until this transaction commits: the backfill
    # counts every episode exactly once.
    op.execute(
        "INSERT INTO project_episode_counts (project_id, episodes, tokens) SELECT project_id, count(*), "
        f"sum({TOKENS.format('search_text')}) FROM episodes GROUP BY project_id"
    )
    op.execute(
        "INSERT INTO project_lexeme_counts (project_id, lexeme, episodes) SELECT e.project_id, t.lexeme, count(*) "
        "FROM episodes e, unnest(e.search_text) AS t GROUP BY e.project_id, t.lexeme"
    )


def downgrade() -> None:
    for what in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS episode_counts_{what} ON episodes")
        op.execute(f"DROP FUNCTION IF EXISTS episode_counts_{what}()")
    op.execute("DROP TABLE IF EXISTS project_lexeme_counts")
    op.execute("DROP TABLE IF EXISTS project_episode_counts")
