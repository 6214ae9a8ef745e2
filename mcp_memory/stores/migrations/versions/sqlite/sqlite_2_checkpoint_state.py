"""SQLite schema 2: a checkpoint's items become one JSON object in ``checkpoints.state`` (see
:func:`mcp_memory.stores.sqlite.schema.encode_state`), and ``checkpoint_items`` goes.

Revision ID: sqlite_2
Revises: sqlite_1
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mcp_memory.models import Item
from mcp_memory.stores.migrations.sqlite_steps import connection, set_version
from mcp_memory.stores.sqlite.schema import encode_state

revision = "sqlite_2"
down_revision = "sqlite_1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:  # an added column: ALTER TABLE, no rebuild
        batch.add_column(sa.Column("state", sa.Text(), nullable=False, server_default="{}"))
    db = connection()
    for (pk,) in db.execute("SELECT id FROM checkpoints ORDER BY id").fetchall():
        rows = db.execute(
            "SELECT key, value, expires_at FROM checkpoint_items WHERE checkpoint_pk = ? ORDER BY key", (pk,)
        ).fetchall()
        items = {key: Item(value, expires_at) for key, value, expires_at in rows}
        if items:
            db.execute("UPDATE checkpoints SET state = ? WHERE id = ?", (encode_state(items), pk))
    op.drop_table("checkpoint_items")
    set_version(2)


def downgrade() -> None:
    raise NotImplementedError("the SQLite file is never downgraded")
