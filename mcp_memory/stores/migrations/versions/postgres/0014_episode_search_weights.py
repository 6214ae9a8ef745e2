"""Each episode keeps its words' weighted frequencies: ``episodes.search_weights``, a ``jsonb`` object of lexeme ->
frequency, each position counted with its class's weight (A 3.5, B 1.5, C 1.0, D 0.5: ``_CLASS_WEIGHTS`` of
``stores/postgres/search.py``, frozen here).

Full-text ranking (BM25) needs, per candidate episode, the frequency of each query word. Read from the tsvector, that
is an ``unnest`` of all its lexemes joined with the query's words: about 8 us per candidate, two thirds of a text
search in a large project (563 candidates in the largest project of a million episodes). Read from this column it is
a key lookup per query word in a value already in the row: about 2 us.

- ``mcpmem_search_weights(...)``: the object for an episode's text fields, from the same tsvector as the generated
  ``search_text`` (migration 0003's expression, imported from that revision).
- A ``BEFORE INSERT OR UPDATE OF`` those fields trigger sets the column: every writer (the store's inserts, edits,
  redaction, imports, ``COPY``) keeps it exact, with nothing to change on their side. A ``BEFORE`` trigger cannot
  read a generated column, hence the expression again.
- ``toast_tuple_target`` of ``episodes`` goes from 2,032 bytes (the default) to 8,160 (the most Postgres allows): a
  row keeps its embedding inline while the row fits a page. The column makes a typical row of 384 dimensions ~2.0 kB
  instead of ~1.9, past the default target, and Postgres then moved the largest attribute, the embedding, out of
  line: an exact scan of 20,000 vectors took 26.8 ms instead of 12.8 (each vector read from the TOAST table), 8.3 ms
  with the target raised (measured on the benchmark corpus). Like any storage setting it applies to rows written
  from then on.
- The column is added empty (a catalog change: nothing is rewritten, no index rebuilt). The ranking falls back to the
  tsvector for a row whose column is NULL, so rows written before this revision rank exactly as before, at the
  former cost. Filling them is an ``UPDATE`` of every row, which writes every index entry again (HNSW included)
  unless it is a HOT update: ``mcp-memory migrate --fill-search-weights`` does it in batches, when convenient.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

CLASS_WEIGHTS = {"A": 3.5, "B": 1.5, "C": 1.0, "D": 0.5}
"""The tsvector classes' weights at this revision (search.py's ``_CLASS_WEIGHTS``; a test holds them equal)."""
# Migration 0003's expression of the generated ``search_text``, taken from that (frozen) revision: the function's
# arguments bear the columns' names, so it reads them as the generated column reads the row.
_VECTOR = importlib.import_module("mcp_memory.stores.migrations.versions.postgres.0003_search_text_words").SEARCH_TEXT
_FREQUENCY = " + ".join(f"{w} * cardinality(array_positions(u.weights, '{c}'))" for c, w in CLASS_WEIGHTS.items())

WEIGHTS_FUNCTION = f"""
CREATE FUNCTION mcpmem_search_weights(
    task_description text, lessons_learned jsonb, outcome_details text, task_type text, context_summary text)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
SELECT COALESCE(jsonb_object_agg(u.lexeme, {_FREQUENCY}), CAST('{{}}' AS jsonb)) FROM unnest({_VECTOR}) AS u
$fn$
"""

TRIGGER_FUNCTION = """
CREATE FUNCTION mcpmem_episode_search_weights() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $fn$
BEGIN
    NEW.search_weights := mcpmem_search_weights(
        NEW.task_description, NEW.lessons_learned, NEW.outcome_details, NEW.task_type, NEW.context_summary);
    RETURN NEW;
END
$fn$
"""

TRIGGER = (
    "CREATE TRIGGER episodes_search_weights BEFORE INSERT OR UPDATE OF task_description, lessons_learned, "
    "outcome_details, task_type, context_summary ON episodes "
    "FOR EACH ROW EXECUTE FUNCTION mcpmem_episode_search_weights()"
)


def upgrade() -> None:
    op.execute("ALTER TABLE episodes ADD COLUMN search_weights jsonb")
    op.execute("ALTER TABLE episodes SET (toast_tuple_target = 8160)")
    op.execute(WEIGHTS_FUNCTION)
    op.execute(TRIGGER_FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS episodes_search_weights ON episodes")
    op.execute("DROP FUNCTION IF EXISTS mcpmem_episode_search_weights()")
    op.execute("DROP FUNCTION IF EXISTS mcpmem_search_weights(text, jsonb, text, text, text)")
    op.execute("ALTER TABLE episodes DROP COLUMN IF EXISTS search_weights")
    op.execute("ALTER TABLE episodes RESET (toast_tuple_target)")
