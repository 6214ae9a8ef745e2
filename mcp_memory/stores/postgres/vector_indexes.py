"""Per-project HNSW indexes: one partial index (``WHERE project_id = '...'``) per project larger than the exact-scan
size, so a project's approximate vector recall is its own graph's, whatever the other projects hold.

pgvector 0.6.2 (pgserver's) filters *after* the index scan and has no iterative scan: through the one shared graph,
a project's nearest neighbours compete with every other project's for the ``ef_search`` slots, and its recall falls
as other projects add vectors near its own. A partial index holds the project's rows only, and the planner takes it
for ``e.project_id = <that project>`` (the search runs with custom plans, so the bound id is a constant there and
proves the index's predicate). The shared ``episodes_embedding_hnsw`` stays for a project between growing past the
exact-scan size and its own index being built. ``halfvec`` is not used: it arrived in pgvector 0.7.0.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from sqlalchemy import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from mcp_memory.stores.postgres.schema import autocommit_connection
from mcp_memory.stores.sql.clauses import text

INDEX_PREFIX = "episodes_embedding_hnsw_p_"
HNSW_OPTIONS = "WITH (m = 16, ef_construction = 64)"
"""The shared index's build options (migration 0001)."""


def index_name(project_id: UUID) -> str:
    """The partial index of one project (63 bytes at most: a Postgres identifier)."""
    return INDEX_PREFIX + project_id.hex


def create_index_sql(project_id: UUID) -> str:
    """``CREATE INDEX CONCURRENTLY``: writes to ``episodes`` go on while it is built. The id is a UUID's own text,
    so nothing can be injected through it."""
    return (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {index_name(project_id)} ON episodes "
        f"USING hnsw (embedding vector_cosine_ops) {HNSW_OPTIONS} WHERE project_id = '{project_id}'"
    )


_MISSING = (
    "SELECT c.project_id FROM project_episode_counts c WHERE c.episodes > :over AND NOT EXISTS ("
    "SELECT 1 FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid "
    "WHERE x.relname = :prefix || replace(CAST(c.project_id AS text), '-', '') AND i.indisvalid) "
    "ORDER BY c.episodes DESC"
)
"""Projects above the exact-scan size without a valid index of their own (a failed concurrent build leaves an
invalid one, dropped and built again)."""

_ORPHANS = (
    "SELECT x.relname FROM pg_class x JOIN pg_index i ON i.indexrelid = x.oid "
    "WHERE i.indrelid = CAST('episodes' AS regclass) AND x.relname ~ :pattern AND NOT EXISTS ("
    "SELECT 1 FROM project_episode_counts c WHERE c.episodes > 0 "
    "AND :prefix || replace(CAST(c.project_id AS text), '-', '') = x.relname) "
    "ORDER BY x.relname"
)
"""Partial indexes of projects that hold no episode any more (the per-project counts are exact, kept by triggers;
a project's row goes once its episodes are gone, migration 0019, and stayed at 0 before), on the store's own
``episodes`` (the search path's, so another schema's store is left alone). Each holds a graph of dead rows only, and
nothing else would drop it."""


_ONE_BUILDER = (
    "SELECT pg_try_advisory_lock(hashtextextended('mcp_memory.vector_indexes:' || "
    "CAST(CAST(CAST('episodes' AS regclass) AS oid) AS text), 0))"
)
"""Taken for the connection's life (it closes with the lock: NullPool) by whoever builds or drops partial indexes
of this store's ``episodes``. Two servers on one database check for missing indexes together (each on its first
vector search); two concurrent ``DROP``/``CREATE INDEX CONCURRENTLY`` of one index wait on each other's
transactions and Postgres ends that in a deadlock, so the second one leaves the work to the first."""


async def _sole_builder(conn: AsyncConnection) -> bool:
    return bool((await conn.execute(text(_ONE_BUILDER))).scalar_one())


async def _drop_orphans(conn: AsyncConnection) -> list[UUID]:
    found = await conn.execute(text(_ORPHANS), {"prefix": INDEX_PREFIX, "pattern": f"^{INDEX_PREFIX}[0-9a-f]{{32}}$"})
    # Only names of the form index_name() gives match, and the statement is built from the id parsed back.
    projects = [UUID(str(r[0]).removeprefix(INDEX_PREFIX)) for r in found]
    for project in projects:
        await conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {index_name(project)}"))
    return projects


async def drop_orphans(url: URL | str, lock_timeout_ms: int | None = None) -> list[UUID]:
    """Drop the partial index of every project without episodes (an erased one); the projects whose index went.
    ``lock_timeout_ms`` bounds the wait for the table's lock: ``DROP INDEX CONCURRENTLY`` queues behind a
    concurrent build (minutes on a large project), and a caller that must not wait that long gets the lock
    timeout's error instead, leaving the index to the next :func:`build_missing`."""
    async with autocommit_connection(url) as conn:
        if not await _sole_builder(conn):
            return []  # a build is under way: it drops them first
        if lock_timeout_ms is not None:
            await conn.execute(text(f"SET lock_timeout = {int(lock_timeout_ms)}"))
        return await _drop_orphans(conn)


_INDEX_OF = (
    "SELECT 1 FROM pg_class x JOIN pg_index i ON i.indexrelid = x.oid "
    "WHERE i.indrelid = CAST('episodes' AS regclass) AND x.relname = :name"
)
_HOLDS_EPISODES = "SELECT 1 FROM project_episode_counts WHERE project_id = :p AND episodes > 0"


class ProjectIndex(StrEnum):
    """Where :func:`drop_if_orphaned` left one project's partial index."""

    ABSENT = "absent"
    """The project has no index of its own (never built, or dropped already)."""
    DROPPED = "dropped"
    KEPT = "kept"
    """The project holds episodes: its index stays."""
    BUSY = "busy"
    """Another connection holds the builders' lock (a build under way): nothing was dropped."""


async def drop_if_orphaned(url: URL | str, project_id: UUID, lock_timeout_ms: int) -> ProjectIndex:
    """Drop the project's partial index if the project holds no episode (with those of other such projects, as
    :func:`drop_orphans`); where that left it. The lock's wait is bounded by ``lock_timeout_ms`` (its error is
    raised: the index stays)."""
    name = index_name(project_id)
    async with autocommit_connection(url) as conn:
        if (await conn.execute(text(_INDEX_OF), {"name": name})).first() is None:
            return ProjectIndex.ABSENT
        if (await conn.execute(text(_HOLDS_EPISODES), {"p": project_id})).first() is not None:
            return ProjectIndex.KEPT
        if not await _sole_builder(conn):
            return ProjectIndex.BUSY
        await conn.execute(text(f"SET lock_timeout = {int(lock_timeout_ms)}"))
        await _drop_orphans(conn)
        # Still there: the project gained an episode meanwhile, and kept it.
        gone = (await conn.execute(text(_INDEX_OF), {"name": name})).first() is None
        return ProjectIndex.DROPPED if gone else ProjectIndex.KEPT


async def build_missing(url: URL | str, exact_scan_max: int) -> list[UUID]:
    """Build the partial index of every project of more than ``exact_scan_max`` episodes that has none, largest
    first, one at a time (each build takes a core); the projects indexed (none while another server builds them).
    First drop the indexes of projects without episodes (:func:`drop_orphans`), so those an erase could not drop do
    not stay for good."""
    async with autocommit_connection(url) as conn:
        if not await _sole_builder(conn):
            return []  # another server is building them
        await _drop_orphans(conn)
        found = await conn.execute(text(_MISSING), {"over": exact_scan_max, "prefix": INDEX_PREFIX})
        projects = [UUID(str(r[0])) for r in found]
        for project in projects:
            await conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {index_name(project)}"))
            await conn.execute(text(create_index_sql(project)))
    return projects


__all__ = [
    "INDEX_PREFIX",
    "ProjectIndex",
    "build_missing",
    "create_index_sql",
    "drop_if_orphaned",
    "drop_orphans",
    "index_name",
]
