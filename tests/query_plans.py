"""The statements a store sent, as its driver got them, and their plans as the store would run them: for tests that
pin which index a periodic sweep reads through (the plan is the fact; no timing)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, text

from mcp_memory.stores.postgres.store import PostgresStore
from mcp_memory.stores.sqlite.store import SqliteStore

Sent = list[tuple[str, tuple[object, ...]]]
"""Each statement sent, as the driver got it, with its (positional: SQLite's ``?``, asyncpg's ``$n``) parameters."""


@contextmanager
def sent_by(store: SqliteStore | PostgresStore) -> Iterator[Sent]:
    statements: Sent = []

    def note(conn: object, cursor: object, statement: str, parameters: tuple[object, ...], *args: object) -> None:
        statements.append((statement, tuple(parameters)))

    engine = store._require_engine().sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", note)


async def plan(store: SqliteStore | PostgresStore, statement: str, parameters: tuple[object, ...]) -> list[str]:
    """The plan of ``statement`` as the store would run it, a line per step (Postgres: its ``EXPLAIN`` text; SQLite:
    each ``EXPLAIN QUERY PLAN`` step's detail)."""
    async with store._write() as conn:
        if isinstance(store, PostgresStore):
            # Tables this small are cheapest to scan whole; whether an index serves the statement is the point here.
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            return [str(line) for line in (await conn.exec_driver_sql("EXPLAIN " + statement, parameters)).scalars()]
        steps = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return [str(step["detail"]) for step in steps.mappings()]


__all__ = ["Sent", "plan", "sent_by"]
