"""What the Postgres revisions (``versions/postgres/``) share: a revision that only adds columns to one table.

Postgres adds a nullable column, or one with a constant default, without rewriting the table; its downgrade drops
the same columns.
"""

from __future__ import annotations

from collections.abc import Callable

from alembic import op


def added_columns(table: str, *columns: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """The ``upgrade`` and ``downgrade`` of a revision adding ``columns`` (each ``"name type ..."``) to ``table``:
    one ``ALTER TABLE`` each way."""
    names = [column.split()[0] for column in columns]

    def upgrade() -> None:
        op.execute(f"ALTER TABLE {table} " + ", ".join(f"ADD COLUMN {column}" for column in columns))

    def downgrade() -> None:
        op.execute(f"ALTER TABLE {table} " + ", ".join(f"DROP COLUMN {name}" for name in names))

    return upgrade, downgrade
