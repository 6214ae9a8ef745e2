"""Filling ``episodes.search_weights`` for the rows written before migration 0014.

0014 adds the column empty (instant at any size) and a trigger fills it for every row written from then on; a row
without it is ranked from its tsvector, exactly as before and at the former cost (~8 us instead of ~2 us per
candidate of a text search). This fills the older rows in batches along the primary key, each batch its own
transaction, so a writer of the same rows waits for the batch's commit, not the whole run's (forget and erase lock
episodes in the same ascending order), a stopped run keeps what it filled, and a second run continues where the
column is still empty. An update writes a new row version and index entries (HNSW
included) unless Postgres can keep it on its page, which is why it is an operator's step and not the migration's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import URL

from mcp_memory.errors import ConfigurationError
from mcp_memory.stores.postgres.schema import MIGRATE_COMMAND, autocommit_connection, reachable
from mcp_memory.stores.sql.clauses import text

BATCH_ROWS = 2000
"""Rows read per batch (a batch of a million-episode table's 384-dim rows takes ~0.5-1 s when every row is filled)."""

_HAS_FUNCTION = "SELECT to_regprocedure('mcpmem_search_weights(text, jsonb, text, text, text)') IS NOT NULL"

_TO_FILL = "SELECT count(*) FROM episodes WHERE search_weights IS NULL"

# Walks the primary key (never rereads a row), fills only rows still without the column: a row written meanwhile
# has it from the trigger, and an edit racing the batch is waited for and then read as committed.
_FILL_BATCH = """
WITH batch AS (SELECT id FROM episodes WHERE id > :after ORDER BY id LIMIT :rows),
filled AS (
    UPDATE episodes e SET search_weights = mcpmem_search_weights(
        e.task_description, e.lessons_learned, e.outcome_details, e.task_type, e.context_summary)
    FROM batch WHERE e.id = batch.id AND e.search_weights IS NULL
    RETURNING 1)
SELECT (SELECT max(id) FROM batch) AS last_id, (SELECT count(*) FROM filled) AS filled
"""


@dataclass(frozen=True, slots=True)
class FillReport:
    """What a fill did."""

    to_fill: int
    """Rows without the column when the run began."""
    filled: int
    batches: int
    seconds: float


async def fill_search_weights(
    url: URL | str, *, batch_rows: int = BATCH_ROWS, progress: Callable[[int, int], None] | None = None
) -> FillReport:
    """Fill every episode's ``search_weights`` that is still NULL; ``progress(filled, to_fill)`` after each batch.

    Raises :class:`ConfigurationError` if the schema predates revision 0014 (nothing to fill into yet), and
    :class:`~mcp_memory.stores.postgres.schema.MigrationFailed` with a one-line reason if Postgres cannot be
    reached or answers with an error (what was filled before stays)."""
    if batch_rows < 1:
        raise ConfigurationError(f"the batch size must be at least 1, got {batch_rows}")
    started = time.monotonic()
    async with reachable(str(url)), autocommit_connection(url) as conn:  # each batch commits on its own
        if not (await conn.execute(text(_HAS_FUNCTION))).scalar_one():
            raise ConfigurationError(
                f"this database's schema predates revision 0014 (episodes.search_weights): run "
                f"`{MIGRATE_COMMAND}` first"
            )
        to_fill = int((await conn.execute(text(_TO_FILL))).scalar_one())
        filled = batches = 0
        after = 0
        while to_fill:
            row = (await conn.execute(text(_FILL_BATCH), {"after": after, "rows": batch_rows})).one()
            if row.last_id is None:
                break  # past the last row
            after, filled, batches = row.last_id, filled + row.filled, batches + 1
            if progress is not None:
                progress(filled, to_fill)
    return FillReport(to_fill, filled, batches, round(time.monotonic() - started, 3))


__all__ = ["BATCH_ROWS", "FillReport", "fill_search_weights"]
