"""What the SQLite revisions (``versions/sqlite/``) share: the file's plain ``sqlite3`` connection for their Python
steps, adding the columns a table lacks, and the ``schema_version`` row each revision keeps in step with its number.

``schema_version`` predates Alembic and stays: a release from before Alembic reads only that row, so keeping it
equal to the revision's number makes such a release refuse a file that a newer one upgraded (as it always has)
instead of writing to tables it does not know.
"""

from __future__ import annotations

import sqlite3
from typing import cast

import sqlalchemy as sa
from alembic import op


def connection() -> sqlite3.Connection:
    """The ``sqlite3`` connection under the migration's (inside its transaction), for steps written in Python."""
    return cast(sqlite3.Connection, op.get_bind().connection.dbapi_connection)


def columns(table: str) -> set[str]:
    """The column names of ``table``."""
    return {row[1] for row in connection().execute(f"PRAGMA table_info({table})")}


def add_missing_columns(table: str, *new: sa.Column[object]) -> None:
    """Add to ``table`` those of ``new`` it lacks (a file built with the newer table has them), in one batch."""
    present = columns(table)
    missing = [column for column in new if column.name not in present]
    if missing:
        with op.batch_alter_table(table) as batch:
            for column in missing:
                batch.add_column(column)


def set_version(version: int) -> None:
    """Record ``version`` in ``schema_version`` (see the module docstring)."""
    op.execute(f"UPDATE schema_version SET version = {int(version)}")
