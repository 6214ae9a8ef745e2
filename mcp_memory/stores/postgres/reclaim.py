"""What the operator's ``mcp-memory forget`` does on Postgres once its erase has committed
(:mod:`~mcp_memory.stores.reclaim_port`): drop the project's vector index if the project holds no episode any more,
then VACUUM the tables the erase deleted from.

Neither can run in the erase's transaction (``DROP INDEX CONCURRENTLY`` and ``VACUUM`` refuse one). A plain
``DROP INDEX`` could, but it holds the ``episodes`` table's strongest lock to the commit, so every search and write
of every project would wait for the rest of the erase, and it would queue behind another server's concurrent
index build for as long as that runs (minutes), holding the erase's row locks, or end it in a deadlock. So the
index goes after the commit, as a tool's deletion drops it, but retried here for up to
:data:`INDEX_DROP_PATIENCE_SECONDS` (a build under way holds the builders' lock; a drop queued behind another lock
times out), and the report says so if it is still there.
"""

from __future__ import annotations

import logging
import time
from uuid import UUID

import anyio
from sqlalchemy import URL
from sqlalchemy.exc import DBAPIError

from mcp_memory.stores.postgres import vector_indexes
from mcp_memory.stores.postgres.schema import autocommit_connection
from mcp_memory.stores.postgres.vector_indexes import ProjectIndex, index_name
from mcp_memory.stores.reclaim_port import Reclaimed, Vacuum
from mcp_memory.stores.sql.clauses import text

logger = logging.getLogger(__name__)

ERASED_TABLES = (
    "working_items",
    "checkpoints",
    "events",
    "sessions",
    "episodes",
    "project_episode_counts",
    "project_lexeme_counts",
)
"""The tables an erase deletes from (the last two by the triggers on ``episodes``: the project's words and counts)."""
INDEX_DROP_PATIENCE_SECONDS = 30.0
"""How long the forget keeps trying to drop the erased project's vector index."""
INDEX_DROP_RETRY_SECONDS = 1.0
INDEX_DROP_LOCK_TIMEOUT_MS = 10_000
"""One attempt's wait for the table's lock (an operator's command may wait longer than a tool's deletion)."""
_VACUUM = {Vacuum.PLAIN: "VACUUM (ANALYZE)", Vacuum.FULL: "VACUUM (FULL, ANALYZE)"}


def _reason(exc: BaseException) -> str:
    """The first line of what Postgres (or the network) answered."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


async def drop_vector_index(url: URL, project_id: UUID) -> tuple[str, str | None]:
    """Drop the project's vector index if it holds no episode, retrying; its outcome for the report, and why it is
    still there if it could not be dropped."""
    give_up = time.monotonic() + INDEX_DROP_PATIENCE_SECONDS
    while True:
        try:
            where = await vector_indexes.drop_if_orphaned(url, project_id, INDEX_DROP_LOCK_TIMEOUT_MS)
        except (DBAPIError, OSError) as exc:
            why = f"dropping it failed: {_reason(exc)}"
        else:
            if where is ProjectIndex.KEPT:
                return "kept: the project still holds episodes", None
            if where is not ProjectIndex.BUSY:
                return where.value, None
            why = "another server is building vector indexes (it holds their lock)"
        if time.monotonic() >= give_up:
            return "left", (
                f"the project's vector index {index_name(project_id)} (its episodes' vectors) is still there: {why}; "
                "a server's next index check drops it (on a vector search, at most every 5 minutes)"
            )
        logger.info("the vector index of %s is not dropped yet (%s); trying again", project_id, why)
        await anyio.sleep(INDEX_DROP_RETRY_SECONDS)


async def vacuum_tables(url: URL, vacuum: Vacuum) -> tuple[list[str], list[str]]:
    """VACUUM each of :data:`ERASED_TABLES` (``vacuum``'s kind); the tables done, and a sentence for each one that
    was not. Postgres skips a table the role may not vacuum with a warning, not an error: the warning is caught."""
    done: list[str] = []
    left: list[str] = []
    async with autocommit_connection(url) as conn:
        warnings: list[str] = []

        def heard(_conn: object, message: object) -> None:
            warnings.append(str(getattr(message, "message", message)))

        # asyncpg hands a notice to its listeners (call_soon) before the statement's own answer, so they have it
        # by the time the statement returns.
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None  # an open connection's asyncpg connection
        driver.add_log_listener(heard)
        skipped: list[str] = []
        for table in ERASED_TABLES:
            logger.info("%s %s", _VACUUM[vacuum], table)
            warnings.clear()
            try:
                await conn.execute(text(f"{_VACUUM[vacuum]} {table}"))
            except DBAPIError as exc:
                left.append(f"{_VACUUM[vacuum]} {table} failed: {_reason(exc)}")
                continue
            if any("skipping" in w for w in warnings):
                skipped.append(table)
            else:
                done.append(table)
    if skipped:
        left.append(
            f"Postgres skipped the {_VACUUM[vacuum]} of {', '.join(skipped)} (permission denied: VACUUM needs the "
            "tables' owner, so run the forget as that role)"
        )
    return done, left


async def reclaim(url: URL, project_id: UUID, vacuum: Vacuum) -> Reclaimed:
    """The project's vector index first (a VACUUM FULL would rebuild it otherwise), then the VACUUM."""
    index, index_left = await drop_vector_index(url, project_id)
    done: dict[str, str | list[str]] = {"vector_index": index}
    left = [index_left] if index_left else []
    if vacuum is Vacuum.NONE:
        done["vacuum"] = "skipped: the erased rows stay in their pages until autovacuum comes to them"
        return Reclaimed(done, tuple(left))
    try:
        vacuumed, not_vacuumed = await vacuum_tables(url, vacuum)
    except (DBAPIError, OSError) as exc:
        vacuumed, not_vacuumed = [], [f"{_VACUUM[vacuum]} could not start: {_reason(exc)}"]
    done["vacuum"] = _VACUUM[vacuum]
    done["vacuumed"] = vacuumed
    return Reclaimed(done, (*left, *not_vacuumed))


__all__ = ["ERASED_TABLES", "INDEX_DROP_PATIENCE_SECONDS", "drop_vector_index", "reclaim", "vacuum_tables"]
